//! Per-loss tests of the classification family.

mod helpers;

mod cross_entropy;
mod focal;
