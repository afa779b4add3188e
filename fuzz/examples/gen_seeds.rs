//! Writes the hand-made seed inputs of the index targets (operation
//! sequences, encoded so that `Op::arbitrary` reads them back) to
//! `fuzz/corpus/index_ops` and `fuzz/corpus/index_replay`:
//! `cargo run --example gen_seeds` from `fuzz/`.

use fuzz_common::{parse_ops, run_ops, seeds, Op};

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
    let ops: Vec<Op> = seeds().into_iter().flat_map(|(_, ops)| ops).collect();
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
    for (name, ops) in seeds() {
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
