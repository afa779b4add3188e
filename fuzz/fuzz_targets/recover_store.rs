//! Recovery from damaged segment files, through the public API.
//!
//! A small store (several 4 KiB segments: objects, a multipart upload
//! completed from an uploaded part and one from a copied range, an open
//! upload, an aborted one, a deleted object, a whole-object copy, an empty
//! object) is built once. Each input copies its segment files into a fresh
//! directory (on /dev/shm when there is one), XORs bytes into them,
//! optionally recomputes every record's CRCs (so that damage gets past the
//! framing and reaches decoding and replay) and optionally cuts the newest
//! segment short, then opens the store:
//! - `open` fails with Corrupt (or Io), or succeeds;
//! - on success every object reads back or fails with Corrupt, and a failed
//!   read means `verify` reports a bad block; after random damage the bytes
//!   read match the object's `ObjectInfo::crc32c` (when the damage was made
//!   into valid records, the CRC field itself may be what changed, and only
//!   the block CRCs protect the bytes); listings and stats do not panic;
//! - when the CRCs were left alone (random damage), the visible state is
//!   one the store really had (the template's state after some prefix of
//!   its operations): damage is detected or cuts a torn tail, never
//!   invents or drops a change in the middle;
//! - a store that opened takes a new write and reopens with it.
//!
//! Input: one flag byte, then 4-byte mutations (file, offset LE u16, xor).
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use partstore::internals::{framed_len, RecordHeader, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use partstore::{
    CopySource, ErrorKind, LayerConfig, ListItem, ListOptions, Options, PartBody, RecoveryMode,
    Store,
};

const SEGMENT_SIZE: u64 = 4096;
const LAYER: &str = "l";

/// What a store shows: objects (key -> size, CRC) and open uploads
/// (token, key, parts).
type State = (BTreeMap<String, (u64, u32)>, Vec<(String, String, usize)>);

struct Template {
    /// Segment file names and bytes, in id order.
    files: Vec<(String, Vec<u8>)>,
    /// Offsets of the records of each file.
    records: Vec<Vec<usize>>,
    /// The state after each prefix of the template's operations.
    history: Vec<State>,
}

fn base_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn body(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Objects with their sizes and CRCs, and open uploads. Reads must work.
fn state(store: &Store) -> State {
    let mut objects = BTreeMap::new();
    let mut token = None;
    loop {
        let mut opts = ListOptions::default().deep(true).limit(2);
        if let Some(t) = token.take() {
            opts = opts.page_token(t);
        }
        let page = store.list(LAYER, &opts).expect("list");
        for item in page.items {
            if let ListItem::Object(o) = item {
                objects.insert(o.key.clone(), (o.size, o.crc32c));
            }
        }
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let uploads = store
        .list_uploads(LAYER)
        .expect("list uploads")
        .into_iter()
        .map(|u| (u.upload.to_string(), u.key, u.parts))
        .collect();
    (objects, uploads)
}

fn build_template() -> Template {
    let dir = base_dir().join(format!("partstore-fuzz-template-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut history = Vec::new();
    {
        let s = Store::open(&dir, Options::default().segment_size(SEGMENT_SIZE)).expect("open");
        let put = |key: &str, seed: u8, len: usize| {
            let b = body(seed, len);
            s.put_object(LAYER, key, PartBody::new(&b[..], len as u64))
                .expect("put");
        };
        s.create_layer(LAYER, LayerConfig::default())
            .expect("layer");
        history.push(state(&s));
        put("a", 1, 2500);
        history.push(state(&s));
        put("dir/b", 2, 100);
        history.push(state(&s));
        let up = s
            .start_multipart(LAYER, "m", "application/octet-stream")
            .expect("start");
        history.push(state(&s));
        let b = body(3, 1500);
        s.upload_part(LAYER, &up, 1, PartBody::new(&b[..], 1500))
            .expect("part");
        history.push(state(&s));
        s.complete_multipart(LAYER, &up).expect("complete");
        history.push(state(&s));
        let up = s
            .start_multipart(LAYER, "n", "application/octet-stream")
            .expect("start");
        history.push(state(&s));
        let range = "bytes=0-1999".parse().expect("range");
        s.copy_part(LAYER, &up, 1, CopySource::new("a", range))
            .expect("copy part");
        history.push(state(&s));
        s.complete_multipart(LAYER, &up).expect("complete");
        history.push(state(&s));
        let open = s
            .start_multipart(LAYER, "open", "application/octet-stream")
            .expect("start");
        history.push(state(&s));
        let b = body(4, 700);
        s.upload_part(LAYER, &open, 1, PartBody::new(&b[..], 700))
            .expect("part");
        history.push(state(&s));
        let gone = s
            .start_multipart(LAYER, "gone", "application/octet-stream")
            .expect("start");
        history.push(state(&s));
        s.abort_multipart(LAYER, &gone).expect("abort");
        history.push(state(&s));
        s.copy_object(LAYER, "c", "a").expect("copy");
        history.push(state(&s));
        s.delete(LAYER, "dir/b").expect("delete");
        history.push(state(&s));
        put("empty", 5, 0);
        history.push(state(&s));
        put("a", 6, 1200);
        history.push(state(&s));
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("seg-"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "template has {} segments", names.len());
    let files: Vec<(String, Vec<u8>)> = names
        .into_iter()
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n)).expect("read segment");
            (n, bytes)
        })
        .collect();
    let records = files
        .iter()
        .map(|(_, bytes)| {
            let mut offsets = Vec::new();
            let mut pos = SEGMENT_HEADER_LEN as usize;
            while let Some(h) = bytes.get(pos..).and_then(RecordHeader::decode) {
                offsets.push(pos);
                pos += framed_len(h.len) as usize;
            }
            offsets
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    Template {
        files,
        records,
        history,
    }
}

/// Recomputes the payload CRC (metadata records) and header CRC of every
/// record the template has, whatever the damage did to them.
fn refresh_crcs(bytes: &mut [u8], records: &[usize]) {
    let header = RECORD_HEADER_LEN as usize;
    for &at in records {
        if at + header > bytes.len() {
            continue;
        }
        let len = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().expect("8 bytes"));
        if bytes[at + 4] == 2 {
            let end = (at + header) as u64 + len;
            if end <= bytes.len() as u64 {
                let crc = crc32c::crc32c(&bytes[at + header..end as usize]);
                bytes[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
            }
        }
        let crc = crc32c::crc32c(&bytes[at..at + 20]);
        bytes[at + 20..at + 24].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Every object reads back, or fails with Corrupt; with `exact`, the bytes
/// read match the object's CRC32C too (when damage was refreshed into valid
/// records, an object's CRC field may itself be what was damaged: only its
/// blocks' CRCs protect the bytes then). A read that fails means `verify`
/// finds a bad block, and a clean `verify` means every read works.
fn check_reads(store: &Store, exact: bool) {
    let mut failed = Vec::new();
    let mut token = None;
    loop {
        let mut opts = ListOptions::default().deep(true);
        if let Some(t) = token.take() {
            opts = opts.page_token(t);
        }
        let page = match store.list(LAYER, &opts) {
            Ok(p) => p,
            Err(e) => {
                // The layer itself may be what the damage removed.
                assert_eq!(e.kind(), ErrorKind::NotFound, "list: {e}");
                return;
            }
        };
        for item in page.items {
            let ListItem::Object(info) = item else {
                continue;
            };
            let read = store.get(LAYER, &info.key).and_then(|b| b.to_vec());
            match read {
                Ok(bytes) => {
                    assert_eq!(bytes.len() as u64, info.size, "{}: size", info.key);
                    if exact {
                        assert_eq!(
                            crc32c::crc32c(&bytes),
                            info.crc32c,
                            "{}: served bytes fail the CRC",
                            info.key
                        );
                    }
                }
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Corrupt, "read of {}: {e}", info.key);
                    failed.push(info.key);
                }
            }
        }
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    if let Ok(uploads) = store.list_uploads(LAYER) {
        for u in uploads {
            store
                .list_parts(LAYER, &u.upload)
                .expect("parts of a listed upload");
        }
    }
    let _ = store.stats();
    match store.verify() {
        Ok(r) => assert!(
            failed.is_empty() || !r.is_clean(),
            "reads of {failed:?} failed but verify is clean"
        ),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupt, "verify: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    let t = TEMPLATE.get_or_init(build_template);
    let (flags, muts) = data.split_first().map_or((0, &[][..]), |(f, m)| (*f, m));
    let refresh = flags & 1 != 0;
    let cut = flags & 2 != 0;
    let recovery = match flags >> 2 & 3 {
        1 => RecoveryMode::SalvageTail,
        2 => RecoveryMode::Strict,
        _ => RecoveryMode::TruncateTornTail,
    };
    let rewrite = flags & 16 != 0;

    let mut files: Vec<Vec<u8>> = t.files.iter().map(|(_, b)| b.clone()).collect();
    let mut cut_at = None;
    for m in muts.chunks_exact(4) {
        let f = m[0] as usize % files.len();
        let len = files[f].len();
        let at = usize::from(u16::from_le_bytes([m[1], m[2]])) % len;
        files[f][at] ^= m[3];
        cut_at = Some(at);
    }
    if refresh {
        for (bytes, records) in files.iter_mut().zip(&t.records) {
            refresh_crcs(bytes, records);
        }
    }
    // A torn write: the newest segment ends early (the preallocated length
    // is lost too).
    if let (true, Some(at), Some(last)) = (cut, cut_at, files.last_mut()) {
        last.truncate(at);
    }

    let dir = base_dir().join(format!("partstore-fuzz-recover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    for ((name, _), bytes) in t.files.iter().zip(&files) {
        std::fs::write(dir.join(name), bytes).expect("write segment");
    }

    let opts = || {
        Options::default()
            .segment_size(SEGMENT_SIZE)
            .recovery(recovery)
    };
    match Store::open(&dir, opts()) {
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Io),
            "open failed with {:?}: {e}",
            e.kind()
        ),
        Ok(store) => {
            check_reads(&store, !refresh);
            let visible = store.list(LAYER, &ListOptions::default()).is_ok();
            if !refresh && visible {
                let now = state(&store);
                assert!(
                    t.history.contains(&now),
                    "random damage opened into a state the store never had: {now:?}"
                );
            }
            if rewrite && visible {
                let b = body(9, 300);
                let put = store.put_object(LAYER, "new", PartBody::new(&b[..], 300));
                drop(store);
                if put.is_ok() {
                    let again = Store::open(&dir, opts())
                        .expect("a store that opened and took a write reopens");
                    let got = again
                        .get(LAYER, "new")
                        .and_then(|b| b.to_vec())
                        .expect("the new object");
                    assert_eq!(got, b);
                    check_reads(&again, !refresh);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
});
