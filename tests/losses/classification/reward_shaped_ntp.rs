//! reward_shaped_ntp: golden values, finite differences, reduction to cross-entropy, the
//! top-k rule, bad parameters and targets.

use losskit::testing::Case;
use losskit::{Context, ErrorKind, Loss, ParamValue, Reduction};

use super::golden_b::*;
use crate::common::{GRAD_TOL, LOSS_TOL, assert_close};

const ID: &str = "reward_shaped_ntp";

fn outcome(loss: &Loss, case: &Case) -> (Vec<f32>, Vec<f32>) {
    let o = case.run(loss, Reduction::None, true, None).unwrap();
    (o.loss, o.grads[0].clone().unwrap())
}

fn as_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn reward_shaped_ntp_matches_golden_values() {
    crate::golden::check_with(ID, LOSS_TOL, GRAD_TOL);
}

#[test]
fn reward_shaped_ntp_gradient_matches_finite_differences_at_the_defaults() {
    // Only the defaults: with beta or a lambda set, the weights c_a are stop-gradient
    // constants, so the returned gradient is the paper's estimator and deliberately not the
    // derivative of the loss value (the golden values check it against jax.grad of the
    // stop-gradient surrogate instead).
    let loss = Context::cpu().loss(ID).unwrap();
    let dims = [("N".to_string(), 6usize), ("C".to_string(), 7)]
        .into_iter()
        .collect();
    for seed in [1, 2, 3] {
        let case = Case::random(&loss, &dims, seed, false);
        fd_check(
            &format!("{ID} defaults seed {seed}"),
            &loss,
            &case,
            crate::common::FD_TOL,
        );
    }
}

#[test]
fn reward_shaped_ntp_gradient_is_shift_invariant_for_every_setting() {
    // g_c = π_c·S - c_c sums to 0 over the classes of every row (S = Σ_a c_a).
    let dims = [("N".to_string(), 6usize), ("C".to_string(), 9)]
        .into_iter()
        .collect();
    for (name, loss) in configurations(ID) {
        let case = Case::random(&loss, &dims, 8, false);
        let (_, g) = outcome(&loss, &case);
        for (i, row) in g.chunks(9).enumerate() {
            let s: f64 = row.iter().map(|&v| v as f64).sum();
            assert!(s.abs() < 1e-6, "{name}: row {i} gradient sums to {s}");
        }
    }
}

#[test]
fn reward_shaped_ntp_defaults_are_cross_entropy() {
    let ctx = Context::cpu();
    let loss = ctx.loss(ID).unwrap();
    let ce = ctx.loss("cross_entropy").unwrap();
    let dims = [("N".to_string(), 9usize), ("C".to_string(), 33)]
        .into_iter()
        .collect();
    let case = Case::random(&loss, &dims, 11, false);
    let ce_case = Case {
        dims: case.dims.clone(),
        inputs: case.inputs.clone(),
    };
    let (l, g) = outcome(&loss, &case);
    let (lc, gc) = outcome(&ce, &ce_case);
    assert_close("loss vs cross_entropy", &l, &as_f64(&lc), 1e-6);
    assert_close("grad vs cross_entropy", &g, &as_f64(&gc), 1e-6);
}

#[test]
fn reward_shaped_ntp_needs_top_k_only_when_rewards_differ() {
    let ctx = Context::cpu();
    let dims = [("N".to_string(), 7usize), ("C".to_string(), 12)]
        .into_iter()
        .collect();
    let mut a = ctx.loss(ID).unwrap();
    a.set_f64("beta", 0.5).unwrap();
    a.set_f64("lambda_top", 0.25).unwrap();
    a.set_f64("lambda_tail", 0.25).unwrap();
    a.set_i64("top_k", 2).unwrap();
    let case = Case::random(&a, &dims, 4, false);
    let (la, ga) = outcome(&a, &case);
    // Same λ for every class: the top-k size does not matter...
    let mut b = a.clone();
    b.set_i64("top_k", 9).unwrap();
    let (lb, gb) = outcome(&b, &case);
    assert_close("equal lambdas, k = 2 vs 9", &la, &as_f64(&lb), 1e-6);
    assert_close("equal lambdas, k = 2 vs 9 (grad)", &ga, &as_f64(&gb), 1e-6);
    // ...and with k >= C every non-target class gets lambda_top.
    let mut c = a.clone();
    c.set_f64("lambda_tail", -3.0).unwrap();
    c.set_i64("top_k", 12).unwrap();
    let (lc, gc) = outcome(&c, &case);
    assert_close("k = C ignores lambda_tail", &lc, &as_f64(&la), 1e-6);
    assert_close("k = C ignores lambda_tail (grad)", &gc, &as_f64(&ga), 1e-6);
}

#[test]
fn reward_shaped_ntp_breaks_top_k_ties_by_lower_index() {
    let mut loss = Context::cpu().loss(ID).unwrap();
    loss.set_f64("lambda_top", 1.0).unwrap();
    loss.set_i64("top_k", 3).unwrap();
    let dims = [("N".to_string(), 1usize), ("C".to_string(), 6)]
        .into_iter()
        .collect();
    let mut case = Case::random(&loss, &dims, 1, false);
    set_f32(&mut case, 0, vec![0.5; 6]);
    set_i64(&mut case, 1, vec![1]);
    let (_, g) = outcome(&loss, &case);
    // Top 3 = {0, 1, 2}; the target 1 is one of them. π = 1/6 everywhere;
    // S = w_pos + 2π·1 with w_pos = π^(1-(1-π)^0) = 1: g_top = π(S - 1), g_rest = π·S.
    let pi = 1.0 / 6.0;
    let s = 1.0 + 2.0 * pi;
    let want = [
        pi * (s - 1.0),
        pi * s - 1.0,
        pi * (s - 1.0),
        pi * s,
        pi * s,
        pi * s,
    ];
    assert_close("tied logits", &g, &want, 1e-6);
}

#[test]
fn reward_shaped_ntp_rejects_bad_parameters_and_targets() {
    for v in [-1.0, -2.5, f64::NAN, f64::INFINITY] {
        assert_rejects(ID, "beta", ParamValue::F64(v));
    }
    assert_rejects(ID, "top_k", ParamValue::I64(0));
    assert_rejects(ID, "top_k", ParamValue::I64(-3));
    assert_rejects(ID, "lambda_top", ParamValue::F64(f64::INFINITY));
    assert_rejects(ID, "lambda_tail", ParamValue::F64(f64::NAN));
    let loss = Context::cpu().loss(ID).unwrap();
    let mut case = Case::random(&loss, &Default::default(), 2, false);
    let c = case.dims["C"] as i64;
    let mut t = case.inputs[1].as_ref().unwrap().clone();
    if let losskit::testing::OwnedData::I64(v) = &mut t.data {
        v[3] = c;
        set_i64(&mut case, 1, v.clone());
    }
    assert_input_error(&loss, &case, ErrorKind::InvalidTarget, "target[3]");
}
