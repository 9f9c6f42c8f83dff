//! Per-loss tests of the classification family.

mod cross_entropy;
