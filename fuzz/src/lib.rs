//! The fuzz targets' shared library: operations on the part index (`op`,
//! whose fields pick from `tables`), a deliberately simple reference model
//! of the index (`model`, `BTreeMap`s), and the `driver` that applies each
//! operation to the real index and to the model and checks they agree
//! after every step.
//!
//! The index is driven the way `Store` drives it. A request goes through
//! the index's planner first (`Index::plan_put`, `plan_part`, `plan_copy`),
//! whose answer must be the model's: the same refusal (kind and reason) or
//! the same plan, a copy's pieces being exactly the source's bytes of the
//! range. Then it becomes a `Meta` record: `Index::validate` must accept
//! exactly the records the model accepts (and fail with the kind it
//! predicts), and `Index::apply_validated` must leave the same visible
//! state.

pub mod driver;
pub mod model;
pub mod op;
pub mod tables;

pub use driver::{check_invariants, run_ops, Driver};
pub use model::{key_ok, layer_ok, Model, MIB};
pub use op::{parse_ops, seeds, Op, MAX_OPS};
