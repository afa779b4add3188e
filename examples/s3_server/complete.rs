//! CompleteMultipartUpload's checks, in the order S3 makes them: a part
//! list (MalformedXML when empty), in ascending order (InvalidPartOrder),
//! naming parts that exist with those ETags and checksums (InvalidPart),
//! then the engine's own rules: numbers 1..=N without gaps
//! (InvalidPartOrder here, where S3 allows gaps), sizes (EntityTooSmall,
//! ...), which come back as typed reasons that `errors` maps. A
//! whole-object checksum header must match what the parts add up to
//! (BadDigest), checked before anything is published.

use partstore::{DigestAlgorithm, PartInfo, PartRef};
use s3s::crypto::{Checksum, Sha1, Sha256};
use s3s::dto::CompletedPart;
use s3s::{S3ErrorCode, S3Result};

use crate::body;
use crate::errors::err;
use crate::request::part_number;

/// One part of a CompleteMultipartUpload request.
pub struct Chosen {
    pub part: PartRef,
    crc32c: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
}

/// The whole-object checksum headers of a CompleteMultipartUpload.
#[derive(Default)]
pub struct Whole {
    pub crc32c: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

/// The client's part list: present, complete entries, ascending.
pub fn chosen_parts(listed: &[CompletedPart]) -> S3Result<Vec<Chosen>> {
    if listed.is_empty() {
        return Err(err(
            S3ErrorCode::MalformedXML,
            "CompleteMultipartUpload lists no parts",
        ));
    }
    let mut out: Vec<Chosen> = Vec::with_capacity(listed.len());
    for p in listed {
        let number = p
            .part_number
            .ok_or_else(|| err(S3ErrorCode::InvalidPart, "a listed part has no PartNumber"))?;
        let number = part_number(number)
            .map_err(|e| err(S3ErrorCode::InvalidPart, e.message().unwrap_or_default()))?;
        let etag = p.e_tag.as_ref().ok_or_else(|| {
            err(
                S3ErrorCode::InvalidPart,
                format!("part {number} is listed without its ETag"),
            )
        })?;
        if let Some(prev) = out.last() {
            if number <= prev.part.number {
                return Err(err(
                    S3ErrorCode::InvalidPartOrder,
                    format!(
                        "part {number} follows part {}: parts must be listed in ascending order",
                        prev.part.number
                    ),
                ));
            }
        }
        out.push(Chosen {
            part: PartRef {
                number,
                id: etag.value().to_owned(),
            },
            crc32c: p.checksum_crc32c.clone(),
            sha1: p.checksum_sha1.clone(),
            sha256: p.checksum_sha256.clone(),
        });
    }
    Ok(out)
}

fn b64(b: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(b)
}

/// Every listed part exists with its ETag and listed checksums
/// (InvalidPart), the numbers are 1..=N (InvalidPartOrder: the engine's
/// rule), and the whole-object checksums match (BadDigest).
pub fn check_completion(current: &[PartInfo], chosen: &[Chosen], whole: &Whole) -> S3Result<()> {
    let mut parts = Vec::with_capacity(chosen.len());
    for c in chosen {
        let n = c.part.number;
        let p = current
            .iter()
            .find(|p| p.part_number == n && p.id == c.part.id)
            .ok_or_else(|| {
                err(
                    S3ErrorCode::InvalidPart,
                    format!(
                        "part {n} with ETag \"{}\" was not uploaded (or was replaced)",
                        c.part.id
                    ),
                )
            })?;
        let kept = |a: DigestAlgorithm| {
            p.digest
                .as_ref()
                .filter(|d| d.algorithm() == a)
                .map(|d| b64(d.bytes()))
        };
        for (name, listed, have) in [
            ("CRC32C", &c.crc32c, Some(body::crc32c_b64(p.crc32c))),
            ("SHA1", &c.sha1, kept(DigestAlgorithm::Sha1)),
            ("SHA256", &c.sha256, kept(DigestAlgorithm::Sha256)),
        ] {
            if let (Some(listed), Some(have)) = (listed, have) {
                if *listed != have {
                    return Err(err(
                        S3ErrorCode::InvalidPart,
                        format!("part {n}: Checksum{name} {listed} is not the part's {have}"),
                    ));
                }
            }
        }
        parts.push(p);
    }
    for (i, c) in chosen.iter().enumerate() {
        let expected = i as u32 + 1;
        if c.part.number != expected {
            return Err(err(
                S3ErrorCode::InvalidPartOrder,
                format!(
                    "part {expected} is missing (found part {}): this store needs parts numbered 1..=N without gaps",
                    c.part.number
                ),
            ));
        }
    }
    check_whole(&parts, whole)
}

/// A whole-object checksum: `VALUE-N` is S3's composite (the algorithm
/// over the part checksums), a plain CRC32C the full object's.
fn check_whole(parts: &[&PartInfo], whole: &Whole) -> S3Result<()> {
    let n = parts.len();
    let composite = |a: DigestAlgorithm| -> Option<String> {
        let mut joined = Vec::new();
        for p in parts {
            match (a, &p.digest) {
                (DigestAlgorithm::Crc32c, _) => joined.extend_from_slice(&p.crc32c.to_be_bytes()),
                (_, Some(d)) if d.algorithm() == a => joined.extend_from_slice(d.bytes()),
                _ => return None,
            }
        }
        let digest = match a {
            DigestAlgorithm::Sha256 => Sha256::checksum(&joined).to_vec(),
            DigestAlgorithm::Sha1 => Sha1::checksum(&joined).to_vec(),
            _ => crc32c::crc32c(&joined).to_be_bytes().to_vec(),
        };
        Some(format!("{}-{n}", b64(&digest)))
    };
    let full_crc = || {
        let crc = parts.iter().fold(None, |acc: Option<u32>, p| {
            Some(match acc {
                None => p.crc32c,
                Some(c) => crc32c::crc32c_combine(c, p.crc32c, p.size as usize),
            })
        });
        body::crc32c_b64(crc.unwrap_or(0))
    };
    for (name, given, a) in [
        ("CRC32C", &whole.crc32c, DigestAlgorithm::Crc32c),
        ("SHA1", &whole.sha1, DigestAlgorithm::Sha1),
        ("SHA256", &whole.sha256, DigestAlgorithm::Sha256),
    ] {
        let Some(given) = given else { continue };
        let have = if given.contains('-') {
            composite(a)
        } else if a == DigestAlgorithm::Crc32c {
            Some(full_crc())
        } else {
            None
        };
        if have.as_deref() != Some(given.as_str()) {
            return Err(err(
                S3ErrorCode::BadDigest,
                format!(
                    "x-amz-checksum-{} {given} is not the upload's {}",
                    name.to_ascii_lowercase(),
                    have.as_deref()
                        .unwrap_or("(its parts carry no such checksums)")
                ),
            ));
        }
    }
    Ok(())
}
