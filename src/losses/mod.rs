//! Every builtin loss, grouped by family. [`BUILTINS`] is the one explicit list of them.

pub mod classification;
pub mod lm;

use crate::registry::LossDef;

/// The builtin losses, in catalogue order. Adding a loss = one module + one line here.
pub static BUILTINS: &[fn() -> LossDef] = &[
    classification::cross_entropy::def,
    lm::cut_cross_entropy::def,
];
