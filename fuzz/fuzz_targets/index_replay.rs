//! Recovery rebuilds the live index: the operation sequences of `index_ops`
//! are applied live, every accepted record is encoded and framed as the log
//! holds it, then scanned, decoded and replayed as `Store::open` does (from
//! the last snapshot record on). The rebuilt index must equal the live one,
//! and so must a replay of the whole log and a snapshot round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partstore::internals::{
    frame_meta, framed_len, Index, Meta, RecordHeader, RecordKind, RECORD_HEADER_LEN,
};

fuzz_target!(|data: &[u8]| {
    let live = fuzz_common::run_ops(&fuzz_common::parse_ops(data));

    // The log: one framed metadata record per accepted change.
    let mut log = Vec::new();
    for m in &live.applied {
        let payload = m.encode();
        assert_eq!(
            Meta::decode(&payload).ok().as_ref(),
            Some(m),
            "encode/decode"
        );
        log.extend_from_slice(&frame_meta(&payload));
    }

    // Scan it back the way `open` does.
    let mut metas = Vec::new();
    let mut pos = 0usize;
    while pos < log.len() {
        let h = RecordHeader::decode(&log[pos..]).expect("a valid header");
        assert_eq!(h.kind, RecordKind::Meta);
        let start = pos + RECORD_HEADER_LEN as usize;
        let payload = &log[start..start + h.len as usize];
        assert_eq!(crc32c::crc32c(payload), h.payload_crc);
        metas.push(Meta::decode(payload).expect("decodes"));
        pos += framed_len(h.len) as usize;
    }
    assert_eq!(pos, log.len());
    assert_eq!(metas, live.applied);

    // Replay from the last snapshot on, as `open` does.
    let from = metas
        .iter()
        .rposition(|m| matches!(m, Meta::Snapshot(_)))
        .unwrap_or(0);
    let mut rebuilt = Index::new();
    for m in metas[from..].iter().cloned() {
        rebuilt
            .apply(m)
            .expect("a record the live index accepted replays");
    }
    assert!(
        rebuilt == live.index,
        "replay from the last snapshot differs from the live index"
    );

    // Replaying the whole log (snapshots included) ends the same way.
    let mut all = Index::new();
    for m in metas {
        all.apply(m).expect("replays");
    }
    assert!(all == live.index, "full replay differs from the live index");

    // A snapshot record written now restores the same index.
    let snap = Meta::Snapshot(Box::new(
        live.index
            .snapshot(partstore::internals::Retention::forever()),
    ));
    let Ok(Meta::Snapshot(s)) = Meta::decode(&snap.encode()) else {
        panic!("snapshot record does not decode");
    };
    let restored = Index::restore(&s).expect("own snapshot restores");
    assert!(restored == live.index, "restored snapshot differs");
    assert_eq!(
        restored.snapshot(partstore::internals::Retention::forever()),
        *s,
        "snapshot is not deterministic"
    );
});
