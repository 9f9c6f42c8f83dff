//! Every builtin loss, grouped by family. [`BUILTINS`] is the one explicit list of them.

pub mod classification;

use crate::registry::LossDef;

/// The builtin losses, in catalogue order. Adding a loss = one module + one line here.
pub static BUILTINS: &[fn() -> LossDef] = &[
    classification::cross_entropy::def,
    classification::focal::def,
    classification::poly1::def,
    classification::comp_sum::def,
    classification::smooth_adv_comp_sum::def,
    classification::ldr_kl::def,
    classification::aldr_kl::def,
    classification::spherical_z_loss::def,
    classification::symmetric_ce::def,
    classification::noisefit_hybrid::def,
    classification::kd_kl::def,
];
