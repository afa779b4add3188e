//! The driver on fixed operation sequences (the seeds, hand-made ones, a
//! fixed pseudo-random batch, the committed corpus), and checks that its
//! comparisons are not vacuous.

use super::*;
use crate::model::MIB;
use crate::op::{parse_ops, seeds};

fn seed(name: &str) -> Vec<Op> {
    seeds()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, ops)| ops)
        .expect("a seed of that name")
}

/// Every hand-made seed runs clean and round-trips through its bytes.
#[test]
fn seeds_run_clean() {
    for (name, ops) in seeds() {
        let bytes: Vec<u8> = ops.iter().flat_map(Op::encode).collect();
        assert_eq!(parse_ops(&bytes), ops, "{name}");
        let d = run_ops(&ops);
        assert!(!d.applied.is_empty(), "{name}: nothing applied");
    }
}

#[test]
fn multipart_seed_completes_one_object() {
    let d = run_ops(&seed("multipart"));
    let (objects, open, _) = d.index.counts();
    assert_eq!((objects, open), (1, 0));
    let o = d.index.object("a", "k").expect("object");
    assert_eq!(o.part_count, 2);
    assert_eq!(o.size, 5 * MIB + body_size(4));
    // Two planned parts.
    assert_eq!(d.plans, 2);
}

/// The copy seed's two parts are planned by the index: 5 MiB from byte 0
/// and 2 MiB + 1 from byte 5 MiB of a 192 MiB object whose extent
/// outlives the object's delete (the parts, then the new object, hold
/// it).
#[test]
fn copy_seed_references_planned_ranges() {
    let ops = seed("copy-ranges");
    let (before_complete, _) = ops.split_at(ops.len() - 2);
    let d = run_ops(before_complete);
    let src = d.index.object("a", "k").expect("source");
    assert_eq!(src.size, 192 * MIB);
    let extent = src.pieces[0].extent;
    let upload = d.model.uploads.keys().next().copied().expect("upload");
    let u = d
        .index
        .open_upload("a", &upload, partstore::internals::Retention::forever())
        .expect("open");
    let got: Vec<_> = u
        .parts
        .values()
        .map(|p| (p.size, p.pieces.clone()))
        .collect();
    let piece = |offset, len| Piece {
        extent,
        offset,
        len,
    };
    assert_eq!(
        got,
        vec![
            (5 * MIB, vec![piece(0, 5 * MIB)]),
            (2 * MIB + 1, vec![piece(5 * MIB, 2 * MIB + 1)]),
        ]
    );
    let d = run_ops(&ops);
    let (objects, open, live) = d.index.counts();
    assert_eq!((objects, open), (1, 0));
    // The source is deleted; its extent stays, held by the new object.
    assert_eq!(live, 192 * MIB);
    let o = d.index.object("a", "k").expect("object");
    assert_eq!(o.size, 7 * MIB + 1);
    assert_eq!(*o.pieces, vec![piece(0, 7 * MIB + 1)]);
}

/// The errors seed: the second layer, every part (number 0, 96 MiB + 1,
/// an extra block CRC, a size short of its pieces), both completes and
/// the second abort are refused.
#[test]
fn errors_seed_refuses_what_it_should() {
    let d = run_ops(&seed("errors"));
    let kinds: Vec<&str> = d
        .applied
        .iter()
        .map(|m| match m {
            Meta::LayerCreated { .. } => "layer",
            Meta::UploadStarted { .. } => "start",
            Meta::PartSet { .. } => "part",
            Meta::UploadAborted { .. } => "abort",
            _ => "other",
        })
        .collect();
    // Start 255 names an id no start used: a second upload.
    assert_eq!(kinds, ["layer", "start", "abort", "start"]);
    assert_eq!(d.index.counts(), (0, 1, 0));
}

#[test]
fn expire_seed_aborts_only_the_idle_upload() {
    let d = run_ops(&seed("expire"));
    let (_, open, _) = d.index.counts();
    assert_eq!(open, 1);
    assert_eq!(d.model.uploads.len(), 1);
}

/// A put to a layer bound to a content type: the plan gives the layer's
/// type to a body without one, and refuses another type.
#[test]
fn put_plans_follow_the_layer_binding() {
    let layer = Op::CreateLayer {
        layer: 1,
        ct: 1,
        ce: 0,
    }; // "b", text/plain, no encoding
    let put = |key, ct| Op::Put {
        layer: 1,
        key,
        size: 4,
        ct,
        ce: 0,
        bad: 0,
    };
    // 192+: no type given; 1: text/plain; 3: image/png.
    let d = run_ops(&[layer, put(0, 192), put(1, 1), put(2, 3)]);
    let ct = |k| d.index.object("b", k).map(|o| o.content_type.clone());
    assert_eq!(ct("k").expect("k"), "text/plain");
    assert_eq!(ct("a/b").expect("a/b"), "text/plain");
    assert!(ct("a/c").is_err());
    assert_eq!(d.plans, 3);
}

/// Every refusal of `plan_copy`, then a copy into a completed upload,
/// each agreeing with the model (kind and reason).
#[test]
fn copy_refusals_agree() {
    let copy = |src, first, len, bad| Op::CopyPart {
        layer: 0,
        upload: 0,
        number: 1,
        src,
        first,
        len,
        bad,
    };
    let ops = vec![
        Op::CreateLayer {
            layer: 0,
            ct: 0,
            ce: 0,
        },
        // "k": 192 MiB; "a/b": 6 MiB.
        Op::Put {
            layer: 0,
            key: 0,
            size: 8 * 2 + 7,
            ct: 0,
            ce: 0,
            bad: 0,
        },
        Op::Put {
            layer: 0,
            key: 1,
            size: 8,
            ct: 0,
            ce: 0,
            bad: 0,
        },
        Op::Start {
            layer: 0,
            key: 0,
            ct: 0,
            ce: 0,
            reuse: 0,
        },
        copy(0, 0, 1, 8),         // bytes=0-: open
        copy(0, 0, 1, 9),         // bytes=-n: open
        copy(0, 0, 5, 10),        // bytes=1-..: unaligned
        copy(0, 0, 1, 11),        // past the end
        copy(0, 0, 1, 12),        // backwards
        copy(1, 0, 0, 0),         // the whole 192 MiB: too large
        copy(241, 0, 1, 0),       // "b": not there
        copy(254, 0, 1, 0),       // not a key
        copy(0, 0, 4 * 7 + 1, 0), // "a/b" bytes 0..=7: fine
        Op::Complete {
            layer: 0,
            upload: 0,
        },
        copy(0, 0, 1, 0), // the upload is completed
    ];
    let d = run_ops(&ops);
    let want = [
        Reason::CopyRangeOpen,
        Reason::CopyRangeUnaligned,
        Reason::InvalidRange,
        Reason::PartTooLarge,
        Reason::UnknownKey,
        Reason::InvalidKey,
        Reason::UploadCompleted,
    ];
    let got: HashSet<Reason> = d.refusals.clone();
    assert_eq!(got, want.into_iter().collect(), "refusals");
    let o = d.index.object("a", "k").expect("the completed copy");
    assert_eq!(o.size, 8);
}

/// Inputs from a fixed xorshift stream: many short random op sequences
/// (what the fuzzer starts from), each compared step by step.
#[test]
fn pseudo_random_inputs_agree() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut byte = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 24) as u8
    };
    let mut plans = 0;
    let mut applied = 0;
    let mut refusals = HashSet::new();
    for i in 0..500 {
        let n = 16 + i % 400;
        let data: Vec<u8> = (0..n).map(|_| byte()).collect();
        let d = run_ops(&parse_ops(&data));
        plans += d.plans;
        applied += d.applied.len();
        refusals.extend(d.refusals);
    }
    assert!(plans > 100, "{plans} plans");
    assert!(applied > 100, "{applied} records applied");
}

/// The committed corpus of the index targets replays clean.
#[test]
fn committed_corpus_runs_clean() {
    let mut n = 0;
    for target in ["index_ops", "index_replay"] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        for entry in std::fs::read_dir(&dir).expect("corpus dir") {
            let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
            run_ops(&parse_ops(&bytes));
            n += 1;
        }
    }
    assert!(n >= 12, "{n} corpus inputs");
}

/// The comparison is not vacuous: a model that differs is caught.
#[test]
#[should_panic(expected = "keys of layer a")]
fn compare_catches_a_missing_object() {
    let mut d = run_ops(&seed("multipart"));
    d.model.layers.get_mut("a").expect("layer").objects.clear();
    d.compare();
}

#[test]
#[should_panic(expected = "where extent")]
fn compare_catches_a_moved_extent() {
    let mut d = run_ops(&seed("objects-and-compaction"));
    let id = *d.model.live().keys().next().expect("a live extent");
    d.model.defs.get_mut(&id).expect("defined").segment += 1;
    d.compare();
}

#[test]
#[should_panic(expected = "index says")]
fn a_planner_that_disagrees_is_caught() {
    let d = Driver::new();
    agree(
        &mut HashSet::new(),
        || "plan".to_string(),
        d.index.plan_put("a", "k", 0, None, None).map(|_| ()),
        Ok(()),
    );
}
