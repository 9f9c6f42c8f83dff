//! Per-loss tests of the classification family.

mod amp_entropy;
mod ca_calibration;
mod categorical_value;
mod cross_entropy;
mod dco;
mod golden_b;
mod harmonic;
mod reward_shaped_ntp;
