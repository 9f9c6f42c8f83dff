//! ONE test binary for every loss: the generic suites over the whole registry (this file),
//! and one module per loss with its reference values and paper properties
//! (`tests/losses/<family>/<id>.rs`).
//!
//! Every builtin gets the generic suites of `common/suites.rs` (the example plugins run the
//! same ones in `tests/plugins.rs`) from its spec alone (random valid inputs come from the
//! input domains, see `losskit::testing`): finite-difference gradients for the defaults and
//! every `test_params` set, reductions and `grad_output` semantics with `mean` against an
//! independent denominator, `ignore_index`, weights, the empty batch, the bad-input table,
//! the same loss used from 8 threads at once, and bit-identical results for any thread
//! count. Each suite prints what it checked and skipped, and fails below the minimum stated
//! here.

#[path = "losses/classification/mod.rs"]
mod classification;
mod common;
#[path = "common/golden.rs"]
mod golden;
#[path = "losses/lm/mod.rs"]
mod lm;
#[path = "losses/preference/mod.rs"]
mod preference;
#[path = "losses/rl/mod.rs"]
mod rl;
#[path = "common/suites.rs"]
mod suites;

use losskit::Context;
use suites::Config;

// The least each suite must check over the builtins (the counts are printed; skips are
// counted by reason).
/// Builtins registered.
const MIN_LOSSES: usize = 42;
/// Finite-difference cases (configuration x reduction x with/without optional inputs).
const MIN_FD_CASES: usize = 1000;
/// Finite-difference elements compared (not at kinks).
const MIN_FD_ELEMENTS: usize = 38000;
/// Configurations (defaults and `test_params` sets) checked by a suite that takes them all.
const MIN_CONFIGS: usize = 200;
/// Gradient inputs whose per-sample `grad_output` scaling is checked element by element.
const MIN_PER_ROW_INPUTS: usize = 270;
/// Configurations with an `ignore_index` whose ignored rows are checked.
const MIN_IGNORE: usize = 75;
/// Optional weight inputs checked at 1 against absent.
const MIN_WEIGHTS: usize = 44;
/// Refusals of the bad-input table.
const MIN_REFUSALS: usize = 1150;
/// Configuration x reduction runs compared over 1/2/3/7 threads.
const MIN_THREAD_RUNS: usize = 580;

/// The builtins (a context without plugins).
fn builtin_ids() -> Vec<String> {
    suites::all_ids(&Context::cpu())
}

/// Every builtin with its defaults and with each of its `test_params` sets.
fn configs() -> Vec<Config> {
    suites::configs(&Context::cpu(), &builtin_ids())
}

#[test]
fn gradients_match_finite_differences() {
    suites::gradients(&configs(), MIN_FD_CASES, MIN_FD_ELEMENTS);
}

#[test]
fn reductions_and_grad_output_are_consistent() {
    suites::reductions_and_grad_output(&configs(), MIN_CONFIGS, MIN_PER_ROW_INPUTS);
}

#[test]
fn ignored_rows_contribute_nothing() {
    suites::ignored_rows(&configs(), MIN_IGNORE);
}

#[test]
fn unit_weights_equal_absent_weights_exactly() {
    suites::unit_weights(&configs(), MIN_WEIGHTS);
}

#[test]
fn empty_batch_gives_zero() {
    suites::empty_batch(&configs(), MIN_CONFIGS);
}

#[test]
fn bad_inputs_get_their_own_status() {
    suites::bad_inputs(&Context::cpu(), &builtin_ids(), MIN_REFUSALS);
}

#[test]
fn one_loss_computes_from_eight_threads_at_once() {
    suites::eight_threads(&configs(), MIN_CONFIGS);
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    suites::thread_count_independent(&configs(), MIN_THREAD_RUNS);
}

#[test]
fn every_spec_is_valid_and_ids_are_unique() {
    let ids = builtin_ids();
    assert!(ids.len() >= MIN_LOSSES, "{} builtins", ids.len());
    suites::specs_are_valid(&Context::cpu(), &ids);
}
