//! The operation language: the `Op` enum the index targets decode their
//! input into, parsing bytes into a bounded list of operations, and the
//! encoding back to bytes that the hand-made seeds (also here) use.

use arbitrary::{Arbitrary, Unstructured};

/// One operation on the index, as the store would issue it. Fields are small
/// selectors into fixed tables or the current state, so that short inputs
/// reach deep states. Every field is a plain integer: `Op::encode` writes
/// the bytes `Arbitrary` reads back (hand-made seeds use it).
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    CreateLayer {
        layer: u8,
        ct: u8,
        ce: u8,
    },
    Start {
        layer: u8,
        key: u8,
        ct: u8,
        ce: u8,
        reuse: u8,
    },
    /// Part n becomes a freshly written extent (one piece covering it).
    SetPart {
        layer: u8,
        upload: u8,
        number: u8,
        size: u8,
        crc: u16,
        bad: u8,
    },
    /// Part n becomes an empty body (no extent).
    EmptyPart {
        layer: u8,
        upload: u8,
        number: u8,
    },
    /// Part n references a range of an existing object's extents.
    CopyPart {
        layer: u8,
        upload: u8,
        number: u8,
        src: u8,
        first: u8,
        len: u32,
        bad: u8,
    },
    Complete {
        layer: u8,
        upload: u8,
    },
    CompleteWith {
        layer: u8,
        upload: u8,
        mask: u16,
        rotate: u8,
        tweak: u8,
    },
    Abort {
        layer: u8,
        upload: u8,
    },
    Expire {
        idle: u16,
    },
    Put {
        layer: u8,
        key: u8,
        size: u8,
        ct: u8,
        ce: u8,
        bad: u8,
    },
    Delete {
        layer: u8,
        key: u8,
    },
    CopyObject {
        layer: u8,
        src: u8,
        dst: u8,
    },
    /// Compaction moving an extent.
    Move {
        extent: u8,
        segment: u8,
    },
    Tick {
        delta: u16,
    },
    /// Compaction's snapshot record.
    Snapshot,
}

/// The `u32` that makes the derived `Arbitrary` pick variant `i` of `n`.
fn variant(i: u64, n: u64) -> [u8; 4] {
    (i << 32).div_ceil(n).to_le_bytes()[..4]
        .try_into()
        .unwrap_or([0; 4])
}

impl Op {
    /// Bytes that `Op::arbitrary` decodes into this operation.
    pub fn encode(&self) -> Vec<u8> {
        const N: u64 = 15;
        let mut v = Vec::new();
        let mut tag = |i: u64, fields: &[&[u8]]| {
            v.extend_from_slice(&variant(i, N));
            for f in fields {
                v.extend_from_slice(f);
            }
        };
        match *self {
            Op::CreateLayer { layer, ct, ce } => tag(0, &[&[layer, ct, ce]]),
            Op::Start {
                layer,
                key,
                ct,
                ce,
                reuse,
            } => tag(1, &[&[layer, key, ct, ce, reuse]]),
            Op::SetPart {
                layer,
                upload,
                number,
                size,
                crc,
                bad,
            } => tag(
                2,
                &[&[layer, upload, number, size], &crc.to_le_bytes(), &[bad]],
            ),
            Op::EmptyPart {
                layer,
                upload,
                number,
            } => tag(3, &[&[layer, upload, number]]),
            Op::CopyPart {
                layer,
                upload,
                number,
                src,
                first,
                len,
                bad,
            } => tag(
                4,
                &[
                    &[layer, upload, number, src, first],
                    &len.to_le_bytes(),
                    &[bad],
                ],
            ),
            Op::Complete { layer, upload } => tag(5, &[&[layer, upload]]),
            Op::CompleteWith {
                layer,
                upload,
                mask,
                rotate,
                tweak,
            } => tag(
                6,
                &[&[layer, upload], &mask.to_le_bytes(), &[rotate, tweak]],
            ),
            Op::Abort { layer, upload } => tag(7, &[&[layer, upload]]),
            Op::Expire { idle } => tag(8, &[&idle.to_le_bytes()]),
            Op::Put {
                layer,
                key,
                size,
                ct,
                ce,
                bad,
            } => tag(9, &[&[layer, key, size, ct, ce, bad]]),
            Op::Delete { layer, key } => tag(10, &[&[layer, key]]),
            Op::CopyObject { layer, src, dst } => tag(11, &[&[layer, src, dst]]),
            Op::Move { extent, segment } => tag(12, &[&[extent, segment]]),
            Op::Tick { delta } => tag(13, &[&delta.to_le_bytes()]),
            Op::Snapshot => tag(14, &[]),
        }
        v
    }
}

/// At most this many operations per input: long enough for every state,
/// short enough that each execution stays fast.
pub const MAX_OPS: usize = 256;

/// Decodes an input into operations until it runs out.
pub fn parse_ops(data: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

/// The hand-made seed inputs of the index targets, by name: each reaches a
/// state short random inputs rarely do (`examples/gen_seeds.rs` writes them
/// to `corpus/`; the driver's tests run them).
pub fn seeds() -> Vec<(&'static str, Vec<Op>)> {
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
