//! The pure in-memory part index against a deliberately simple model
//! (`BTreeMap`s): an arbitrary sequence of operations (start, set part n to
//! an extent, overwrite, copy ranges, complete, complete_with, abort,
//! expire, put, delete, copy, compaction moves and snapshots). After every
//! step the visible parts, objects, sizes, CRCs, listings, extent
//! references and error kinds must agree, and nothing may panic. See
//! `fuzz/src/model.rs` for the model and `fuzz/src/driver.rs` for the
//! checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_common::run_ops(&fuzz_common::parse_ops(data));
});
