//! The operation language: the `Op` enum the index targets decode their
//! input into, its byte encoding for hand-made seeds, and parsing bytes
//! into a bounded list of operations.

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
