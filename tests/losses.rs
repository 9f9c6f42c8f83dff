//! ONE test binary for every loss: the generic suites over the whole registry (this file),
//! and one module per loss with its reference values and paper properties
//! (`tests/losses/<family>/<id>.rs`).

#[path = "losses/classification/mod.rs"]
mod classification;
mod common;
