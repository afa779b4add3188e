//! Everything at once, checked against a model: writer threads put, replace,
//! delete and copy objects and run multipart uploads (a part overwritten,
//! some aborted, some assembled by `copy_part`), each over its own keys so
//! it can keep an exact model; reader threads read and list everyone's
//! objects and check that each is whole (a self-describing body: never a
//! mix of versions, never a torn one); a maintenance thread compacts,
//! verifies, expires uploads and syncs in a loop. Small segments and
//! checkpoint thresholds make rotations, compactions and checkpoints happen
//! throughout. Then every key is checked against its writer's model, the
//! listing and the stats agree with it, and the same holds after a reopen,
//! a compaction, and a second reopen.
//!
//! Durability of the first test: `PARTSTORE_CHAOS_DURABILITY` = `sync`
//! (default), `batched` or `none`; the second always runs under `None`.
//! Operations per writer: `PARTSTORE_CHAOS_OPS` (default 120).

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::faulty::Rng;
use common::{tag_of, tagged};
use partstore::*;

const L: &str = "chaos";
const CT: &str = "application/octet-stream";
const WRITERS: u64 = 4;
/// Keys per writer.
const OWN: u64 = 24;
const MIB: usize = 1 << 20;

fn read(s: &Store, key: &str) -> partstore::Result<Vec<u8>> {
    let blob = s.get(L, key)?;
    let mut out = Vec::new();
    blob.reader()
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("reading {key}: {e}"));
    assert_eq!(out.len() as u64, blob.size(), "{key}");
    assert_eq!(crc32c::crc32c(&out), blob.info().crc32c, "{key}");
    Ok(out)
}

fn key(writer: u64, r: &mut Rng) -> String {
    format!("w{writer}/d{}/k{:02}", r.next() % 3, r.next() % OWN)
}

/// One writer's run; returns its model (key -> tag of the live body).
fn writer(s: &Store, w: u64, ops: u64) -> HashMap<String, Option<u64>> {
    let mut r = Rng::new(0x9e37_79b9 + w * 7919);
    let mut model: HashMap<String, Option<u64>> = HashMap::new();
    for op in 1..=ops {
        let k = key(w, &mut r);
        let tag = (w << 32) | op;
        let len = match r.next() % 8 {
            0 => 0,
            1..=5 => (r.next() % 9000) as usize,
            _ => (r.next() % 400_000) as usize,
        };
        match r.next() % 24 {
            0..=9 => {
                let b = tagged(tag, len);
                let o = s
                    .put_object(L, &k, PartBody::new(&b[..], b.len() as u64))
                    .unwrap();
                assert_eq!(o.size, b.len() as u64);
                model.insert(k, Some(tag));
            }
            10..=14 => {
                s.delete(L, &k).unwrap();
                model.insert(k, None);
            }
            15..=17 => {
                let src = key(w, &mut r);
                let had = model.get(&src).copied().flatten();
                match s.copy_object(L, &k, &src) {
                    Ok(_) => {
                        assert!(had.is_some(), "copy from absent {src} succeeded");
                        model.insert(k, had);
                    }
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
                        assert!(had.is_none(), "copy from {src} failed: {e}");
                    }
                }
            }
            18 => {
                // Two parts; part 1 first uploaded with junk, then replaced.
                let whole = tagged(tag, 5 * MIB + len);
                let (a, b) = whole.split_at(5 * MIB);
                let up = s.start_multipart(L, &k, CT).unwrap();
                let junk = vec![0xA5; 5 * MIB];
                s.upload_part(L, &up, 1, PartBody::new(&junk[..], junk.len() as u64))
                    .unwrap();
                s.upload_part(L, &up, 2, PartBody::new(b, b.len() as u64))
                    .unwrap();
                s.upload_part(L, &up, 1, PartBody::new(a, a.len() as u64))
                    .unwrap();
                if r.next().is_multiple_of(3) {
                    s.abort_multipart(L, &up).unwrap();
                } else {
                    let o = s.complete_multipart(L, &up).unwrap();
                    assert_eq!(o.size, whole.len() as u64);
                    assert_eq!(o.part_count, 2);
                    assert!(matches!(
                        s.upload_status(L, &up).unwrap(),
                        UploadStatus::Completed
                    ));
                    model.insert(k, Some(tag));
                }
            }
            19 => {
                // One part copied whole out of another of this writer's objects.
                let src = key(w, &mut r);
                let size = s.head(L, &src).map(|o| o.size).unwrap_or(0);
                if size > 0 {
                    let had = model.get(&src).copied().flatten();
                    let up = s.start_multipart(L, &k, CT).unwrap();
                    let range = format!("bytes=0-{}", size - 1).parse().unwrap();
                    s.copy_part(L, &up, 1, CopySource::new(&src, range))
                        .unwrap();
                    s.complete_multipart(L, &up).unwrap();
                    model.insert(k, had);
                }
            }
            _ => match read(s, &k) {
                Ok(b) => {
                    let got = tag_of(&b).unwrap_or_else(|e| panic!("{k}: {e}"));
                    assert_eq!(model.get(&k), Some(&Some(got)), "{k}");
                }
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::NotFound, "{k}: {e}");
                    assert!(model.get(&k).copied().flatten().is_none(), "{k} lost");
                }
            },
        }
    }
    model
}

/// Every key of the model reads back as its last write; the listing and the
/// stats count exactly the live ones.
fn check_model(s: &Store, model: &HashMap<String, Option<u64>>, when: &str) {
    let mut live = 0;
    for (k, want) in model {
        match (want, read(s, k)) {
            (Some(tag), Ok(b)) => {
                let got = tag_of(&b).unwrap_or_else(|e| panic!("{when}, {k}: {e}"));
                assert_eq!(got, *tag, "{when}, {k}");
                live += 1;
            }
            (None, Err(e)) => assert_eq!(e.kind(), ErrorKind::NotFound, "{when}, {k}: {e}"),
            (want, got) => panic!(
                "{when}, {k}: wanted {want:?}, got {:?}",
                got.map(|b| b.len())
            ),
        }
    }
    let (mut listed, mut token) = (0, None);
    loop {
        let mut o = ListOptions::default().deep(true).limit(7);
        if let Some(t) = token.take() {
            o = o.page_token(t);
        }
        let page = s.list(L, &o).unwrap();
        listed += page.items.len();
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(listed, live, "{when}: listing");
    assert_eq!(s.stats().objects, live, "{when}: stats");
    assert_eq!(s.stats().uploads, 0, "{when}: open uploads");
}

#[test]
fn writers_readers_and_maintenance_at_once_match_the_model() {
    chaos(
        match std::env::var("PARTSTORE_CHAOS_DURABILITY").as_deref() {
            Ok("none") => Durability::None,
            Ok("batched") => Durability::Batched,
            _ => Durability::Sync,
        },
    );
}

/// The same under `Durability::None`, whose small appends are copies into
/// the active segment's writable map while readers read the same pages
/// through the read-only one.
#[test]
fn the_same_under_durability_none() {
    chaos(Durability::None);
}

fn chaos(durability: Durability) {
    let ops: u64 = std::env::var("PARTSTORE_CHAOS_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let opts = Options::default()
        .durability(durability)
        .segment_size(8 << 20)
        .checkpoint_bytes(256 << 10)
        .compact_threshold(0.1)
        .recycle_segments(2);
    let s = Arc::new(Store::open(dir.path(), opts.clone()).unwrap());
    s.create_layer(L, LayerConfig::new(CT)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || writer(&s, w, ops))
        })
        .collect();
    let readers: Vec<_> = (0..2u64)
        .map(|t| {
            let (s, stop) = (Arc::clone(&s), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut r = Rng::new(0x51ed + t);
                let mut whole = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let k = key(r.next() % WRITERS, &mut r);
                    match read(&s, &k) {
                        Ok(b) => {
                            tag_of(&b).unwrap_or_else(|e| panic!("reader, {k}: {e}"));
                            whole += 1;
                        }
                        Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound, "{k}: {e}"),
                    }
                    let page = s
                        .list(L, &ListOptions::default().parent("w1").limit(5))
                        .unwrap();
                    assert!(page.items.len() <= 5);
                }
                whole
            })
        })
        .collect();
    let maintenance = {
        let (s, stop) = (Arc::clone(&s), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) {
                s.compact().unwrap();
                let v = s.verify().unwrap();
                assert!(v.is_clean(), "{v:?}");
                s.expire_uploads(Duration::from_secs(3600)).unwrap();
                s.sync().unwrap();
                rounds += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            rounds
        })
    };

    let mut model = HashMap::new();
    for w in writers {
        model.extend(w.join().unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let whole: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    let rounds = maintenance.join().unwrap();
    println!("{whole} whole reads by readers, {rounds} maintenance rounds");
    assert!(rounds > 0);

    let recycled = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seg-"))
        })
        .filter(|p| std::fs::read(p).is_ok_and(|b| b.get(8) == Some(&2)))
        .count();
    println!("{recycled} recycled segment files in use");
    check_model(&s, &model, "before the reopen");
    drop(s);
    let s = Store::open(dir.path(), opts.clone()).unwrap();
    check_model(&s, &model, "after the reopen");
    assert!(s.verify().unwrap().is_clean());
    let report = s.compact().unwrap();
    let compacted = s.stats();
    check_model(&s, &model, "after a compaction");
    drop(s);
    let s = Store::open(dir.path(), opts).unwrap();
    check_model(&s, &model, "after a second reopen");
    // Compacted: every segment but the newest (which holds the compaction's
    // own checkpoint pages) keeps at most the threshold's share of garbage.
    let st = s.stats();
    let newest = st.per_segment.iter().map(|g| g.id).max();
    for g in st.per_segment.iter().filter(|g| Some(g.id) != newest) {
        assert!(
            g.garbage_bytes as f64 <= 0.1 * g.data_bytes as f64,
            "after a compaction ({report:?}, then {compacted:?}, then reopened): {g:?}"
        );
    }
}
