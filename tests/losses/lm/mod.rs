//! Per-loss tests of the language-model head family.

mod cut_cross_entropy;
