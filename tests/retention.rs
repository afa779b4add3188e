//! SPEC.md "Completed uploads": after a successful complete, an upload is
//! `Completed` (with `upload_result` its object, and part, copy, complete,
//! abort and list_parts BadRequest `UploadCompleted`) for at least
//! `Options::completed_upload_retention`; after it the token is unknown
//! everywhere (NotFound `UnknownUpload`), whether or not a sweep ran, across
//! reopens and compactions. Sweeps (`expire_uploads`, `compact`, `open`)
//! free the tombstones, observed through `Stats::completed_uploads`.
//!
//! The bug these guard against: completed uploads kept in memory and in
//! every snapshot forever (the index grows with history, not live data), or
//! an expired one that comes back after a reopen or answers differently
//! depending on whether a sweep happened to run.
//!
//! Timing: "within" checks run right after the complete with a window of at
//! least 1 s (or 24 h); "past" checks sleep the window plus a generous
//! margin. Expiry at the millisecond is tested on the pure index
//! (`src/index/tests.rs`), where the clock is a parameter.

use std::thread::sleep;
use std::time::{Duration, Instant};

use partstore::*;
use tempfile::TempDir;

const MIB: u64 = 1 << 20;
const L: &str = "l";
const OTHER: &str = "other";
const OCTET: &str = "application/octet-stream";
/// A window long enough for the checks right after a complete (or a
/// reopen) to run inside it, even on a loaded machine.
const WINDOW: Duration = Duration::from_secs(1);
/// How long past a window the "past" checks wait.
const MARGIN: Duration = Duration::from_millis(400);

fn opts(retention: Duration) -> Options {
    Options::default()
        .segment_size(8 * MIB)
        .durability(Durability::None)
        .completed_upload_retention(retention)
}

fn store(retention: Duration) -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), opts(retention)).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    s.create_layer(OTHER, LayerConfig::default()).unwrap();
    s.put_object(L, "src", body(b"source")).unwrap();
    (dir, s)
}

fn reopen(dir: &TempDir, s: Store, retention: Duration) -> Store {
    drop(s);
    Store::open(dir.path(), opts(retention)).unwrap()
}

fn body(bytes: &[u8]) -> PartBody<&[u8]> {
    PartBody::new(bytes, bytes.len() as u64)
}

/// Compacts after making the active segment mostly garbage (a deleted
/// object whose bytes a reader still maps, so they cannot be punched out in
/// place): compaction then seals it, moves its live extents and writes a
/// snapshot, which replay starts from.
fn compact_with_snapshot(s: &Store) {
    s.put_object(L, "junk", body(&[7; 64 << 10])).unwrap();
    let pinned = s.get(L, "junk").unwrap();
    s.delete(L, "junk").unwrap();
    let r = s.compact().unwrap();
    assert!(r.segments_removed >= 1, "no snapshot was written: {r:?}");
    assert_eq!(pinned.to_vec().unwrap(), vec![7; 64 << 10]);
}

/// Starts, fills and completes an upload of `key`; returns its token, the
/// object the complete returned and when the complete returned.
fn complete(s: &Store, key: &str) -> (UploadId, ObjectInfo, Instant) {
    let up = s.start_multipart(L, key, OCTET).unwrap();
    s.upload_part(L, &up, 1, body(key.as_bytes())).unwrap();
    let done = s.complete_multipart(L, &up).unwrap();
    (up, done, Instant::now())
}

/// Sleeps until `window + MARGIN` has passed since `since`.
fn sleep_past(since: Instant, window: Duration) {
    let until = since + window + MARGIN;
    let now = Instant::now();
    if until > now {
        sleep(until - now);
    }
}

/// The error of `r`, checked: its kind, its reason, and a message that
/// names the upload.
fn check_err<T: std::fmt::Debug>(
    what: &str,
    r: Result<T>,
    up: &UploadId,
    kind: ErrorKind,
    reason: Reason,
) {
    let e = match r {
        Ok(v) => panic!("{what}: succeeded with {v:?}, want {kind:?} {reason:?}"),
        Err(e) => e,
    };
    assert_eq!((e.kind(), e.reason()), (kind, Some(reason)), "{what}: {e}");
    assert!(
        e.to_string().contains(&up.to_string()),
        "{what}: message does not name the upload: {e}"
    );
}

/// Every call on an upload that a completed upload refuses, by name.
fn refusals(s: &Store, layer: &str, up: &UploadId) -> Vec<(&'static str, Result<()>)> {
    let range = "bytes=0-5".parse::<ByteRange>().unwrap();
    let stale = PartRef {
        number: 1,
        id: "0000000000000001".into(),
    };
    vec![
        (
            "upload_part",
            s.upload_part(layer, up, 2, body(b"more")).map(|_| ()),
        ),
        (
            "copy_part",
            s.copy_part(layer, up, 2, CopySource::new("src", range))
                .map(|_| ()),
        ),
        ("complete", s.complete_multipart(layer, up).map(|_| ())),
        (
            "complete_with",
            s.complete_multipart_with(layer, up, &[stale]).map(|_| ()),
        ),
        ("abort", s.abort_multipart(layer, up)),
        ("list_parts", s.list_parts(layer, up).map(|_| ())),
        (
            "list_parts_page",
            s.list_parts_page(layer, up, 0, 10).map(|_| ()),
        ),
    ]
}

/// Within the window: `Completed`, its result, and BadRequest
/// `UploadCompleted` for every call that needs an open upload.
fn assert_remembered(s: &Store, up: &UploadId, done: &ObjectInfo) {
    assert_eq!(s.upload_status(L, up).unwrap(), UploadStatus::Completed);
    assert_eq!(&s.upload_result(L, up).unwrap(), done);
    for (what, r) in refusals(s, L, up) {
        check_err(what, r, up, ErrorKind::BadRequest, Reason::UploadCompleted);
    }
    // Still bound to its layer.
    check_err(
        "status in another layer",
        s.upload_status(OTHER, up),
        up,
        ErrorKind::NotFound,
        Reason::UnknownUpload,
    );
}

/// Past the window (or never known): NotFound `UnknownUpload` everywhere.
fn assert_unknown(s: &Store, up: &UploadId) {
    check_err(
        "upload_status",
        s.upload_status(L, up),
        up,
        ErrorKind::NotFound,
        Reason::UnknownUpload,
    );
    check_err(
        "upload_result",
        s.upload_result(L, up),
        up,
        ErrorKind::NotFound,
        Reason::UnknownUpload,
    );
    for (what, r) in refusals(s, L, up) {
        check_err(what, r, up, ErrorKind::NotFound, Reason::UnknownUpload);
    }
    assert!(s.list_uploads(L).unwrap().iter().all(|u| u.upload != *up));
}

#[test]
fn default_is_24_hours_and_the_builder_sets_it() {
    assert_eq!(
        Options::default().completed_upload_retention,
        Duration::from_secs(24 * 60 * 60)
    );
    assert_eq!(
        DEFAULT_COMPLETED_UPLOAD_RETENTION,
        Duration::from_secs(86_400)
    );
    let o = Options::default().completed_upload_retention(Duration::from_millis(250));
    assert_eq!(o.completed_upload_retention, Duration::from_millis(250));
    let (_d, s) = store(Duration::from_secs(7));
    assert_eq!(
        s.options().completed_upload_retention,
        Duration::from_secs(7)
    );
}

#[test]
fn remembered_within_the_window_then_unknown_everywhere() {
    let (_d, s) = store(WINDOW);
    let (up, done, at) = complete(&s, "k");
    assert_eq!(done, s.head(L, "k").unwrap());
    assert_remembered(&s, &up, &done);
    // Refusals changed nothing.
    assert_eq!(s.head(L, "k").unwrap(), done);
    assert_eq!(s.stats().completed_uploads, 1);

    sleep_past(at, WINDOW);
    // No sweep has run: the tombstone is still held, and unknown anyway.
    assert_eq!(s.stats().completed_uploads, 1);
    assert_unknown(&s, &up);
    // The object it published is not touched by forgetting the upload.
    assert_eq!(s.head(L, "k").unwrap(), done);
    assert_eq!(s.get(L, "k").unwrap().to_vec().unwrap(), b"k");
    assert_eq!(s.stats().uploads, 0);
}

#[test]
fn expire_uploads_frees_only_expired_tombstones() {
    let (_d, s) = store(WINDOW);
    let (old, _, at) = complete(&s, "old");
    let open = s.start_multipart(L, "open", OCTET).unwrap();
    sleep_past(at, WINDOW);
    let (new, new_done, _) = complete(&s, "new");
    assert_eq!(s.stats().completed_uploads, 2);
    assert_unknown(&s, &old);

    // Nothing idle for an hour: no upload aborted, one tombstone freed.
    assert_eq!(s.expire_uploads(Duration::from_secs(3600)).unwrap(), 0);
    let st = s.stats();
    assert_eq!((st.completed_uploads, st.uploads), (1, 1));
    assert_remembered(&s, &new, &new_done);
    assert_unknown(&s, &old);
    assert!(matches!(
        s.upload_status(L, &open).unwrap(),
        UploadStatus::Open { parts: 0, .. }
    ));
    // A second sweep finds nothing more.
    assert_eq!(s.expire_uploads(Duration::from_secs(3600)).unwrap(), 0);
    assert_eq!(s.stats().completed_uploads, 1);
}

#[test]
fn remembered_across_reopen_and_compaction_within_the_window() {
    let day = Duration::from_secs(86_400);
    let (d, s) = store(day);
    let (up, done, _) = complete(&s, "k");
    // Replayed from the records.
    let s = reopen(&d, s, day);
    assert_remembered(&s, &up, &done);
    assert_eq!(s.stats().completed_uploads, 1);
    // Restored from compaction's snapshot.
    compact_with_snapshot(&s);
    let s = reopen(&d, s, day);
    assert_remembered(&s, &up, &done);
    assert_eq!(s.stats().completed_uploads, 1);
}

#[test]
fn unknown_after_a_reopen_past_the_window() {
    let short = Duration::from_millis(200);
    let (d, s) = store(short);
    let (up, done, at) = complete(&s, "k");
    sleep_past(at, short);
    let s = reopen(&d, s, short);
    // Replay rebuilt the tombstone from its records and open dropped it.
    assert_eq!(s.stats().completed_uploads, 0);
    assert_unknown(&s, &up);
    assert_eq!(s.head(L, "k").unwrap(), done);

    // A store whose window is judged against the recorded completion
    // time: reopened with a shorter window, a recent upload is unknown too.
    let (d, s) = store(Duration::from_secs(86_400));
    let (up, _, at) = complete(&s, "k");
    sleep_past(at, Duration::from_millis(1));
    let s = reopen(&d, s, Duration::from_millis(1));
    assert_eq!(s.stats().completed_uploads, 0);
    assert_unknown(&s, &up);
}

#[test]
fn compaction_leaves_expired_tombstones_out_and_the_store_reopens() {
    let (d, s) = store(WINDOW);
    let (old, old_done, at) = complete(&s, "old");
    sleep_past(at, WINDOW);
    let (new, new_done, _) = complete(&s, "new");
    compact_with_snapshot(&s);
    assert_eq!(s.stats().completed_uploads, 1, "compact frees memory too");
    assert_remembered(&s, &new, &new_done);
    assert_unknown(&s, &old);

    // Reopened with a window that would remember both: replay starts at the
    // snapshot, which holds only the tombstone that was not expired.
    let s = reopen(&d, s, Duration::MAX);
    assert_eq!(s.stats().completed_uploads, 1);
    assert_remembered(&s, &new, &new_done);
    assert_unknown(&s, &old);
    assert_eq!(s.head(L, "old").unwrap(), old_done);
    assert_eq!(s.get(L, "old").unwrap().to_vec().unwrap(), b"old");
    assert_eq!(s.get(L, "new").unwrap().to_vec().unwrap(), b"new");
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn a_huge_window_saturates_to_forever() {
    for huge in [
        Duration::MAX,
        Duration::from_millis(u64::MAX),
        Duration::from_secs(u64::MAX / 1000 + 1),
    ] {
        let (d, s) = store(huge);
        let (up, done, _) = complete(&s, "k");
        assert_remembered(&s, &up, &done);
        assert_eq!(s.expire_uploads(Duration::ZERO).unwrap(), 0);
        compact_with_snapshot(&s);
        assert_eq!(s.stats().completed_uploads, 1, "{huge:?}");
        let s = reopen(&d, s, huge);
        assert_remembered(&s, &up, &done);
    }
}

#[test]
fn a_zero_window_forgets_once_complete_returns() {
    let (d, s) = store(Duration::ZERO);
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"zero")).unwrap();
    // The complete itself still reports the object it published.
    let done = s.complete_multipart(L, &up).unwrap();
    assert_eq!((done.key.as_str(), done.size), ("k", 4));
    assert_eq!(s.head(L, "k").unwrap(), done);
    assert_unknown(&s, &up);
    // complete_multipart_with too.
    let up2 = s.start_multipart(L, "k2", OCTET).unwrap();
    let p = s.upload_part(L, &up2, 1, body(b"two")).unwrap();
    let done2 = s
        .complete_multipart_with(
            L,
            &up2,
            &[PartRef {
                number: 1,
                id: p.id,
            }],
        )
        .unwrap();
    assert_eq!(s.head(L, "k2").unwrap(), done2);
    assert_unknown(&s, &up2);

    assert_eq!(s.stats().completed_uploads, 2);
    assert_eq!(s.expire_uploads(Duration::from_secs(3600)).unwrap(), 0);
    assert_eq!(s.stats().completed_uploads, 0);
    let s = reopen(&d, s, Duration::ZERO);
    assert_eq!(s.stats().completed_uploads, 0);
    assert_unknown(&s, &up);
    assert_eq!(s.get(L, "k").unwrap().to_vec().unwrap(), b"zero");
}
