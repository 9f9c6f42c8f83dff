//! The drivers every loss family shares (layer 2, between the engines of [`crate::backend`]
//! and the losses): loss definitions, target and weight validation, the row-wise, per-row and
//! batch-level CPU executors, and the GPU templates the losses declare their kernels for.
//! A driver applies reductions, `ignore_index`, weights and the upstream gradient once, for
//! every loss that uses it.

pub mod def;
#[cfg(feature = "wgpu")]
pub mod gpu;
pub mod kernel;
pub mod rows;
pub mod rowwise;
pub mod targets;
