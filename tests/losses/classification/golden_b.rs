//! Shared checks for the losses whose golden values come from
//! `tests/golden/gen/classification_b.py` (read by `common/golden.rs`): the finite-difference
//! and bad-parameter helpers the per-loss modules share.

use std::collections::BTreeMap;

use losskit::testing::{Case, OwnedData, gradcheck};
use losskit::{Context, ErrorKind, Loss, ParamValue, Reduction};

use crate::common::FD_TOL;

/// The reductions a loss accepts.
pub fn reductions(loss: &Loss) -> Vec<Reduction> {
    if loss.def().spec.batch_level {
        vec![Reduction::Mean, Reduction::Sum]
    } else {
        vec![Reduction::None, Reduction::Mean, Reduction::Sum]
    }
}

/// Every configuration the generic suites run: the defaults and each `test_params` set.
pub fn configurations(id: &str) -> Vec<(String, Loss)> {
    let ctx = Context::cpu();
    let base = ctx.loss(id).expect("registered");
    let mut out = vec![("defaults".to_string(), base.clone())];
    for set in &base.def().test_params {
        let mut l = base.clone();
        for (k, v) in set {
            l.set(k, *v)
                .unwrap_or_else(|e| panic!("{id}: test_params {k}: {e}"));
        }
        out.push((format!("{set:?}"), l));
    }
    out
}

/// Finite-difference check of `loss` on `case` for every valid reduction.
pub fn fd_check(what: &str, loss: &Loss, case: &Case, tol: f64) {
    for red in reductions(loss) {
        let reps = gradcheck(loss, case, red, 40).expect("gradcheck");
        assert!(!reps.is_empty(), "{what}: no gradient was checked");
        for r in reps {
            assert!(
                r.max_abs <= tol || r.max_rel <= tol,
                "{what} ({}): d/d{} off by {:.3e} abs, {:.3e} rel over {} elements",
                red.name(),
                r.input,
                r.max_abs,
                r.max_rel,
                r.checked
            );
        }
    }
}

/// Finite-difference check of the defaults and every `test_params` set on random cases.
pub fn fd_check_all(id: &str, dims: &[(&str, usize)], seeds: &[u64]) {
    let dims: BTreeMap<String, usize> = dims.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    for (name, loss) in configurations(id) {
        for &seed in seeds {
            for with_optional in [false, true] {
                let case = Case::random(&loss, &dims, seed, with_optional);
                fd_check(
                    &format!("{id} {name} seed {seed} optional {with_optional}"),
                    &loss,
                    &case,
                    FD_TOL,
                );
            }
        }
    }
}

/// `name = v` must be refused with `InvalidParam`: by the setter when the value is outside
/// its own range (the old value is kept), else, as a combination with the other parameters,
/// by the check of the configuration (`Loss::check`, which every compute runs first).
pub fn assert_rejects(id: &str, name: &str, v: ParamValue) {
    let mut loss = Context::cpu().loss(id).expect("registered");
    let before = loss.params().get(name);
    let e = match loss.set(name, v) {
        Err(e) => {
            assert_eq!(
                loss.params().get(name),
                before,
                "{id}: {name} changed on error"
            );
            e
        }
        Ok(()) => loss
            .check()
            .expect_err(&format!("{id}: {name} = {v:?} accepted")),
    };
    assert_eq!(e.kind, ErrorKind::InvalidParam, "{id}: {name} = {v:?}: {e}");
}

/// A compute on `case` must fail with `kind`, and the message must contain `needle`.
pub fn assert_input_error(loss: &Loss, case: &Case, kind: ErrorKind, needle: &str) {
    for red in reductions(loss) {
        let e = case
            .run(loss, red, true, None)
            .expect_err(&format!("{}: bad input accepted", loss.id()));
        assert_eq!(e.kind, kind, "{}: {e}", loss.id());
        assert!(
            e.msg.contains(needle),
            "{}: message '{}' lacks '{needle}'",
            loss.id(),
            e.msg
        );
    }
}

/// Replace the f32 data of input `k` of `case`.
pub fn set_f32(case: &mut Case, k: usize, data: Vec<f32>) {
    if let Some(t) = case.inputs[k].as_mut() {
        t.data = OwnedData::F32(data);
    }
}

/// Replace the i64 data of input `k` of `case`.
pub fn set_i64(case: &mut Case, k: usize, data: Vec<i64>) {
    if let Some(t) = case.inputs[k].as_mut() {
        t.data = OwnedData::I64(data);
    }
}

/// The losses whose goldens come from classification_b.py.
const IDS: [&str; 6] = [
    "dco",
    "categorical_value",
    "reward_shaped_ntp",
    "ca_calibration",
    "harmonic",
    "amp_entropy",
];

fn finite(what: &str, v: &[f32]) {
    if let Some(k) = v.iter().position(|x| !x.is_finite()) {
        panic!("{what}: element {k} is {}", v[k]);
    }
}

#[test]
fn specs_are_valid_and_random_cases_fill_every_output() {
    for id in IDS {
        let ctx = Context::cpu();
        let loss = ctx.loss(id).expect("registered");
        loss.def().spec.validate().expect("valid spec");
        assert!(!loss.def().test_params.is_empty(), "{id}: no test_params");
        for (name, loss) in configurations(id) {
            for with_optional in [false, true] {
                for seed in [1, 2] {
                    let case = Case::random(&loss, &BTreeMap::new(), seed, with_optional);
                    for red in reductions(&loss) {
                        let what = format!("{id} {name} {} opt {with_optional}", red.name());
                        let o = case.run(&loss, red, true, None).expect(&what);
                        finite(&what, &o.loss);
                        for g in o.grads.iter().flatten() {
                            finite(&format!("{what} gradient"), g);
                        }
                    }
                }
            }
            // An empty batch: 0 for mean and sum.
            let letter = loss.def().spec.rows.to_string();
            let dims: BTreeMap<String, usize> = [(letter, 0usize)].into_iter().collect();
            let case = Case::random(&loss, &dims, 1, true);
            for red in [Reduction::Mean, Reduction::Sum] {
                let o = case.run(&loss, red, true, None).expect("empty batch");
                assert_eq!(
                    o.loss,
                    vec![0.0],
                    "{id} {name}: empty batch ({})",
                    red.name()
                );
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let dims: BTreeMap<String, usize> = [("N", 150), ("C", 40), ("D", 70), ("M", 33)]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    for id in IDS {
        for (name, loss) in configurations(id) {
            let case = Case::random(&loss, &dims, 7, true);
            let red = reductions(&loss)[0];
            let run = |threads: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("pool")
                    .install(|| case.run(&loss, red, true, None).expect("compute"))
            };
            let (a, b) = (run(1), run(3));
            assert_eq!(
                a.loss, b.loss,
                "{id} {name}: loss depends on the thread count"
            );
            assert_eq!(
                a.grads, b.grads,
                "{id} {name}: gradient depends on the thread count"
            );
        }
    }
}
