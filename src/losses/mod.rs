//! Every builtin loss, grouped by family. [`BUILTINS`] is the one explicit list of them.

pub mod classification;
pub mod lm;
pub mod preference;
pub mod rl;

use crate::exec::def::LossDef;

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
    classification::harmonic::def,
    classification::dco::def,
    classification::reward_shaped_ntp::def,
    classification::categorical_value::def,
    classification::symmetric_ce::def,
    classification::noisefit_hybrid::def,
    classification::ca_calibration::def,
    classification::amp_entropy::def,
    classification::kd_kl::def,
    preference::token_logprobs::def,
    preference::dpo::def,
    preference::orpo::def,
    preference::simpo::def,
    preference::cpo::def,
    preference::kto::def,
    preference::rpo::def,
    preference::osp_spce::def,
    preference::mapl::def,
    preference::inpo::def,
    preference::yojo_nway::def,
    preference::solireward_btwt::def,
    preference::dpa_semantic::def,
    preference::spo_degree::def,
    preference::hypo::def,
    preference::seppo::def,
    preference::sparsepo::def,
    preference::sparsepo_mask::def,
    preference::aot::def,
    preference::grad_entanglement::def,
    preference::rso_accept::def,
    rl::ppo_clip::def,
    rl::grpo::def,
    rl::steer::def,
    lm::cut_cross_entropy::def,
];
