//! Classification family: logits `[N, C]` with integer targets `[N]`.
//!
//! The shared drivers (targets, weights, the row-wise executors) live in [`crate::exec`];
//! each file here holds one loss: its spec, its row math and its kernel declaration.

/// The family's WGSL helpers for per-sample kernels (online log-sum-exp with a blocked sum,
/// blocked sums, the target / `ignore_index` test, the total-order key of a float), placed
/// after the losskit prelude in front of every per-sample kernel of the family.
pub const SAMPLE_PRELUDE: &str = include_str!("sample_prelude.wgsl");

pub mod aldr_kl;
pub mod amp_entropy;
pub mod ca_calibration;
pub mod categorical_value;
pub mod comp_sum;
pub mod cross_entropy;
pub mod dco;
pub mod focal;
pub mod harmonic;
pub mod kd_kl;
pub mod ldr_kl;
pub mod noisefit_hybrid;
pub mod poly1;
pub mod reward_shaped_ntp;
pub mod smooth_adv_comp_sum;
pub mod spherical_z_loss;
pub mod symmetric_ce;
