//! Per-loss tests of the classification family.

mod helpers;

mod aldr_kl;
mod comp_sum;
mod cross_entropy;
mod focal;
mod kd_kl;
mod ldr_kl;
mod noisefit_hybrid;
mod poly1;
mod smooth_adv_comp_sum;
mod spherical_z_loss;
mod symmetric_ce;
