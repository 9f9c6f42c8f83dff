//! GPU (wgpu) tests, one binary: a generic CPU/GPU parity suite over every registered loss,
//! cross_entropy specifics (in place, strided rows, device buffers, forced chunking, a large
//! vocabulary, auxiliary outputs), the per-sample kernel contract, the pipeline cache from
//! many threads, and a missing driver.
//!
//! Without a usable adapter every test prints "skipped: no wgpu adapter" and passes, unless
//! `LOSSKIT_REQUIRE_GPU=1`, where that is a failure. In CI the adapter is Mesa's lavapipe,
//! allowed with `LOSSKIT_ALLOW_SOFTWARE_ADAPTER=1`.
//!
//! Tolerance (GPU f32 against the CPU path, which accumulates in f64): an element passes
//! when `|gpu - cpu| <= ATOL + RTOL * |cpu|`, with ATOL = 2e-5 and RTOL = 2e-4, for losses,
//! gradients and auxiliary outputs alike (`correct` must match exactly).

#![cfg(feature = "wgpu")]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use losskit::backend::DeviceBuffer;
use losskit::tensor::DeviceOut;
use losskit::testing::{Case, Rng};
use losskit::{
    BackendKind, Compute, Context, DType, Loss, ParamValue, Reduction, Tensor, TensorMut,
};

const ATOL: f64 = 2e-5;
const RTOL: f64 = 2e-4;

fn gpu_ctx() -> Option<Context> {
    static CTX: OnceLock<Result<Context, String>> = OnceLock::new();
    let r = CTX.get_or_init(|| {
        let c = Context::new(BackendKind::Wgpu).map_err(|e| e.msg)?;
        if let Some(i) = c.device_info() {
            eprintln!(
                "wgpu adapter: {} ({}, {}, {}), max binding {} bytes",
                i.name, i.backend, i.device_type, i.driver, i.max_binding_bytes
            );
        }
        Ok(c)
    });
    match r {
        Ok(c) => Some(c.clone()),
        Err(e) => {
            if std::env::var("LOSSKIT_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("LOSSKIT_REQUIRE_GPU=1 but the wgpu backend is unavailable: {e}");
            }
            eprintln!("skipped: no wgpu adapter ({e})");
            None
        }
    }
}

/// A fresh context (own device), for tests that change device settings.
fn own_gpu_ctx() -> Option<Context> {
    gpu_ctx()?;
    Some(Context::new(BackendKind::Wgpu).expect("second wgpu context"))
}

fn close(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
    let mut worst = (0.0f64, 0usize);
    for (k, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let d = (g as f64 - c as f64).abs();
        let tol = ATOL + RTOL * (c as f64).abs();
        assert!(
            d <= tol,
            "{what}: element {k}: gpu {g} vs cpu {c} (|diff| {d:.3e} > {tol:.3e})"
        );
        if d > worst.0 {
            worst = (d, k);
        }
    }
}

fn configure(l: &mut Loss, set: &[(String, ParamValue)]) {
    for (n, v) in set {
        l.set(n, *v).expect("test parameter set");
    }
}

fn dims(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn grad_output(reduction: Reduction, rows: usize, rng: &mut Rng) -> Vec<f32> {
    match reduction {
        Reduction::None => (0..rows).map(|_| (rng.uniform() * 2.0 - 0.5) as f32).collect(),
        _ => vec![0.7],
    }
}

/// Every registered loss x (defaults + each test parameter set) x reductions x with/without
/// optional inputs x with/without grad_output x a few shapes, GPU against CPU.
#[test]
fn every_loss_should_match_reference_backend() {
    let Some(g) = gpu_ctx() else { return };
    let cpu = Context::cpu();
    let shapes = [
        dims(&[]),
        dims(&[("N", 37), ("C", 300)]),
        dims(&[("N", 3), ("C", 9000)]),
    ];
    let mut checked = 0;
    for def in g.losses() {
        let id = def.spec.id.to_string();
        let mut sets = vec![Vec::new()];
        sets.extend(def.test_params.iter().cloned());
        for (si, set) in sets.iter().enumerate() {
            let mut lg = g.loss(&id).unwrap();
            let mut lc = cpu.loss(&id).unwrap();
            configure(&mut lg, set);
            configure(&mut lc, set);
            for (di, d) in shapes.iter().enumerate() {
                for opt in [false, true] {
                    let case = Case::random(&lc, d, 1000 + si as u64 * 7 + di as u64, opt);
                    let rows = case.rows(&def.spec);
                    let mut rng = Rng::new(5 + si as u64);
                    for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
                        if def.spec.batch_level && red == Reduction::None {
                            continue;
                        }
                        for with_go in [false, true] {
                            let go = with_go.then(|| grad_output(red, rows, &mut rng));
                            let what = format!(
                                "{id} set {si} {set:?} shape {d:?} optional {opt} {} go {with_go}",
                                red.name()
                            );
                            let oc = case.run(&lc, red, true, go.as_deref()).unwrap();
                            let og = case
                                .run(&lg, red, true, go.as_deref())
                                .unwrap_or_else(|e| panic!("{what}: GPU failed: {e}"));
                            close(&format!("{what}: loss"), &og.loss, &oc.loss);
                            for (k, (a, b)) in og.grads.iter().zip(&oc.grads).enumerate() {
                                if let (Some(a), Some(b)) = (a, b) {
                                    close(&format!("{what}: grad {k}"), a, b);
                                }
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 0);
    eprintln!("parity: {checked} configurations matched");
}
