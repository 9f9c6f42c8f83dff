//! The drivers every loss family shares (layer 2, between the engines of [`crate::backend`]
//! and the losses): the code between a loss's per-row math and the caller's buffers. A
//! driver reads and checks the inputs (once, in the plan step both backends share), runs a
//! loss's row function over the rows in parallel, applies the reduction, `ignore_index`,
//! weights and the upstream gradient, and writes the outputs; a loss supplies only the
//! function of one row and its kernel declaration. Drivers know nothing about any particular
//! loss, and the engines in [`crate::backend`] know nothing about drivers.
//!
//! - [`def`]: loss definitions; [`kernel`]: GPU kernel declarations; [`gpu`]: their
//!   executors.
//! - [`targets`]: class targets, weights and the `mean` denominator.
//! - [`rowwise`]: logits-shaped rows with a target; [`rows`]: per-sample and per-row losses
//!   without targets, batch-level outputs; [`pairs`]: pairs, lists and token rows of the
//!   preference and RL families.

pub mod def;
#[cfg(feature = "wgpu")]
pub mod gpu;
pub mod kernel;
pub mod pairs;
pub mod rows;
pub mod rowwise;
pub mod targets;
