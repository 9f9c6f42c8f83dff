//! Shared helpers of the GPU test binaries (`tests/gpu*.rs`, included with
//! `#[path = "common/gpu.rs"] mod gpu_common;`): the shared wgpu context, a fresh one for
//! tests that change device settings, the GPU/CPU comparison at the suite's tolerance, and
//! letter-size maps.
//!
//! Without a usable adapter `gpu_ctx` returns `None` (the test prints "skipped" and passes),
//! unless `LOSSKIT_REQUIRE_GPU=1`, where that is a failure.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use losskit::{BackendKind, Context};

/// Absolute tolerance of GPU f32 results against the CPU path.
pub const ATOL: f64 = 2e-5;
/// Relative tolerance of GPU f32 results against the CPU path.
pub const RTOL: f64 = 2e-4;

fn unavailable(e: &str) -> Option<Context> {
    if std::env::var("LOSSKIT_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        panic!("LOSSKIT_REQUIRE_GPU=1 but the wgpu backend is unavailable: {e}");
    }
    eprintln!("skipped: no wgpu adapter ({e})");
    None
}

/// The binary's shared wgpu context (created once; its adapter is printed once).
pub fn gpu_ctx() -> Option<Context> {
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
        Err(e) => unavailable(e),
    }
}

/// A fresh context (own device), for tests that change device settings.
pub fn own_gpu_ctx() -> Option<Context> {
    gpu_ctx()?;
    match Context::new(BackendKind::Wgpu) {
        Ok(c) => Some(c),
        Err(e) => unavailable(&e.msg),
    }
}

/// Every element within `ATOL + RTOL·|cpu|` of the CPU value (a NaN on the CPU must be a
/// NaN on the GPU).
pub fn close(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
    for (k, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        if c.is_nan() {
            assert!(g.is_nan(), "{what}: element {k}: gpu {g} vs cpu NaN");
            continue;
        }
        let d = (g as f64 - c as f64).abs();
        let tol = ATOL + RTOL * (c as f64).abs();
        assert!(
            d <= tol,
            "{what}: element {k}: gpu {g} vs cpu {c} (|diff| {d:.3e} > {tol:.3e})"
        );
    }
}

/// Letter sizes from pairs.
pub fn dims(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}
