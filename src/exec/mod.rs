//! Drivers shared by the loss families: the code between a loss's per-row math and the
//! caller's buffers. A driver reads and checks the inputs, runs a loss's row function over
//! the rows in parallel, applies the reduction and the upstream gradient, and writes the
//! outputs; a loss supplies only the function of one row. Drivers know nothing about any
//! particular loss, and the engines in [`crate::backend`] know nothing about drivers.

pub mod pairs;
