//! Shared by the fuzz targets: an operation language for the part index
//! (`op`, with its selector tables in `tables`), a deliberately simple
//! model of the index (`model`, `BTreeMap`s), and a driver (`driver`) that
//! applies each operation to both and checks they agree after every step.
//!
//! The index is driven the way `Store` drives it: every operation becomes a
//! `Meta` record; `Index::validate` must accept exactly the records the
//! model accepts (and fail with the kind it predicts), and
//! `Index::apply_validated` must leave the same visible state.

pub mod driver;
pub mod model;
pub mod op;
pub mod tables;

pub use driver::{check_invariants, run_ops, Driver};
pub use model::{key_ok, layer_ok, Model, MIB};
pub use op::{parse_ops, Op, MAX_OPS};
