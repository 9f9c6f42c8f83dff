//! Shared checks for the losses whose golden values come from
//! `tests/golden/gen/classification_b.py`: reading a golden file into [`Case`]s, comparing
//! every reduction and gradient with it, and the finite-difference and bad-parameter helpers
//! the per-loss modules share.

use std::collections::BTreeMap;

use losskit::testing::{Case, OwnedData, OwnedTensor, gradcheck};
use losskit::{Context, ErrorKind, Loss, ParamValue, Reduction};
use serde_json::Value;

use crate::common::{FD_TOL, assert_close, golden_path};

/// One golden case: a configured loss, its inputs and the JSON with the expected values.
pub struct GoldenCase {
    pub name: String,
    pub loss: Loss,
    pub case: Case,
    pub json: Value,
}

fn num(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(num).collect()
}

/// Set a parameter from its JSON value (number, bool or enum choice).
pub fn set_param(loss: &mut Loss, name: &str, v: &Value) {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => panic!("parameter {name}: unsupported JSON value {v}"),
    };
    loss.set_text(name, &text)
        .unwrap_or_else(|e| panic!("parameter {name} = {text}: {e}"));
}

/// Read `tests/golden/classification/<id>.json`.
pub fn load(id: &str) -> Vec<GoldenCase> {
    let path = golden_path(&format!("classification/{id}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let root: Value = serde_json::from_str(&text).expect("golden JSON");
    let ctx = Context::cpu();
    let mut out = Vec::new();
    for c in root["cases"].as_array().expect("cases") {
        let mut loss = ctx.loss(id).expect("registered");
        for (k, v) in c["params"].as_object().expect("params") {
            set_param(&mut loss, k, v);
        }
        let spec = loss.def().spec.clone();
        let mut dims = BTreeMap::new();
        let mut inputs = Vec::new();
        for is in &spec.inputs {
            let Some(t) = c["inputs"].get(is.name.as_str()) else {
                inputs.push(None);
                continue;
            };
            let shape: Vec<usize> = t["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|v| v.as_u64().expect("dim") as usize)
                .collect();
            for (l, &n) in is.dims().iter().zip(&shape) {
                dims.insert(l.to_string(), n);
            }
            let data = match t["dtype"].as_str() {
                Some("i64") => OwnedData::I64(
                    t["data"]
                        .as_array()
                        .expect("data")
                        .iter()
                        .map(|v| v.as_i64().expect("int"))
                        .collect(),
                ),
                _ => OwnedData::F32(nums(&t["data"]).iter().map(|&v| v as f32).collect()),
            };
            inputs.push(Some(OwnedTensor { data, shape }));
        }
        out.push(GoldenCase {
            name: c["name"].as_str().unwrap_or("?").to_string(),
            loss,
            case: Case { dims, inputs },
            json: c.clone(),
        });
    }
    assert!(!out.is_empty(), "{id}: no golden cases");
    out
}

fn check_grads(
    id: &str,
    g: &GoldenCase,
    got: &[Option<Vec<f32>>],
    want: &Value,
    tol: f64,
    what: &str,
) {
    let spec = &g.loss.def().spec;
    let mut seen = 0;
    for (k, is) in spec.inputs.iter().enumerate() {
        let Some(w) = want.get(is.name.as_str()) else {
            continue;
        };
        let gv = got[k]
            .as_ref()
            .unwrap_or_else(|| panic!("{id} {}: no gradient for {}", g.name, is.name));
        assert_close(
            &format!("{id} [{}] {what} d/d{}", g.name, is.name),
            gv,
            &nums(w),
            tol,
        );
        seen += 1;
    }
    assert!(seen > 0, "{id} {}: golden file has no gradients", g.name);
}

/// Compare every reduction (or the batch scalar) and its gradients with the golden file.
pub fn check_golden(id: &str, loss_tol: f64, grad_tol: f64) {
    for g in load(id) {
        if g.json["batch_level"].as_bool() == Some(true) {
            for red in [Reduction::Mean, Reduction::Sum] {
                let o = g.case.run(&g.loss, red, true, None).expect("compute");
                assert_close(
                    &format!("{id} [{}] loss ({})", g.name, red.name()),
                    &o.loss,
                    &[num(&g.json["loss"])],
                    loss_tol,
                );
                check_grads(id, &g, &o.grads, &g.json["grad"], grad_tol, red.name());
            }
            continue;
        }
        let o = g
            .case
            .run(&g.loss, Reduction::None, true, None)
            .expect("none");
        assert_close(
            &format!("{id} [{}] loss (none)", g.name),
            &o.loss,
            &nums(&g.json["loss_none"]),
            loss_tol,
        );
        check_grads(id, &g, &o.grads, &g.json["grad_sum"], grad_tol, "none");
        let o = g
            .case
            .run(&g.loss, Reduction::Sum, true, None)
            .expect("sum");
        assert_close(
            &format!("{id} [{}] loss (sum)", g.name),
            &o.loss,
            &[num(&g.json["loss_sum"])],
            loss_tol,
        );
        check_grads(id, &g, &o.grads, &g.json["grad_sum"], grad_tol, "sum");
        let o = g
            .case
            .run(&g.loss, Reduction::Mean, true, None)
            .expect("mean");
        assert_close(
            &format!("{id} [{}] loss (mean)", g.name),
            &o.loss,
            &[num(&g.json["loss_mean"])],
            loss_tol,
        );
        check_grads(id, &g, &o.grads, &g.json["grad_mean"], grad_tol, "mean");
    }
}

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
