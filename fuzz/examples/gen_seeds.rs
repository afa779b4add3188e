//! Writes the hand-made seed inputs of the index targets (operation
//! sequences, encoded so that `Op::arbitrary` reads them back) to
//! `fuzz/corpus/index_ops` and `fuzz/corpus/index_replay`:
//! `cargo run --example gen_seeds` from `fuzz/`.

use fuzz_common::{parse_ops, run_ops, Op};

fn main() {
    record_seeds();
    index_seeds();
}

/// Seeds of `record_decode`: each record payload the index seeds write,
/// plus a segment header and a record header.
fn record_seeds() {
    use partstore::internals::{encode_segment_header, RecordHeader, RecordKind};
    let dir = "corpus/record_decode";
    std::fs::create_dir_all(dir).expect("mkdir");
    let ops: Vec<Op> = index_seed_ops()
        .into_iter()
        .flat_map(|(_, ops)| ops)
        .collect();
    let mut d = fuzz_common::Driver::new();
    for op in &ops {
        d.run(op);
    }
    d.run(&Op::Snapshot);
    let mut kinds = std::collections::BTreeSet::new();
    for m in &d.applied {
        let name = format!("{m:?}")
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("")
            .to_string();
        if kinds.insert(name.clone()) {
            std::fs::write(format!("{dir}/{name}"), m.encode()).expect("write seed");
        }
    }
    std::fs::write(format!("{dir}/segment-header"), encode_segment_header(7)).expect("write");
    let h = RecordHeader {
        kind: RecordKind::Meta,
        len: 40,
        payload_crc: 1,
    };
    std::fs::write(format!("{dir}/record-header"), h.encode()).expect("write");
    println!("record_decode: {} seeds", kinds.len() + 2);
}

fn index_seeds() {
    for (name, ops) in index_seed_ops() {
        let bytes: Vec<u8> = ops.iter().flat_map(Op::encode).collect();
        assert_eq!(
            parse_ops(&bytes),
            ops,
            "{name}: encoding does not round-trip"
        );
        let d = run_ops(&ops); // a seed must pass
        let (objects, uploads, live) = d.index.counts();
        for target in ["index_ops", "index_replay"] {
            let dir = format!("corpus/{target}");
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(format!("{dir}/{name}"), &bytes).expect("write seed");
        }
        println!(
            "{name}: {} ops, {} bytes; {} records applied, {objects} objects, {uploads} open uploads, {live} live bytes",
            ops.len(),
            bytes.len(),
            d.applied.len()
        );
    }
}

fn index_seed_ops() -> Vec<(&'static str, Vec<Op>)> {
    use Op::*;
    let layer = CreateLayer {
        layer: 0,
        ct: 0,
        ce: 0,
    };
    let start = |reuse| Start {
        layer: 0,
        key: 0,
        ct: 0,
        ce: 0,
        reuse,
    };
    let set = |number, size, bad| SetPart {
        layer: 0,
        upload: 0,
        number,
        size,
        crc: 7,
        bad,
    };
    let seeds: Vec<(&str, Vec<Op>)> = vec![
        (
            "multipart",
            vec![
                layer.clone(),
                start(0),
                set(1, 0, 0),
                set(2, 4, 0),
                Complete {
                    layer: 0,
                    upload: 0,
                },
            ],
        ),
        (
            "overwrite-and-complete-with",
            vec![
                layer.clone(),
                start(0),
                set(1, 0, 0),
                set(1, 1, 0),
                set(2, 0, 0),
                set(3, 4, 0),
                EmptyPart {
                    layer: 0,
                    upload: 0,
                    number: 4,
                },
                CompleteWith {
                    layer: 0,
                    upload: 0,
                    mask: 0b0111,
                    rotate: 1,
                    tweak: 7,
                },
            ],
        ),
        (
            "copy-ranges",
            vec![
                layer.clone(),
                Put {
                    layer: 0,
                    key: 0,
                    size: 8 * 2 + 7,
                    ct: 0,
                    ce: 0,
                    bad: 0,
                }, // 192 MiB
                start(0),
                CopyPart {
                    layer: 0,
                    upload: 0,
                    number: 1,
                    src: 0,
                    first: 0,
                    len: 4 * ((5 << 20) - 1) + 1,
                    bad: 0,
                },
                CopyPart {
                    layer: 0,
                    upload: 0,
                    number: 2,
                    src: 0,
                    first: 5,
                    len: 4 * (2 << 20) + 1,
                    bad: 0,
                },
                Delete { layer: 0, key: 0 },
                Complete {
                    layer: 0,
                    upload: 0,
                },
            ],
        ),
        (
            "errors",
            vec![
                layer.clone(),
                layer.clone(),
                start(0),
                set(0, 0, 0),
                set(1, 15, 0), // 96 MiB + 1
                set(1, 0, 11),
                set(1, 0, 14),
                Complete {
                    layer: 0,
                    upload: 0,
                },
                CompleteWith {
                    layer: 0,
                    upload: 0,
                    mask: 1,
                    rotate: 0,
                    tweak: 0,
                },
                Abort {
                    layer: 0,
                    upload: 0,
                },
                Abort {
                    layer: 0,
                    upload: 0,
                },
                start(255),
            ],
        ),
        (
            "objects-and-compaction",
            vec![
                layer.clone(),
                CreateLayer {
                    layer: 1,
                    ct: 1,
                    ce: 2,
                },
                Put {
                    layer: 0,
                    key: 1,
                    size: 4,
                    ct: 0,
                    ce: 0,
                    bad: 0,
                },
                Put {
                    layer: 0,
                    key: 3,
                    size: 0,
                    ct: 0,
                    ce: 0,
                    bad: 0,
                },
                CopyObject {
                    layer: 0,
                    src: 1,
                    dst: 2,
                },
                Put {
                    layer: 1,
                    key: 0,
                    size: 4,
                    ct: 1,
                    ce: 1,
                    bad: 0,
                },
                Move {
                    extent: 0,
                    segment: 3,
                },
                Snapshot,
                Delete { layer: 0, key: 1 },
            ],
        ),
        (
            "expire",
            vec![
                layer,
                start(0),
                set(1, 0, 0),
                Tick { delta: 5000 },
                start(0),
                Expire { idle: 1000 },
            ],
        ),
    ];
    seeds
}
