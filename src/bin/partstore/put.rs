//! `partstore put`: a local file (or stdin, see `stdin.rs`) into an
//! object, as one `put_object` or a multipart upload of parallel parts.

use super::*;

/// Arguments of `put`.
pub(crate) struct PutRequest<'a> {
    pub(crate) layer: &'a str,
    pub(crate) key: &'a str,
    pub(crate) file: &'a Path,
    pub(crate) part_size: Option<u64>,
    pub(crate) jobs: u32,
    pub(crate) digest: Option<DigestAlgorithm>,
    pub(crate) content_type: Option<String>,
}

/// The part size of a multipart put of `len` bytes: the one asked for
/// (checked against the SPEC's rules) or the default, raised to a multiple
/// of 1 MiB that needs at most 10,000 parts.
pub(crate) fn choose_part_size(len: u64, asked: Option<u64>) -> partstore::Result<u64> {
    let size = match asked {
        Some(s) => s,
        None => {
            let need = len.div_ceil(u64::from(MAX_PART_NUMBER));
            DEFAULT_PUT_PART_SIZE.max(need.div_ceil(PART_SIZE_MULTIPLE) * PART_SIZE_MULTIPLE)
        }
    };
    if size == 0 {
        return Err(Error::new(
            ErrorKind::BadRequest,
            Reason::InvalidArgument,
            "part size 0: parts need at least 1 byte",
        ));
    }
    if size > MAX_PART_SIZE {
        return Err(Error::new(
            ErrorKind::TooLarge,
            Reason::PartTooLarge,
            format!("part size {size} is over the limit of {MAX_PART_SIZE} bytes (96 MiB)"),
        ));
    }
    if len > size && (size < MIN_PART_SIZE || !size.is_multiple_of(PART_SIZE_MULTIPLE)) {
        return Err(Error::new(
            ErrorKind::BadRequest,
            Reason::InvalidArgument,
            format!(
                "part size {size}: every part but the last must be at least {MIN_PART_SIZE} bytes \
             (5 MiB) and a multiple of {PART_SIZE_MULTIPLE} (1 MiB)"
            ),
        ));
    }
    let parts = len.div_ceil(size).max(1);
    if parts > u64::from(MAX_PART_NUMBER) {
        return Err(Error::new(
            ErrorKind::BadRequest,
            Reason::InvalidArgument,
            format!(
            "{len} bytes in parts of {size} need {parts} parts, over the limit of {MAX_PART_NUMBER}"
        ),
        ));
    }
    Ok(size)
}

/// Opens `path` and positions it at `offset`, limited to `len` bytes.
pub(crate) fn file_part(
    path: &Path,
    offset: u64,
    len: u64,
) -> partstore::Result<std::io::Take<File>> {
    use std::io::Read as _;
    let mut f = File::open(path).map_err(|e| io_err(format!("opening {}", path.display()), e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| io_err(format!("seeking in {}", path.display()), e))?;
    Ok(f.take(len))
}

/// A body of `bytes` already in memory, with their `digest` (by the
/// engine's hasher) when one is asked for: the bytes are read once, hashed
/// and uploaded from the same buffer.
pub(crate) fn buffered_body(
    bytes: &[u8],
    digest: Option<DigestAlgorithm>,
) -> partstore::Result<PartBody<&[u8]>> {
    let mut body = PartBody::new(bytes, bytes.len() as u64);
    if let Some(alg) = digest {
        body = body.digest(harness::digest_of(alg, bytes)?);
    }
    Ok(body)
}

/// Reads `buf.len()` bytes of `file` at `offset` (`name` and `what` say
/// which, in errors).
pub(crate) fn read_at(
    file: &File,
    buf: &mut [u8],
    offset: u64,
    name: &str,
) -> partstore::Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        io_err(
            format!("reading {} bytes at offset {offset} of {name}", buf.len()),
            e,
        )
    })
}

/// The content type of a new upload: the one asked for, else the layer's,
/// else the default.
pub(crate) fn upload_content_type(store: &Store, req: &PutRequest<'_>) -> String {
    match &req.content_type {
        Some(ct) => ct.clone(),
        None => store
            .list_layers()
            .into_iter()
            .find(|(id, _)| id == req.layer)
            .and_then(|(_, c)| c.content_type)
            .unwrap_or_else(|| partstore::rules::DEFAULT_CONTENT_TYPE.to_string()),
    }
}

/// Uploads a local file. Without `--digest` every part streams from the
/// file into the engine. With it, each part (or the whole object of a
/// single-part put, at most 192 MiB) is read once into a buffer, hashed by
/// the engine's hasher, and uploaded from that buffer, which the engine
/// checks against the digest: memory is one part per job.
pub(crate) fn put(store: &Store, req: &PutRequest<'_>) -> partstore::Result<ObjectInfo> {
    let path = req.file;
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| io_err(format!("opening {name}"), e))?;
    let len = file
        .metadata()
        .map_err(|e| io_err(format!("reading the size of {name}"), e))?
        .len();
    let multipart = len > MAX_PUT_OBJECT_SIZE || req.part_size.is_some();
    if !multipart {
        let pb = bytes_bar(len, "put");
        let r = match req.digest {
            Some(alg) => {
                let mut buf = vec![0u8; len as usize];
                read_at(&file, &mut buf, 0, &name)?;
                pb.set_position(len);
                let mut body = buffered_body(&buf, Some(alg))?;
                if let Some(ct) = &req.content_type {
                    body = body.content_type(ct.clone());
                }
                store.put_object(req.layer, req.key, body)
            }
            None => {
                let mut body = PartBody::new(pb.wrap_read(file_part(path, 0, len)?), len);
                if let Some(ct) = &req.content_type {
                    body = body.content_type(ct.clone());
                }
                store.put_object(req.layer, req.key, body)
            }
        };
        pb.finish_and_clear();
        return r;
    }

    let part_size = choose_part_size(len, req.part_size)?;
    let parts = len.div_ceil(part_size).max(1) as u32;
    let upload = store.start_multipart(
        req.layer,
        req.key,
        UploadOptions::new(upload_content_type(store, req)),
    )?;
    let pb = bytes_bar(len, "put");
    let next = AtomicU32::new(1);
    let failed = AtomicBool::new(false);
    // `buf`: this worker's part buffer, used only with a digest.
    let upload_one = |n: u32, buf: &mut Vec<u8>| -> partstore::Result<()> {
        let offset = u64::from(n - 1) * part_size;
        let plen = part_size.min(len - offset);
        match req.digest {
            Some(alg) => {
                buf.resize(plen as usize, 0);
                read_at(&file, buf, offset, &name)?;
                store.upload_part(req.layer, &upload, n, buffered_body(buf, Some(alg))?)?;
                pb.inc(plen);
            }
            None => {
                let body = PartBody::new(pb.wrap_read(file_part(path, offset, plen)?), plen);
                store.upload_part(req.layer, &upload, n, body)?;
            }
        }
        Ok(())
    };
    let worker = || -> partstore::Result<()> {
        let mut buf = Vec::new();
        loop {
            let n = next.fetch_add(1, Ordering::SeqCst);
            if n > parts || failed.load(Ordering::SeqCst) {
                return Ok(());
            }
            if let Err(e) = upload_one(n, &mut buf) {
                failed.store(true, Ordering::SeqCst);
                return Err(e);
            }
        }
    };
    let jobs = req.jobs.clamp(1, parts);
    let result = std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs).map(|_| s.spawn(worker)).collect();
        let mut first = Ok(());
        for h in handles {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(io_err("a put worker", std::io::Error::other("panicked"))));
            if first.is_ok() {
                first = r;
            }
        }
        first
    })
    .and_then(|()| {
        pb.set_message("complete");
        store.complete_multipart(req.layer, &upload)
    });
    pb.finish_and_clear();
    if result.is_err() {
        // Best effort: the upload's parts become garbage instead of lingering.
        let _ = store.abort_multipart(req.layer, &upload);
    }
    result
}
