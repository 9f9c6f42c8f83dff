//! The one reader of the golden files `tests/golden/<family>/<id>.json` (the schema is
//! described, and written, by `tests/golden/gen/golden_schema.py`): each case configures the
//! loss, builds its inputs and lists the calls to make (reduction, optional `grad_output`)
//! with the expected loss, gradients and auxiliary outputs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use losskit::testing::{Case, OwnedData, OwnedTensor};
use losskit::{Compute, Context, DType, Loss, Reduction, TensorMut};
use serde_json::Value;

use crate::common::{GRAD_TOL, LOSS_TOL, assert_close, golden_path};

/// One expected call of a golden case.
#[derive(Clone, Debug)]
pub struct Call {
    /// The reduction.
    pub reduction: Reduction,
    /// The upstream gradient (None = 1).
    pub grad_output: Option<Vec<f32>>,
    /// Expected loss output.
    pub loss: Vec<f64>,
    /// Expected gradients, by input name.
    pub grads: BTreeMap<String, Vec<f64>>,
    /// Expected auxiliary outputs, by name.
    pub aux: BTreeMap<String, Vec<f64>>,
}

/// One golden case: the configured loss, its inputs, the calls and the case's JSON.
pub struct GoldenCase {
    /// Case name.
    pub name: String,
    /// Parameters as text, in the order they were set.
    pub params: Vec<(String, String)>,
    /// The configured loss.
    pub loss: Loss,
    /// The inputs.
    pub case: Case,
    /// The expected calls.
    pub calls: Vec<Call>,
    /// The case as written (for extra fields such as `terms`).
    pub json: Value,
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn num_map(v: Option<&Value>) -> BTreeMap<String, Vec<f64>> {
    v.and_then(Value::as_object)
        .map(|o| o.iter().map(|(k, v)| (k.clone(), nums(v))).collect())
        .unwrap_or_default()
}

/// The golden file of `id`: the one `tests/golden/<family>/<id>.json`.
pub fn file_of(id: &str) -> PathBuf {
    let root = golden_path("");
    let found: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/golden")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(format!("{id}.json")))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(found.len(), 1, "{id}: golden files {found:?}");
    found[0].clone()
}

/// Parameters set by their text, in the file's order (configuration is order-free).
pub fn configured(id: &str, params: &[(String, String)]) -> Loss {
    let mut l = Context::cpu().loss(id).expect("registered");
    for (k, v) in params {
        l.set_text(k, v)
            .unwrap_or_else(|e| panic!("{id}: set {k} = {v}: {e}"));
    }
    l
}

fn param_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Read every case of `id`'s golden file.
pub fn load(id: &str) -> Vec<GoldenCase> {
    let path = file_of(id);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("golden file is valid JSON");
    assert_eq!(doc["id"].as_str(), Some(id), "{}", path.display());
    let cases = doc["cases"].as_array().expect("cases");
    assert!(!cases.is_empty(), "{id}: no golden cases");
    cases
        .iter()
        .map(|c| {
            let name = c["name"].as_str().expect("name").to_string();
            let params: Vec<(String, String)> = c["params"]
                .as_object()
                .expect("params")
                .iter()
                .map(|(k, v)| (k.clone(), param_text(v)))
                .collect();
            let loss = configured(id, &params);
            let spec = loss.def().spec.clone();
            let mut dims = BTreeMap::new();
            let mut inputs = Vec::new();
            for is in &spec.inputs {
                let Some(t) = c["inputs"].get(is.name.as_str()) else {
                    assert!(
                        is.optional,
                        "{id} [{name}]: required input {} missing",
                        is.name
                    );
                    inputs.push(None);
                    continue;
                };
                let shape: Vec<usize> = nums(&t["shape"]).iter().map(|&d| d as usize).collect();
                for (l, &n) in is.dims().iter().zip(&shape) {
                    dims.insert(l.to_string(), n);
                }
                let want = match is.dtype {
                    DType::F32 => "f32",
                    DType::I64 => "i64",
                };
                assert_eq!(
                    t["dtype"].as_str(),
                    Some(want),
                    "{id} [{name}]: dtype of {}",
                    is.name
                );
                let data = match is.dtype {
                    DType::F32 => {
                        OwnedData::F32(nums(&t["data"]).iter().map(|&v| v as f32).collect())
                    }
                    DType::I64 => OwnedData::I64(
                        t["data"]
                            .as_array()
                            .expect("data")
                            .iter()
                            .map(|v| v.as_i64().expect("integer"))
                            .collect(),
                    ),
                };
                inputs.push(Some(OwnedTensor { data, shape }));
            }
            let calls = c["calls"]
                .as_array()
                .expect("calls")
                .iter()
                .map(|k| Call {
                    reduction: Reduction::parse(k["reduction"].as_str().expect("reduction"))
                        .expect("a reduction"),
                    grad_output: k
                        .get("grad_output")
                        .map(|g| nums(g).iter().map(|&v| v as f32).collect()),
                    loss: nums(&k["loss"]),
                    grads: num_map(k.get("grads")),
                    aux: num_map(k.get("aux")),
                })
                .collect();
            GoldenCase {
                name,
                params,
                loss,
                case: Case { dims, inputs },
                calls,
                json: c.clone(),
            }
        })
        .collect()
}

/// What one call produced: the loss, the gradients by input index, the auxiliary outputs.
#[derive(Clone, Debug)]
pub struct Ran {
    /// The loss output.
    pub loss: Vec<f32>,
    /// Gradients by input index (None where not differentiable, absent or not asked).
    pub grads: Vec<Option<Vec<f32>>>,
    /// Auxiliary outputs by name.
    pub aux: BTreeMap<String, Vec<f32>>,
}

/// The shape of an auxiliary output from its spec letters and the case's sizes.
pub fn aux_shape(loss: &Loss, case: &Case, name: &str) -> Vec<usize> {
    let a = loss
        .def()
        .spec
        .aux
        .iter()
        .find(|a| a.name.as_str() == name)
        .unwrap_or_else(|| panic!("{}: no auxiliary output {name}", loss.id()));
    a.dims()
        .iter()
        .map(|d| {
            d.parse::<usize>()
                .unwrap_or_else(|_| *case.dims.get(*d).unwrap_or_else(|| panic!("letter {d}")))
        })
        .collect()
}

/// Compute `case` with `reduction`, the gradient of every present differentiable input when
/// `grads`, the auxiliary outputs `aux`, and an optional upstream gradient.
pub fn run(
    loss: &Loss,
    case: &Case,
    reduction: Reduction,
    grad_output: Option<&[f32]>,
    grads: bool,
    aux: &[&str],
) -> losskit::Result<Ran> {
    let spec = &loss.def().spec;
    let n = case.rows(spec);
    let mut out = vec![0.0f32; if reduction == Reduction::None { n } else { 1 }];
    let mut gb: Vec<Option<Vec<f32>>> = spec
        .inputs
        .iter()
        .zip(&case.inputs)
        .map(|(is, t)| match t {
            Some(t) if grads && is.differentiable => Some(vec![f32::NAN; t.f32().len()]),
            _ => None,
        })
        .collect();
    let shapes: Vec<Vec<usize>> = aux.iter().map(|a| aux_shape(loss, case, a)).collect();
    let mut ab: Vec<Vec<f32>> = shapes
        .iter()
        .map(|s| vec![f32::NAN; s.iter().product()])
        .collect();
    {
        let mut c = Compute::new(reduction, &mut out);
        for t in &case.inputs {
            c.inputs.push(t.as_ref().map(|t| t.view()));
        }
        for (k, g) in gb.iter_mut().enumerate() {
            if let (Some(g), Some(t)) = (g.as_mut(), case.inputs[k].as_ref()) {
                c = c.grad(k, TensorMut::new(g, &t.shape));
            }
        }
        for ((name, s), b) in aux.iter().zip(&shapes).zip(ab.iter_mut()) {
            c = c.aux(name, TensorMut::new(b, s));
        }
        if let Some(go) = grad_output {
            c = c.grad_output(go);
        }
        loss.compute(&mut c)?;
    }
    Ok(Ran {
        loss: out,
        grads: gb,
        aux: aux.iter().map(|a| a.to_string()).zip(ab).collect(),
    })
}

/// [`check_with`] at the reference tolerances ([`LOSS_TOL`], [`GRAD_TOL`]).
pub fn check(id: &str) {
    check_with(id, LOSS_TOL, GRAD_TOL);
}

/// Make every call of every case of `id`'s golden file and compare the loss, the gradients
/// and the auxiliary outputs it lists (`loss_tol` for losses and auxiliary outputs,
/// `grad_tol` for gradients). A case with a differentiable input lists its gradients in at
/// least one call.
pub fn check_with(id: &str, loss_tol: f64, grad_tol: f64) {
    for g in load(id) {
        let spec = &g.loss.def().spec;
        let what = |r: &str| format!("{id} [{}] {r}", g.name);
        let differentiable = spec
            .inputs
            .iter()
            .zip(&g.case.inputs)
            .any(|(is, t)| is.differentiable && t.is_some());
        assert!(
            !differentiable || g.calls.iter().any(|c| !c.grads.is_empty()),
            "{}: no gradients in the golden file",
            what("")
        );
        for call in &g.calls {
            let red = call.reduction.name();
            let aux: Vec<&str> = call.aux.keys().map(String::as_str).collect();
            let o = run(
                &g.loss,
                &g.case,
                call.reduction,
                call.grad_output.as_deref(),
                !call.grads.is_empty(),
                &aux,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", what(red)));
            assert_close(
                &what(&format!("loss ({red})")),
                &o.loss,
                &call.loss,
                loss_tol,
            );
            for (name, w) in &call.grads {
                let k = spec
                    .input_index(name)
                    .unwrap_or_else(|| panic!("{}: no input {name}", what(red)));
                let got = o.grads[k]
                    .as_ref()
                    .unwrap_or_else(|| panic!("{}: no gradient for {name}", what(red)));
                assert_close(&what(&format!("grad {name} ({red})")), got, w, grad_tol);
            }
            for (name, w) in &call.aux {
                assert_close(
                    &what(&format!("aux {name} ({red})")),
                    &o.aux[name],
                    w,
                    loss_tol,
                );
            }
        }
    }
}
