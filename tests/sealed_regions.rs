//! A part whose data region was reserved in a segment that other writers
//! then filled and sealed: its body goes on into the sealed segment (whose
//! file the store no longer keeps open), and its acknowledgement must still
//! mean durable.
//!
//! - `Sync`: the part is acknowledged only once its sealed segment's data
//!   is fdatasynced too (not just the active segment, where its record
//!   goes).
//! - `None`: after `sync()` returns, the part is durable (`sync()` syncs
//!   every segment written since its last fdatasync, the sealed one too).
//!
//! Durable is checked on the fault-injecting backend's model of the disk:
//! every state a power loss may leave (synced bytes, plus any subset of
//! later writes, each possibly torn) is opened and must hold the part byte
//! for byte. A control that skips `sync()` loses the part in some of those
//! states, so the check can fail.

mod common;

use std::io::Read;
use std::sync::mpsc;
use std::sync::Arc;

use common::faulty::{Faulty, Rng};
use common::gen;
use partstore::{Durability, LayerConfig, Options, PartBody, Store};

const MIB: usize = 1 << 20;
const PART: usize = 3 * MIB;

/// A body that sends a message after its first MiB and then waits to be
/// let go.
struct Paused<'a> {
    body: &'a [u8],
    at: usize,
    reached: Option<mpsc::Sender<()>>,
    resume: mpsc::Receiver<()>,
}

impl Read for Paused<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at >= MIB {
            if let Some(tx) = self.reached.take() {
                let _ = tx.send(());
                let _ = self.resume.recv();
            }
        }
        let stop = if self.at < MIB { MIB } else { self.body.len() };
        let n = buf.len().min(stop - self.at);
        buf[..n].copy_from_slice(&self.body[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Uploads part 1 of an upload while other puts fill the segment its
/// region is in and rotate past it; then (with `sync`) calls `sync()`.
/// Returns the backend, the store's directory and the part's bytes.
fn straddle(durability: Durability, sync: bool) -> (Faulty, tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let f = Faulty::new();
    let store = Store::open(
        dir.path(),
        Options::default()
            .durability(durability)
            .segment_size(8 * MIB as u64)
            .backend(Arc::new(f.clone())),
    )
    .unwrap();
    store.create_layer("l", LayerConfig::default()).unwrap();
    let up = store
        .start_multipart("l", "mp", "application/octet-stream")
        .unwrap();
    let part = gen(3, PART);
    let (reached_tx, reached) = mpsc::channel();
    let (resume_tx, resume) = mpsc::channel();
    std::thread::scope(|s| {
        let uploader = s.spawn(|| {
            let body = Paused {
                body: &part,
                at: 0,
                reached: Some(reached_tx),
                resume,
            };
            store.upload_part("l", &up, 1, PartBody::new(body, PART as u64))
        });
        reached.recv().unwrap();
        let segments = store.stats().segments;
        let filler = gen(4, MIB / 2);
        let mut i = 0;
        while store.stats().segments < segments + 2 {
            store
                .put_object(
                    "l",
                    &format!("f{i}"),
                    PartBody::new(&filler[..], filler.len() as u64),
                )
                .unwrap();
            i += 1;
        }
        resume_tx.send(()).unwrap();
        let info = uploader.join().unwrap().unwrap();
        assert_eq!(info.size, PART as u64);
    });
    if sync {
        store.sync().unwrap();
    }
    // No close: the state on disk is whatever was made durable so far.
    std::mem::forget(store);
    (f, dir, part)
}

fn part_in(dir: &std::path::Path, f: &Faulty, seed: u64) -> Option<Vec<u8>> {
    let out = tempfile::tempdir().unwrap();
    f.materialize(dir, out.path(), &mut Rng::new(seed));
    let store = Store::open(out.path(), Options::default()).unwrap();
    let up = store.list_uploads("l").unwrap().pop()?.upload;
    let parts = store.list_parts("l", &up).unwrap();
    if parts.is_empty() {
        return None;
    }
    let obj = store.complete_multipart("l", &up).ok()?;
    assert_eq!(obj.size, PART as u64);
    store.get("l", "mp").ok()?.to_vec().ok()
}

#[test]
fn a_part_reserved_before_a_rotation_is_durable_when_acknowledged() {
    let (f, dir, part) = straddle(Durability::Sync, false);
    for seed in 0..10 {
        let got = part_in(dir.path(), &f, seed);
        assert!(
            got.as_deref() == Some(&part[..]),
            "Sync, power-loss state {seed}: the acknowledged part is not there whole"
        );
    }
}

#[test]
fn a_part_reserved_before_a_rotation_is_durable_after_sync() {
    let (f, dir, part) = straddle(Durability::None, true);
    for seed in 0..10 {
        let got = part_in(dir.path(), &f, seed);
        assert!(
            got.as_deref() == Some(&part[..]),
            "None + sync(), power-loss state {seed}: the part is not there whole"
        );
    }
    // Control: without the sync, some power-loss states lose it.
    let (f, dir, part) = straddle(Durability::None, false);
    let lost = (0..10)
        .filter(|seed| part_in(dir.path(), &f, *seed).as_deref() != Some(&part[..]))
        .count();
    assert!(lost > 0, "the control never lost the unsynced part");
}
