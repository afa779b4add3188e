//! kill -9 at random moments: a child process ingests with
//! `Durability::Sync` and prints each acknowledgement; the parent kills it
//! with SIGKILL, reopens the store and checks every acknowledged put, part
//! and completion byte for byte, and that an operation in flight is wholly
//! there or wholly absent.
//!
//! The child is this test binary re-run with `kill9_child` and an env var.
//! Iterations: PARTSTORE_KILL9_ITERS (default 200).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use partstore::{Durability, LayerConfig, Options, PartBody, Store, UploadId, UploadStatus};

fn put_bytes(i: u64) -> Vec<u8> {
    common::gen(i, 1 + (i as usize * 7919) % 40_000)
}

fn part_bytes(i: u64, version: u64) -> Vec<u8> {
    common::gen(
        i * 10 + version,
        100 + (i as usize * 31 + version as usize * 977) % 20_000,
    )
}

/// The child: ingest forever from PARTSTORE_KILL9_START, acknowledging on
/// stdout after each call returns Ok.
#[test]
fn kill9_child() {
    let Ok(dir) = std::env::var("PARTSTORE_KILL9_CHILD") else {
        return; // only runs as the child of kill9_loop
    };
    let start: u64 = std::env::var("PARTSTORE_KILL9_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let store = Store::open(
        &dir,
        Options::default()
            .durability(Durability::Sync)
            .segment_size(4 << 20),
    )
    .unwrap();
    let _ = store.create_layer("l", LayerConfig::default());
    let out = std::io::stdout();
    let ack = |line: String| {
        let mut o = out.lock();
        writeln!(o, "ack {line}").unwrap();
        o.flush().unwrap();
    };
    for i in start.. {
        let b = put_bytes(i);
        store
            .put_object("l", &format!("p{i}"), PartBody::new(&b[..], b.len() as u64))
            .unwrap();
        ack(format!("put {i}"));
        if i.is_multiple_of(3) {
            let up = store
                .start_multipart("l", &format!("m{i}"), "application/octet-stream")
                .unwrap();
            ack(format!("start {i} {up}"));
            for v in 1..=2 {
                let b = part_bytes(i, v);
                store
                    .upload_part("l", &up, 1, PartBody::new(&b[..], b.len() as u64))
                    .unwrap();
                ack(format!("part {i} {v}"));
            }
            store.complete_multipart("l", &up).unwrap();
            ack(format!("complete {i}"));
        }
        if i.is_multiple_of(7) {
            store.delete("l", &format!("p{}", i / 2)).unwrap();
            ack(format!("delete {}", i / 2));
        }
    }
}

/// The child's operations from `start`, as its acknowledgements name them.
fn child_ops(start: u64, n: usize) -> Vec<String> {
    let mut ops = Vec::new();
    let mut i = start;
    while ops.len() < n {
        ops.push(format!("put {i}"));
        if i.is_multiple_of(3) {
            ops.extend([
                format!("start {i}"),
                format!("part {i} 1"),
                format!("part {i} 2"),
                format!("complete {i}"),
            ]);
        }
        if i.is_multiple_of(7) {
            ops.push(format!("delete {}", i / 2));
        }
        i += 1;
    }
    ops
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Presence {
    Present,
    Absent,
    /// A delete was in flight when the child was killed.
    Either,
}

#[derive(Default, Debug)]
struct Upload {
    token: Option<UploadId>,
    part: u64,
    complete: bool,
}

#[test]
fn kill9_loop() {
    let iters: u64 = std::env::var("PARTSTORE_KILL9_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let mut puts: BTreeMap<u64, Presence> = BTreeMap::new();
    let mut uploads: BTreeMap<u64, Upload> = BTreeMap::new();
    let mut sums: BTreeMap<u64, (usize, u32)> = BTreeMap::new();
    let mut next = 0u64;
    let mut rng = 0x1234_5678_9abc_def1u64;
    let mut acked_total = 0;
    for it in 0..iters {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_millis(5 + rng % 80);
        let child = common::Child::spawn(
            "kill9_child",
            &[
                ("PARTSTORE_KILL9_CHILD", dir.path().display().to_string()),
                ("PARTSTORE_KILL9_START", next.to_string()),
            ],
            |l| l.find("ack ").map(|p| p + 4),
        );
        // Most kills land while the child works (counted from its first
        // acknowledgement, so a slow start on a loaded machine still gets
        // work done); one in four is counted from the spawn, so some land
        // in its start and recovery.
        if it % 4 != 0 {
            let _ = child.first.recv_timeout(Duration::from_secs(30));
        }
        std::thread::sleep(delay);
        let acks = child.kill(); // SIGKILL
        let start = next;
        acked_total += acks.len();
        if std::env::var("PARTSTORE_KILL9_DEBUG").is_ok() {
            eprintln!("iteration {it} (start {next}): {acks:?}");
        }
        for a in &acks {
            let f: Vec<&str> = a.split(' ').collect();
            let i: u64 = f[1].parse().unwrap();
            match f[0] {
                "put" => {
                    puts.insert(i, Presence::Present);
                    next = next.max(i + 1);
                }
                "delete" => {
                    puts.insert(i, Presence::Absent);
                }
                "start" => uploads.entry(i).or_default().token = Some(f[2].parse().unwrap()),
                "part" => uploads.entry(i).or_default().part = f[2].parse().unwrap(),
                "complete" => uploads.entry(i).or_default().complete = true,
                _ => panic!("bad ack {a}"),
            }
        }
        // The acknowledgements are the child's sequence in order; the op
        // after the last one was in flight and may or may not have happened.
        let expected = child_ops(start, acks.len() + 1);
        for (a, e) in acks.iter().zip(&expected) {
            assert!(
                a.starts_with(e.as_str()),
                "iteration {it}: ack {a:?}, expected {e:?}"
            );
        }
        if let Some(j) = expected[acks.len()].strip_prefix("delete ") {
            let j: u64 = j.parse().unwrap();
            if puts.get(&j) == Some(&Presence::Present) {
                puts.insert(j, Presence::Either);
            }
        }
        // The op in flight when killed may or may not have happened; the
        // next child starts after the last acknowledged put, so it redoes
        // it with the same bytes.
        let store = Store::open(dir.path(), Options::default())
            .unwrap_or_else(|e| panic!("iteration {it}: open after kill -9: {e}"));
        for (i, presence) in &puts {
            let r = store.get("l", &format!("p{i}"));
            match (presence, r) {
                (Presence::Absent, Ok(_)) => panic!("iteration {it}: acked delete of p{i} undone"),
                (Presence::Present, Err(e)) => panic!("iteration {it}: acked put p{i} lost: {e}"),
                (_, Ok(got)) => {
                    let got = got.to_vec().unwrap();
                    // What this run touched, and everything every 20th
                    // run, byte for byte; the rest against the length and
                    // CRC32C of its bytes (computed once: regenerating
                    // every object's bytes every iteration made the test
                    // quadratic in a debug build).
                    if *i >= start || it % 20 == 0 {
                        assert_eq!(got, put_bytes(*i), "iteration {it}: p{i}");
                    } else {
                        let want = *sums.entry(*i).or_insert_with(|| {
                            let b = put_bytes(*i);
                            (b.len(), crc32c::crc32c(&b))
                        });
                        assert_eq!(
                            (got.len(), crc32c::crc32c(&got)),
                            want,
                            "iteration {it}: p{i}"
                        );
                    }
                }
                (_, Err(e)) => assert_eq!(e.kind(), partstore::ErrorKind::NotFound),
            }
        }
        for (i, u) in &uploads {
            let obj = store.get("l", &format!("m{i}"));
            if u.complete {
                assert_eq!(obj.unwrap().to_vec().unwrap(), part_bytes(*i, 2), "m{i}");
                continue;
            }
            let Some(token) = &u.token else { continue };
            match store.upload_status("l", token) {
                Ok(UploadStatus::Completed) => {
                    // Completion was in flight: wholly done.
                    assert_eq!(
                        u.part, 2,
                        "iteration {it}: m{i} completed without part 2 acked"
                    );
                    assert_eq!(obj.unwrap().to_vec().unwrap(), part_bytes(*i, 2));
                }
                Ok(UploadStatus::Open { .. }) => {
                    let parts = store.list_parts("l", token).unwrap();
                    let allowed: Vec<u64> = match u.part {
                        0 => vec![0, 1],
                        1 => vec![1, 2],
                        _ => vec![2],
                    };
                    let seen = match parts.first() {
                        None => 0,
                        Some(p) => (1..=2)
                            .find(|v| p.crc32c == crc32c::crc32c(&part_bytes(*i, *v)))
                            .unwrap_or(99),
                    };
                    assert!(
                        allowed.contains(&seen),
                        "iteration {it}: m{i} part version {seen}, acked {}",
                        u.part
                    );
                }
                Err(e) => panic!("iteration {it}: acked upload m{i} lost: {e}"),
            }
        }
        if it % 20 == 0 || it + 1 == iters {
            assert!(store.verify().unwrap().is_clean(), "iteration {it}: verify");
        }
        // Uploads the child left open are never resumed; the child restarts
        // from `next` with fresh keys.
        uploads.retain(|_, u| !u.complete || u.token.is_some());
    }
    println!("kill -9 iterations: {iters}, acknowledged operations checked: {acked_total}");
    assert!(
        acked_total > iters as usize,
        "the child acknowledged too little"
    );
}
