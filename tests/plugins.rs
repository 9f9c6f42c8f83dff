//! The plugin host, end to end: builds the example plugins (C: `plugins/example_c`, Rust:
//! `plugins/example_rust`) and the toy/faulty test plugins (`tests/plugins/toy.c`), loads
//! them, runs the generic suites of the builtins on their losses (`common/suites.rs`:
//! finite-difference gradients, reductions and `grad_output` with `mean` against an
//! independent denominator, `ignore_index`, unit weights, the empty batch, the bad-input
//! table, threads, bit-identity over thread counts), checks their values against
//! independent f64 references, and loads every broken plugin: each gets its own status and
//! a message naming the file and the cause, nothing is registered, the host keeps working
//! and nothing leaks (a counting allocator in this binary; plugin states are counted by the
//! toy plugin; the C program `tests/c/plugin_load.c` also runs under valgrind when
//! installed). The WGSL kernels of the examples are parsed and checked against the
//! per-sample kernel contract with naga.
#![cfg(feature = "plugins")]

mod common;

#[path = "plugins/support.rs"]
mod support;

#[path = "common/suites.rs"]
mod suites;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::sync::{Mutex, MutexGuard};

use common::{LOSS_TOL, assert_close};
use losskit::ffi::context::{lk_context, lk_context_create, lk_context_free};
use losskit::ffi::last_error::{last_error_string, lk_last_error_clear};
use losskit::ffi::plugin::{
    lk_plugin_count, lk_plugin_describe, lk_plugin_info, lk_plugin_load, lk_plugin_loss_id_at,
};
use losskit::ffi::status::lk_status;
use losskit::testing::{Case, OwnedData};
use losskit::{Compute, Context, ErrorKind, Loss, Reduction, Tensor, TensorMut, plugin};
use suites::Config;
use support::{asl_plugin, fault, root, rust_plugin, toy_plugin};

// ---- a counting allocator: live bytes allocated by each thread ----

struct Counting;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread (other threads, such as the test
    /// harness's, do not disturb a measurement).
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|l| l.set(l.get() + delta));
}

fn live() -> isize {
    LIVE.with(Cell::get)
}

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size() as isize);
        // SAFETY: forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as isize));
        // SAFETY: forwarded.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count(l.size() as isize);
        // SAFETY: forwarded.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(new as isize - l.size() as isize);
        // SAFETY: forwarded.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Every test holds this, so the leak test sees no other test's allocations.
fn serial() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|p| p.into_inner())
}

// ---- helpers ----

fn dims(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn f32s(case: &Case, k: usize) -> Vec<f32> {
    match &case.inputs[k].as_ref().expect("input present").data {
        OwnedData::F32(v) => v.clone(),
        OwnedData::I64(_) => panic!("input {k} is i64"),
    }
}

fn asl_ref(x: f64, y: f64, gp: f64, gn: f64, clip: f64) -> f64 {
    let p = 1.0 / (1.0 + (-x).exp());
    let pos = (1.0 - p).powf(gp) * -(p.ln());
    let pm = (p - clip).max(0.0);
    let neg = if pm > 0.0 {
        pm.powf(gn) * -((1.0 - pm).ln())
    } else {
        0.0
    };
    y * pos + (1.0 - y) * neg
}

fn err_of(r: losskit::Result<impl std::fmt::Debug>) -> losskit::LkError {
    r.expect_err("expected an error")
}

// ---- the C example: asymmetric loss ----

#[test]
fn asl_loads_and_is_listed_like_a_builtin() {
    let _g = serial();
    let ctx = Context::cpu();
    let n0 = ctx.losses().len();
    let info = plugin::load(&ctx, asl_plugin(), None).unwrap();
    assert_eq!(info.name.as_str(), "asl");
    assert_eq!(info.version.as_str(), "1.0.0");
    assert_eq!(info.entry.as_str(), "lk_plugin_init");
    assert_eq!(info.losses.len(), 1);
    assert_eq!(ctx.losses().len(), n0 + 1);
    assert_eq!(ctx.plugins().len(), 1);
    let def = ctx.find("asymmetric_loss").unwrap();
    let s = &def.spec;
    assert_eq!(s.family.as_str(), "classification");
    assert_eq!(s.inputs.len(), 2);
    assert!(s.inputs[0].differentiable && !s.inputs[1].differentiable);
    assert_eq!(s.params.len(), 3);
    assert_eq!(s.params[1].name.as_str(), "gamma_neg");
    assert_eq!(s.params[2].range_text(), "[0, 1)");
    assert!(def.has_gpu());
    assert!(def.wgsl_source().unwrap().contains("fn lk_main"));
    // Parameters are checked like a builtin's: out of range is an error, never a clamp.
    let mut l = ctx.loss("asymmetric_loss").unwrap();
    assert_eq!(err_of(l.set_f64("clip", 1.0)).kind, ErrorKind::InvalidParam);
    assert_eq!(
        err_of(l.set_f64("gamma_neg", -1.0)).kind,
        ErrorKind::InvalidParam
    );
    assert_eq!(
        err_of(l.set_f64("gamma", 1.0)).kind,
        ErrorKind::UnknownParam
    );
}

#[test]
fn asl_values_match_an_f64_reference() {
    let _g = serial();
    let ctx = Context::cpu();
    plugin::load(&ctx, asl_plugin(), None).unwrap();
    for (gp, gn, clip) in [
        (1.0, 4.0, 0.05),
        (0.0, 0.0, 0.0),
        (2.0, 1.0, 0.2),
        (0.5, 3.0, 0.0),
    ] {
        let mut l = ctx.loss("asymmetric_loss").unwrap();
        l.set_f64("gamma_pos", gp).unwrap();
        l.set_f64("gamma_neg", gn).unwrap();
        l.set_f64("clip", clip).unwrap();
        let d = dims(&[("N", 9), ("C", 6)]);
        let case = Case::random(&l, &d, 3, true);
        let (x, y) = (f32s(&case, 0), f32s(&case, 1));
        let want: Vec<f64> = (0..9)
            .map(|i| {
                (0..6)
                    .map(|c| asl_ref(x[i * 6 + c] as f64, y[i * 6 + c] as f64, gp, gn, clip))
                    .sum()
            })
            .collect();
        let out = case.run(&l, Reduction::None, false, None).unwrap();
        assert_close(
            &format!("asl ({gp}, {gn}, {clip})"),
            &out.loss,
            &want,
            LOSS_TOL,
        );
        if gp == 0.0 && gn == 0.0 && clip == 0.0 {
            // ASL without focusing or shifting is binary cross-entropy with logits.
            let bce: Vec<f64> = (0..9)
                .map(|i| {
                    (0..6)
                        .map(|c| {
                            let (x, y) = (x[i * 6 + c] as f64, y[i * 6 + c] as f64);
                            x.max(0.0) - x * y + (-x.abs()).exp().ln_1p()
                        })
                        .sum()
                })
                .collect();
            assert_close("asl = bce", &out.loss, &bce, LOSS_TOL);
        }
    }
}

#[test]
fn asl_gradients_reductions_and_edge_cases() {
    let _g = serial();
    let ctx = Context::cpu();
    plugin::load(&ctx, asl_plugin(), None).unwrap();
    let d = dims(&[("N", 7), ("C", 5)]);
    let cfgs = asl_configs(&ctx);
    suites::gradients(&cfgs, 18, 500);
    suites::reductions_and_grad_output(&cfgs, 3, 3);
    let l = ctx.loss("asymmetric_loss").unwrap();

    // Empty batch: sum and mean are 0 and the plugin is not called.
    let mut out = [7.0f32];
    let mut c = Compute::new(Reduction::Mean, &mut out)
        .input(Tensor::f32(&[], &[0, 5]))
        .input(Tensor::f32(&[], &[0, 5]));
    l.compute(&mut c).unwrap();
    drop(c);
    assert_eq!(out, [0.0]);

    // Strided rows in and out give the same numbers as contiguous ones.
    let case = Case::random(&l, &d, 9, true);
    let (x, y) = (f32s(&case, 0), f32s(&case, 1));
    let base = case.run(&l, Reduction::Sum, true, None).unwrap();
    let stride = 8;
    let mut xs = vec![f32::NAN; 7 * stride];
    for i in 0..7 {
        xs[i * stride..i * stride + 5].copy_from_slice(&x[i * 5..i * 5 + 5]);
    }
    let mut gs = vec![-1.0f32; 7 * stride];
    let mut loss = [0.0f32];
    let mut c = Compute::new(Reduction::Sum, &mut loss)
        .input(Tensor::f32(&xs, &[7, 5]).with_row_stride(stride))
        .input(Tensor::f32(&y, &[7, 5]))
        .grad(0, TensorMut::new(&mut gs, &[7, 5]).with_row_stride(stride));
    l.compute(&mut c).unwrap();
    drop(c);
    assert_eq!(loss[0], base.loss[0]);
    let g0 = base.grads[0].as_ref().unwrap();
    for i in 0..7 {
        assert_eq!(&gs[i * stride..i * stride + 5], &g0[i * 5..i * 5 + 5]);
        assert!(
            gs[i * stride + 5..i * stride + 8]
                .iter()
                .all(|&v| v == -1.0)
        );
    }

    // Bad inputs are refused by the host from the spec, before the plugin runs.
    let x = vec![0.5f32; 35];
    let y = vec![1.0f32; 35];
    let ones = vec![1i64; 35];
    for (k, want) in [
        ErrorKind::ShapeMismatch,
        ErrorKind::DType,
        ErrorKind::NullArg,
        ErrorKind::BufferTooSmall,
        ErrorKind::ShapeMismatch,
    ]
    .into_iter()
    .enumerate()
    {
        let mut out = [0.0f32];
        let red = if k == 4 {
            Reduction::None
        } else {
            Reduction::Mean
        };
        let c = Compute::new(red, &mut out);
        let mut c = match k {
            0 => c
                .input(Tensor::f32(&x, &[7, 5]))
                .input(Tensor::f32(&y[..30], &[6, 5])),
            1 => c
                .input(Tensor::f32(&x, &[7, 5]))
                .input(Tensor::i64(&ones, &[7, 5])),
            2 => c.input(Tensor::f32(&x, &[7, 5])),
            3 => c
                .input(Tensor::f32(&x[..20], &[7, 5]))
                .input(Tensor::f32(&y, &[7, 5])),
            _ => c
                .input(Tensor::f32(&x, &[7, 5]))
                .input(Tensor::f32(&y, &[7, 5])),
        };
        let e = l.compute(&mut c).expect_err("bad input accepted");
        assert_eq!(e.kind, want, "case {k}: {}", e.msg);
        assert!(e.msg.contains("asymmetric_loss"), "{}", e.msg);
    }
}

/// `asymmetric_loss` with its defaults and three settings of its parameters (N = 7, C = 5).
fn asl_configs(ctx: &Context) -> Vec<Config> {
    let mut v = Vec::new();
    for (gp, gn, clip) in [(1.0, 4.0, 0.05), (0.0, 0.0, 0.0), (2.0, 2.0, 0.0)] {
        let mut l = ctx.loss("asymmetric_loss").unwrap();
        l.set_f64("gamma_pos", gp).unwrap();
        l.set_f64("gamma_neg", gn).unwrap();
        l.set_f64("clip", clip).unwrap();
        v.push(
            Config::new(&format!("asymmetric_loss ({gp}, {gn}, {clip})"), l)
                .dims(&[("N", 7), ("C", 5)]),
        );
    }
    v
}

// ---- the generic suites over the example plugins' losses ----

/// The losses of the example plugins.
fn example_ids() -> Vec<String> {
    vec!["asymmetric_loss".to_string(), "log_cosh".to_string()]
}

/// Their defaults (the suites' sizes), `asymmetric_loss`'s settings of [`asl_configs`] and
/// `log_cosh` with three `delta`s.
fn example_configs(ctx: &Context) -> Vec<Config> {
    let mut v = suites::configs(ctx, &example_ids());
    v.extend(asl_configs(ctx));
    for delta in [1.0, 0.3, 2.5] {
        let mut l = ctx.loss("log_cosh").unwrap();
        l.set_f64("delta", delta).unwrap();
        v.push(Config::new(&format!("log_cosh delta {delta}"), l).dims(&[("N", 6), ("D", 4)]));
    }
    v
}

#[test]
fn examples_gradients_match_finite_differences() {
    let _g = serial();
    let ctx = support::context_with_examples();
    suites::gradients(&example_configs(&ctx), MIN_FD_CASES, MIN_FD_ELEMENTS);
}

#[test]
fn examples_reductions_and_grad_output_are_consistent() {
    let _g = serial();
    let ctx = support::context_with_examples();
    suites::reductions_and_grad_output(&example_configs(&ctx), MIN_CONFIGS, MIN_PER_ROW_INPUTS);
}

/// The examples have no `ignore_index`: the suite runs over them (and counts the skips) and
/// over the toy plugin's `toy_class`, which has one.
#[test]
fn examples_and_toy_ignored_rows_contribute_nothing() {
    let _g = serial();
    let ctx = support::context_with_examples();
    plugin::load(&ctx, toy_plugin(), None).unwrap();
    let mut cfgs = example_configs(&ctx);
    cfgs.extend(suites::configs(&ctx, &["toy_class".to_string()]));
    suites::ignored_rows(&cfgs, MIN_IGNORE);
}

#[test]
fn examples_unit_weights_equal_absent_weights_exactly() {
    let _g = serial();
    let ctx = support::context_with_examples();
    suites::unit_weights(&example_configs(&ctx), MIN_WEIGHTS);
}

#[test]
fn examples_empty_batch_gives_zero() {
    let _g = serial();
    let ctx = support::context_with_examples();
    suites::empty_batch(&example_configs(&ctx), MIN_CONFIGS);
}

#[test]
fn examples_bad_inputs_get_their_own_status() {
    let _g = serial();
    let ctx = support::context_with_examples();
    suites::specs_are_valid(&ctx, &example_ids());
    suites::bad_inputs(&ctx, &example_ids(), MIN_REFUSALS);
}

#[test]
fn examples_compute_from_eight_threads_at_once() {
    let _g = serial();
    let ctx = support::context_with_examples();
    suites::eight_threads(&example_configs(&ctx), MIN_CONFIGS);
}

#[test]
fn examples_do_not_depend_on_the_thread_count() {
    let _g = serial();
    let ctx = support::context_with_examples();
    suites::thread_count_independent(&example_configs(&ctx), MIN_THREAD_RUNS);
}

// The least each suite must check over the example plugins (the counts are printed).
/// Finite-difference cases.
const MIN_FD_CASES: usize = 48;
/// Finite-difference elements compared.
const MIN_FD_ELEMENTS: usize = 1800;
/// Configurations.
const MIN_CONFIGS: usize = 8;
/// Gradient inputs with the per-sample `grad_output` checked element by element.
const MIN_PER_ROW_INPUTS: usize = 12;
/// Configurations with ignored rows checked (`toy_class`).
const MIN_IGNORE: usize = 1;
/// Optional weight inputs (`log_cosh`'s `sample_weight`).
const MIN_WEIGHTS: usize = 4;
/// Refusals of the bad-input table.
const MIN_REFUSALS: usize = 20;
/// Configuration x reduction runs over 1/2/3/7 threads.
const MIN_THREAD_RUNS: usize = 24;

#[test]
fn asl_from_four_threads_at_once_is_deterministic() {
    let _g = serial();
    let ctx = Context::cpu();
    plugin::load(&ctx, asl_plugin(), None).unwrap();
    let mut l = ctx.loss("asymmetric_loss").unwrap();
    l.set_f64("gamma_neg", 2.0).unwrap();
    let case = Case::random(&l, &dims(&[("N", 64), ("C", 33)]), 1, true);
    let want = case.run(&l, Reduction::Mean, true, None).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10 {
                    let got = case.run(&l, Reduction::Mean, true, None).unwrap();
                    assert_eq!(got.loss, want.loss);
                    assert_eq!(got.grads, want.grads);
                }
            });
        }
    });
}

#[test]
fn a_loss_keeps_its_plugin_loaded_after_the_context_is_gone() {
    let _g = serial();
    let ctx = Context::cpu();
    plugin::load(&ctx, asl_plugin(), None).unwrap();
    let l = ctx.loss("asymmetric_loss").unwrap();
    let case = Case::random(&l, &dims(&[("N", 4), ("C", 3)]), 2, true);
    let before = case.run(&l, Reduction::Sum, true, None).unwrap();
    drop(ctx);
    let after = case.run(&l, Reduction::Sum, true, None).unwrap();
    assert_eq!(before.loss, after.loss);
}

// ---- the walk-through plugin of plugins/README.md ----

#[test]
fn the_readme_plugin_builds_loads_and_passes_the_gradient_check() {
    let _g = serial();
    let readme = std::fs::read_to_string(root().join("plugins/README.md")).unwrap();
    let start = readme
        .find("```c\n")
        .expect("a C block in plugins/README.md")
        + 5;
    let len = readme[start..].find("```").unwrap();
    let src = support::target_dir().join("plugins/pseudo_huber.c");
    std::fs::write(&src, &readme[start..start + len]).unwrap();
    let so = support::build_c(src.to_str().unwrap(), "libpseudohuber.so", &[]);
    let ctx = Context::cpu();
    plugin::load(&ctx, &so, None).unwrap();
    let d = dims(&[("N", 5), ("D", 3)]);
    for delta in [1.0, 0.25] {
        let mut l = ctx.loss("pseudo_huber").unwrap();
        l.set_f64("delta", delta).unwrap();
        let cfg = Config::new(&format!("pseudo_huber delta {delta}"), l.clone())
            .dims(&[("N", 5), ("D", 3)]);
        suites::gradients(std::slice::from_ref(&cfg), 6, 60);
        let case = Case::random(&l, &d, 2, true);
        let (p, t) = (f32s(&case, 0), f32s(&case, 1));
        let want: Vec<f64> = (0..5)
            .map(|i| {
                (0..3)
                    .map(|j| {
                        let r = (p[i * 3 + j] as f64 - t[i * 3 + j] as f64) / delta;
                        delta * delta * ((1.0 + r * r).sqrt() - 1.0)
                    })
                    .sum()
            })
            .collect();
        let out = case.run(&l, Reduction::None, false, None).unwrap();
        assert_close("pseudo_huber", &out.loss, &want, LOSS_TOL);
    }
}

// ---- the Rust example: log-cosh ----

#[test]
fn rust_plugin_loads_by_file_name_entry_and_matches_its_reference() {
    let _g = serial();
    let ctx = Context::cpu();
    let info = plugin::load(&ctx, rust_plugin(), None).unwrap();
    // liblogcosh.so exports only lk_plugin_logcosh_init (the file-name rule).
    assert_eq!(info.entry.as_str(), "lk_plugin_logcosh_init");
    assert_eq!(info.name.as_str(), "logcosh");
    let def = ctx.find("log_cosh").unwrap();
    assert!(def.has_gpu());
    assert_eq!(def.spec.params[0].range_text(), "(0, inf)");
    let d = dims(&[("N", 6), ("D", 4)]);
    for delta in [1.0, 0.3, 2.5] {
        let mut l = ctx.loss("log_cosh").unwrap();
        l.set_f64("delta", delta).unwrap();
        for with_w in [false, true] {
            let case = Case::random(&l, &d, 8, with_w);
            let (p, t) = (f32s(&case, 0), f32s(&case, 1));
            let w = with_w.then(|| f32s(&case, 2));
            let want: Vec<f64> = (0..6)
                .map(|i| {
                    let s: f64 = (0..4)
                        .map(|j| {
                            let r = (p[i * 4 + j] as f64 - t[i * 4 + j] as f64) / delta;
                            delta * delta * r.cosh().ln()
                        })
                        .sum();
                    s * w.as_ref().map_or(1.0, |w| w[i] as f64)
                })
                .collect();
            let out = case.run(&l, Reduction::None, false, None).unwrap();
            assert_close(
                &format!("log_cosh delta {delta}"),
                &out.loss,
                &want,
                LOSS_TOL,
            );
        }
        let cfg =
            Config::new(&format!("log_cosh delta {delta}"), l.clone()).dims(&[("N", 6), ("D", 4)]);
        suites::gradients(std::slice::from_ref(&cfg), 6, 250);
        suites::reductions_and_grad_output(std::slice::from_ref(&cfg), 1, 2);
    }
    assert_eq!(
        err_of(ctx.loss("log_cosh").unwrap().set_f64("delta", 0.0)).kind,
        ErrorKind::InvalidParam
    );
}

#[test]
fn both_examples_in_one_context_and_no_id_twice() {
    let _g = serial();
    let ctx = support::context_with_examples();
    assert_eq!(ctx.plugins().len(), 2);
    let n = ctx.losses().len();
    let e = err_of(plugin::load(&ctx, asl_plugin(), None));
    assert_eq!(e.kind, ErrorKind::PluginDuplicateId);
    assert!(e.msg.contains("libasl.so"), "{}", e.msg);
    assert!(e.msg.contains("asymmetric_loss"), "{}", e.msg);
    assert_eq!(ctx.losses().len(), n);
    assert_eq!(ctx.plugins().len(), 2);
    // Another context is independent.
    let other = Context::cpu();
    plugin::load(&other, asl_plugin(), None).unwrap();
    assert!(other.find("log_cosh").is_err());
}

// ---- the toy plugin: class targets, aux outputs, states, batch-level, failures, NaN ----

#[test]
fn toy_class_targets_ignore_index_enum_and_aux() {
    let _g = serial();
    let ctx = Context::cpu();
    let info = plugin::load(&ctx, toy_plugin(), None).unwrap();
    assert_eq!(info.losses.len(), 5);
    let mut l = ctx.loss("toy_class").unwrap();
    let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let run =
        |l: &Loss, y: &[i64], red: Reduction| -> losskit::Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
            let mut loss = vec![0.0f32; if red == Reduction::None { 2 } else { 1 }];
            let mut g = vec![9.0f32; 6];
            let mut picked = vec![9.0f32; 2];
            let mut c = Compute::new(red, &mut loss)
                .input(Tensor::f32(&x, &[2, 3]))
                .input(Tensor::i64(y, &[2]))
                .grad(0, TensorMut::new(&mut g, &[2, 3]))
                .aux("picked", TensorMut::new(&mut picked, &[2]));
            l.compute(&mut c)?;
            drop(c);
            Ok((loss, g, picked))
        };
    let (loss, g, picked) = run(&l, &[2, 0], Reduction::None).unwrap();
    assert_eq!(loss, [-3.0, -4.0]);
    assert_eq!(g, [0.0, 0.0, -1.0, -1.0, 0.0, 0.0]);
    assert_eq!(picked, [3.0, 4.0]);
    // ignore_index rows give 0 and zero gradient; mean divides by the rows.
    let (loss, g, picked) = run(&l, &[-100, 1], Reduction::Mean).unwrap();
    assert_eq!(loss, [-2.5]);
    assert_eq!(g, [0.0, 0.0, 0.0, 0.0, -0.5, 0.0]);
    assert_eq!(picked, [0.0, 5.0]);
    // The host checks class targets: the plugin never sees an out-of-range index.
    for y in [[3i64, 0], [0, -1]] {
        let e = err_of(run(&l, &y, Reduction::Sum));
        assert_eq!(e.kind, ErrorKind::InvalidTarget, "{}", e.msg);
        assert!(e.msg.contains("label["), "{}", e.msg);
    }
    // Enum and f64 parameters reach the plugin (through its state).
    l.set_enum("sign", "minus").unwrap();
    l.set_f64("scale", 2.0).unwrap();
    let (loss, _, _) = run(&l, &[2, 0], Reduction::Sum).unwrap();
    assert_eq!(loss, [14.0]);
    // The plugin's create rejects a configuration: the setter (which checks the value
    // against its declared range only, so that any order of sets works) takes it; the
    // check of the configuration and every compute refuse it with the plugin's message.
    l.set_f64("scale", 7.0).unwrap();
    for e in [err_of(l.check()), err_of(run(&l, &[2, 0], Reduction::Sum))] {
        assert_eq!(e.kind, ErrorKind::InvalidParam);
        assert!(e.msg.contains("scale 7 is unlucky"), "{}", e.msg);
    }
    assert_eq!(l.params().f64("scale"), 7.0);
    l.set_f64("scale", 2.0).unwrap();
    l.check().unwrap();
    let cfg = Config::new("toy_class", l.clone()).dims(&[("N", 5), ("C", 4)]);
    suites::gradients(std::slice::from_ref(&cfg), 6, 80);
}

#[test]
fn toy_batch_level_gradients_of_a_shared_input() {
    let _g = serial();
    let ctx = Context::cpu();
    plugin::load(&ctx, toy_plugin(), None).unwrap();
    let l = ctx.loss("toy_batch").unwrap();
    assert!(l.def().spec.batch_level);
    let cfg = Config::new("toy_batch", l.clone()).dims(&[("N", 4), ("D", 3)]);
    suites::gradients(std::slice::from_ref(&cfg), 4, 12);
    let mut out = [0.0f32; 4];
    let mut c = Compute::new(Reduction::None, &mut out)
        .input(Tensor::f32(&[1.0; 12], &[4, 3]))
        .input(Tensor::f32(&[1.0; 3], &[3]));
    assert_eq!(err_of(l.compute(&mut c)).kind, ErrorKind::Unsupported);
    drop(c);
    // grad_output scales the gradients of a batch-level loss.
    let case = Case::random(&l, &dims(&[("N", 4), ("D", 3)]), 4, true);
    let a = case.run(&l, Reduction::Sum, true, None).unwrap();
    let b = case.run(&l, Reduction::Sum, true, Some(&[-2.0])).unwrap();
    assert_eq!(a.loss, b.loss);
    for (ga, gb) in a.grads.iter().zip(&b.grads) {
        let (ga, gb) = (ga.as_ref().unwrap(), gb.as_ref().unwrap());
        assert!(ga.iter().zip(gb).all(|(x, y)| *y == -2.0 * *x));
    }
}

#[test]
fn a_failing_callback_passes_its_message_and_the_host_goes_on() {
    let _g = serial();
    let ctx = Context::cpu();
    plugin::load(&ctx, toy_plugin(), None).unwrap();
    let mut l = ctx.loss("toy_fail").unwrap();
    let x = [1.0f32, 2.0, 3.0];
    let go = |l: &Loss| -> losskit::Result<f32> {
        let mut out = [0.0f32];
        let mut g = [0.0f32; 3];
        let mut c = Compute::new(Reduction::Sum, &mut out)
            .input(Tensor::f32(&x, &[3]))
            .grad(0, TensorMut::new(&mut g, &[3]));
        l.compute(&mut c)?;
        drop(c);
        Ok(out[0])
    };
    for (code, kind) in [
        (205, ErrorKind::PluginFailed),
        (77, ErrorKind::PluginFailed),
        (11, ErrorKind::InvalidInput),
        (8, ErrorKind::InvalidTarget),
    ] {
        l.set_i64("code", code).unwrap();
        let e = err_of(go(&l));
        assert_eq!(e.kind, kind, "code {code}: {}", e.msg);
        assert!(
            e.msg.contains("toy_fail refuses on purpose (rows = 3)"),
            "{}",
            e.msg
        );
        assert!(e.msg.contains("libtoy.so"), "{}", e.msg);
        assert!(e.msg.contains(&format!("status {code}")), "{}", e.msg);
    }
    l.set_i64("code", 0).unwrap();
    assert_eq!(go(&l).unwrap(), 6.0);
    // Through the C API: the status and the thread-local message.
    let ce = ctx.loss("cross_entropy").unwrap();
    let case = Case::random(&ce, &dims(&[("N", 3), ("C", 4)]), 1, false);
    case.run(&ce, Reduction::Mean, true, None).unwrap();
}

#[test]
fn nan_from_a_plugin_propagates_without_error() {
    let _g = serial();
    let ctx = Context::cpu();
    plugin::load(&ctx, toy_plugin(), None).unwrap();
    let l = ctx.loss("toy_nan").unwrap();
    let case = Case::random(&l, &dims(&[("N", 4)]), 1, true);
    for r in [Reduction::None, Reduction::Mean, Reduction::Sum] {
        let out = case.run(&l, r, true, None).unwrap();
        assert!(
            out.loss.iter().all(|v| v.is_nan()),
            "{}: {:?}",
            r.name(),
            out.loss
        );
        assert!(out.grads[0].as_ref().unwrap().iter().all(|v| v.is_nan()));
    }
}

#[test]
fn optional_fields_beyond_struct_size_are_not_read() {
    let _g = serial();
    let ctx = Context::cpu();
    plugin::load(&ctx, toy_plugin(), None).unwrap();
    // toy_old's table ends before wgsl_source, which holds garbage: the host ignores it.
    let d = ctx.find("toy_old").unwrap();
    assert!(d.wgsl_source().is_none());
    assert!(!d.has_gpu());
    let mut l = ctx.loss("toy_old").unwrap();
    l.set_i64("code", 0).unwrap();
    let case = Case::random(&l, &dims(&[("N", 3)]), 1, true);
    let out = case.run(&l, Reduction::None, false, None).unwrap();
    assert_eq!(out.loss, f32s(&case, 0));
}

// ---- broken plugins ----

/// (define, expected status, texts the message must contain)
fn faults() -> Vec<(&'static str, ErrorKind, Vec<&'static str>)> {
    vec![
        (
            "TOY_ABI_99",
            ErrorKind::PluginAbi,
            vec!["v99", "v1", "version mismatch"],
        ),
        (
            "TOY_SMALL_PLUGIN",
            ErrorKind::PluginAbi,
            vec!["struct_size is 8"],
        ),
        (
            "TOY_NO_ENTRY",
            ErrorKind::PluginSymbol,
            vec!["lk_plugin_init", "lk_plugin_toytoynoentry_init"],
        ),
        (
            "TOY_DUP_BUILTIN",
            ErrorKind::PluginDuplicateId,
            vec!["cross_entropy", "builtin"],
        ),
        (
            "TOY_DUP_SELF",
            ErrorKind::PluginDuplicateId,
            vec!["toy_class", "twice"],
        ),
        (
            "TOY_BAD_DEFAULT",
            ErrorKind::PluginInvalidSpec,
            vec!["toy_bad_default", "scale", "20"],
        ),
        (
            "TOY_BAD_GRAD",
            ErrorKind::PluginInvalidSpec,
            vec!["toy_bad_grad", "'w'", "per-sample letter"],
        ),
        (
            "TOY_INIT_FAILS",
            ErrorKind::PluginFailed,
            vec!["lk_plugin_init", "missing licence file"],
        ),
        (
            "TOY_CREATE_REJECTS",
            ErrorKind::PluginFailed,
            vec!["toy_class", "create refuses every configuration"],
        ),
    ]
}

#[test]
fn every_broken_plugin_gets_its_own_status_and_registers_nothing() {
    let _g = serial();
    let ctx = Context::cpu();
    let n = ctx.losses().len();
    for (define, kind, texts) in faults() {
        let path = fault(define);
        let e = err_of(plugin::load(&ctx, &path, None));
        assert_eq!(e.kind, kind, "{define}: {}", e.msg);
        let file = path.file_name().unwrap().to_str().unwrap();
        assert!(
            e.msg.contains(file),
            "{define}: no file name in '{}'",
            e.msg
        );
        for t in texts {
            assert!(e.msg.contains(t), "{define}: no '{t}' in '{}'", e.msg);
        }
        // All or nothing: the valid first loss of the faulty plugin is not registered.
        assert!(
            ctx.find("toy_class").is_err(),
            "{define}: partial registration"
        );
        assert_eq!(ctx.losses().len(), n);
        assert!(ctx.plugins().is_empty());
    }
    // Missing file, and an explicit entry name.
    let e = err_of(plugin::load(&ctx, "/nonexistent/libnothing.so", None));
    assert_eq!(e.kind, ErrorKind::PluginLoad);
    assert!(e.msg.contains("/nonexistent/libnothing.so"), "{}", e.msg);
    assert!(
        e.msg.contains("No such file"),
        "dlerror text missing: {}",
        e.msg
    );
    let e = err_of(plugin::load(&ctx, toy_plugin(), Some("no_such_entry")));
    assert_eq!(e.kind, ErrorKind::PluginSymbol);
    assert!(e.msg.contains("no_such_entry"), "{}", e.msg);
    let info = plugin::load(&ctx, fault("TOY_NO_ENTRY"), Some("toy_custom_entry")).unwrap();
    assert_eq!(info.entry.as_str(), "toy_custom_entry");
    // A file that is not a shared object.
    let e = err_of(plugin::load(&ctx, root().join("plugins/README.md"), None));
    assert_eq!(e.kind, ErrorKind::PluginLoad);
    // The host keeps working.
    let l = ctx.loss("toy_class").unwrap();
    let case = Case::random(&l, &dims(&[("N", 3), ("C", 4)]), 1, true);
    case.run(&l, Reduction::Mean, true, None).unwrap();
}

/// Load via the C API; returns the status and the thread's message.
fn c_load(ctx: *const lk_context, path: &std::path::Path) -> (lk_status, String) {
    let p = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a live context and a C string.
    let s = unsafe { lk_plugin_load(ctx, p.as_ptr(), std::ptr::null()) };
    (s, last_error_string().unwrap_or_default())
}

#[test]
fn c_api_load_statuses_and_introspection() {
    let _g = serial();
    let mut ctx: *mut lk_context = std::ptr::null_mut();
    // SAFETY: a valid out-pointer.
    assert_eq!(unsafe { lk_context_create(1, &mut ctx) }, lk_status::LK_OK);
    for (define, want) in [
        ("TOY_ABI_99", lk_status::LK_ERR_PLUGIN_ABI),
        ("TOY_NO_ENTRY", lk_status::LK_ERR_PLUGIN_SYMBOL),
        ("TOY_DUP_BUILTIN", lk_status::LK_ERR_PLUGIN_DUPLICATE_ID),
        ("TOY_BAD_DEFAULT", lk_status::LK_ERR_PLUGIN_INVALID_SPEC),
        ("TOY_INIT_FAILS", lk_status::LK_ERR_PLUGIN_FAILED),
    ] {
        let (s, msg) = c_load(ctx, &fault(define));
        assert_eq!(s, want, "{define}: {msg}");
    }
    let (s, _) = c_load(ctx, std::path::Path::new("/nonexistent.so"));
    assert_eq!(s, lk_status::LK_ERR_PLUGIN_LOAD);
    // SAFETY: NULL arguments are refused.
    let s = unsafe { lk_plugin_load(ctx, std::ptr::null(), std::ptr::null()) };
    assert_eq!(s, lk_status::LK_ERR_NULL_ARG);
    // SAFETY: live context.
    assert_eq!(unsafe { lk_plugin_count(ctx) }, 0);
    assert_eq!(c_load(ctx, &asl_plugin()).0, lk_status::LK_OK);
    assert_eq!(c_load(ctx, &toy_plugin()).0, lk_status::LK_OK);
    // SAFETY: live context.
    assert_eq!(unsafe { lk_plugin_count(ctx) }, 2);
    let mut info = std::mem::MaybeUninit::<lk_plugin_info>::uninit();
    // SAFETY: live context, writable out.
    let s = unsafe { lk_plugin_describe(ctx, 1, info.as_mut_ptr()) };
    assert_eq!(s, lk_status::LK_OK);
    // SAFETY: written on LK_OK.
    let info = unsafe { info.assume_init() };
    // SAFETY: strings live as long as the context.
    let name = unsafe { CStr::from_ptr(info.name) }.to_str().unwrap();
    assert_eq!(name, "toy");
    assert_eq!(info.n_losses, 5);
    // SAFETY: live context.
    let id = unsafe { CStr::from_ptr(lk_plugin_loss_id_at(ctx, 1, 3)) };
    assert_eq!(id.to_str().unwrap(), "toy_nan");
    // SAFETY: out of range gives NULL / an error.
    assert!(unsafe { lk_plugin_loss_id_at(ctx, 1, 5) }.is_null());
    let mut spare = std::mem::MaybeUninit::<lk_plugin_info>::uninit();
    // SAFETY: as above.
    let s = unsafe { lk_plugin_describe(ctx, 2, spare.as_mut_ptr()) };
    assert_eq!(s, lk_status::LK_ERR_INVALID_ARG);
    // SAFETY: NULL context.
    assert_eq!(unsafe { lk_plugin_count(std::ptr::null()) }, 0);
    // SAFETY: the context from lk_context_create.
    unsafe { lk_context_free(ctx) };
}

// ---- leaks ----

/// The toy plugin's count of live states (it counts its creates minus destroys).
fn toy_live_states(lib: &libloading::Library) -> i32 {
    // SAFETY: toy.c exports `int toy_live_states(void)`.
    let f = unsafe { lib.get::<unsafe extern "C" fn() -> i32>("toy_live_states") }.unwrap();
    // SAFETY: as declared.
    unsafe { f() }
}

fn load_cycle() {
    // Every broken plugin, through the C API (its thread-local message included).
    let mut ctx: *mut lk_context = std::ptr::null_mut();
    // SAFETY: a valid out-pointer.
    assert_eq!(unsafe { lk_context_create(1, &mut ctx) }, lk_status::LK_OK);
    for (define, _, _) in faults() {
        assert_ne!(c_load(ctx, &fault(define)).0, lk_status::LK_OK);
    }
    assert_eq!(c_load(ctx, &toy_plugin()).0, lk_status::LK_OK);
    // SAFETY: the context from lk_context_create.
    unsafe { lk_context_free(ctx) };
    // Working plugins: load, configure (plugin states), compute, fail, drop everything.
    let ctx = Context::cpu();
    plugin::load(&ctx, asl_plugin(), None).unwrap();
    plugin::load(&ctx, toy_plugin(), None).unwrap();
    let _ = plugin::load(&ctx, toy_plugin(), None).unwrap_err();
    let mut l = ctx.loss("toy_class").unwrap();
    for s in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 9.0, 10.0, 0.5] {
        l.set_f64("scale", s).unwrap();
        let case = Case::random(&l, &dims(&[("N", 3), ("C", 4)]), 1, true);
        case.run(&l, Reduction::Mean, true, None).unwrap();
    }
    l.set_f64("scale", 7.0).unwrap();
    let _ = l.check().unwrap_err();
    let a = ctx.loss("asymmetric_loss").unwrap();
    let case = Case::random(&a, &dims(&[("N", 3), ("C", 4)]), 1, true);
    case.run(&a, Reduction::Mean, true, None).unwrap();
    let f = ctx.loss("toy_fail").unwrap();
    let case = Case::random(&f, &dims(&[("N", 3)]), 1, true);
    let _ = case.run(&f, Reduction::Mean, true, None).unwrap_err();
}

#[test]
fn loading_failing_and_unloading_leak_nothing() {
    let _g = serial();
    // Keep the toy library mapped so its state counter survives the contexts.
    // SAFETY: loading our own test plugin.
    let toy = unsafe { libloading::Library::new(toy_plugin()) }.unwrap();
    for (d, _, _) in faults() {
        fault(d);
    }
    asl_plugin();
    load_cycle(); // warm-up: lazily initialised statics, the thread's message slot
    lk_last_error_clear();
    assert_eq!(toy_live_states(&toy), 0, "plugin states not destroyed");
    let before = live();
    for _ in 0..10 {
        load_cycle();
    }
    lk_last_error_clear();
    let after = live();
    assert_eq!(toy_live_states(&toy), 0, "plugin states not destroyed");
    assert_eq!(
        after - before,
        0,
        "live heap bytes grew by {} over 10 load/fail/compute cycles",
        after - before
    );
}

// ---- WGSL kernels against the per-sample kernel contract v1 ----

/// Parse and validate the contract prelude, the names generated from `spec` and `src`, and
/// check its bindings follow the contract for `spec`.
fn check_kernel(spec: &losskit::LossSpec, src: &str) {
    use naga::{AddressSpace, ScalarKind, ShaderStage, TypeInner};
    let id = spec.id.as_str();
    let names = losskit::kernel_names::spec_constants(spec).expect("names for the spec");
    let full = format!(
        "{}{names}{src}",
        losskit::backend::wgpu::per_sample::CONTRACT_PRELUDE
    );
    let module = naga::front::wgsl::parse_str(&full)
        .unwrap_or_else(|e| panic!("{id}: WGSL does not parse:\n{}", e.emit_to_string(&full)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{id}: WGSL does not validate: {e:?}"));
    let ep = module
        .entry_points
        .iter()
        .find(|e| e.name == "lk_main")
        .unwrap_or_else(|| panic!("{id}: no entry point lk_main"));
    assert_eq!(ep.stage, ShaderStage::Compute);
    assert_eq!(ep.workgroup_size, [64, 1, 1], "{id}: workgroup size");
    // Expected bindings: inputs, the per-row loss, one gradient per differentiable input.
    let n_in = spec.inputs.len();
    let mut want: Vec<(u32, ScalarKind, bool)> = spec
        .inputs
        .iter()
        .enumerate()
        .map(|(k, i)| {
            let kind = match i.dtype {
                losskit::DType::F32 => ScalarKind::Float,
                losskit::DType::I64 => ScalarKind::Sint,
            };
            (1 + k as u32, kind, false)
        })
        .collect();
    want.push((1 + n_in as u32, ScalarKind::Float, true));
    let diff = spec.inputs.iter().filter(|i| i.differentiable).count();
    for j in 0..diff {
        want.push((2 + n_in as u32 + j as u32, ScalarKind::Float, true));
    }
    for (b, kind, writable) in want {
        let (_, var) = module
            .global_variables
            .iter()
            .find(|(_, v)| {
                v.binding
                    .as_ref()
                    .is_some_and(|r| r.group == 0 && r.binding == b)
            })
            .unwrap_or_else(|| panic!("{id}: nothing at @binding({b})"));
        let AddressSpace::Storage { access } = var.space else {
            panic!("{id}: @binding({b}) is not a storage buffer");
        };
        assert_eq!(
            access.contains(naga::StorageAccess::STORE),
            writable,
            "{id}: @binding({b}) access"
        );
        let TypeInner::Array { base, .. } = module.types[var.ty].inner else {
            panic!("{id}: @binding({b}) is not an array");
        };
        let TypeInner::Scalar(s) = module.types[base].inner else {
            panic!("{id}: @binding({b}) is not an array of scalars");
        };
        assert_eq!(
            (s.kind, s.width),
            (kind, 4),
            "{id}: @binding({b}) element type"
        );
    }
}

#[test]
fn example_kernels_parse_and_follow_the_per_sample_contract() {
    let _g = serial();
    let ctx = support::context_with_examples();
    for id in ["asymmetric_loss", "log_cosh"] {
        let def = ctx.find(id).unwrap();
        let src = def.wgsl_source().expect("a WGSL kernel");
        check_kernel(&def.spec, src);
    }
}

// ---- the C program (also the valgrind check) ----

fn build_c_program() -> std::path::PathBuf {
    let lib = common::cdylib_dir();
    let exe = support::target_dir().join("plugins").join("plugin_load");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = std::process::Command::new(&cc)
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-O1",
            "-g",
        ])
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join("tests/c/plugin_load.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-llosskit", "-lm"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(
        out.status.success(),
        "tests/c/plugin_load.c does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

#[test]
fn c_program_loads_and_runs_a_plugin_and_valgrind_finds_no_leak() {
    let _g = serial();
    let exe = build_c_program();
    let plugin = asl_plugin();
    let run = std::process::Command::new(&exe)
        .arg(&plugin)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && stdout.contains("ok"),
        "plugin_load failed ({:?}):\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let Ok(v) = std::process::Command::new("valgrind")
        .args([
            "--quiet",
            "--error-exitcode=97",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
        ])
        .arg(&exe)
        .arg(&plugin)
        .output()
    else {
        eprintln!("skipped: valgrind not installed");
        return;
    };
    assert!(
        v.status.success(),
        "valgrind reports errors or definite leaks ({:?}):\n{}",
        v.status,
        String::from_utf8_lossy(&v.stderr)
    );
}

/// The example plugins' WGSL kernels (per-sample contract) on the GPU backend match their
/// CPU callbacks: every reduction, with and without `grad_output`. Skips without an adapter
/// unless `LOSSKIT_REQUIRE_GPU=1`.
#[test]
fn plugin_kernels_match_their_cpu_callbacks_on_the_gpu() {
    let gpu = match losskit::Context::new(losskit::BackendKind::Wgpu) {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("LOSSKIT_REQUIRE_GPU").map_or(true, |v| v != "1"),
                "LOSSKIT_REQUIRE_GPU=1 but the wgpu backend is unavailable: {}",
                e.msg
            );
            eprintln!("skipped: no wgpu adapter ({})", e.msg);
            return;
        }
    };
    let cpu = support::context_with_examples();
    losskit::plugin::load(&gpu, support::asl_plugin(), None).expect("load libasl.so");
    losskit::plugin::load(&gpu, support::rust_plugin(), None).expect("load liblogcosh.so");
    for id in ["asymmetric_loss", "log_cosh"] {
        let lg = gpu.loss(id).unwrap();
        let lc = cpu.loss(id).unwrap();
        assert!(
            lg.def().has_gpu(),
            "{id}: its WGSL kernel was not registered"
        );
        for (seed, rows) in [(1u64, 5usize), (2, 130)] {
            let dims = BTreeMap::from([("N".to_string(), rows)]);
            let case = losskit::testing::Case::random(&lc, &dims, seed, true);
            for red in [
                losskit::Reduction::None,
                losskit::Reduction::Mean,
                losskit::Reduction::Sum,
            ] {
                let n_out = if red == losskit::Reduction::None {
                    case.rows(&lc.def().spec)
                } else {
                    1
                };
                let go: Vec<f32> = (0..n_out).map(|i| 0.5 + i as f32 * 0.25).collect();
                for g in [None, Some(go.as_slice())] {
                    let a = case.run(&lc, red, true, g).unwrap();
                    let b = case
                        .run(&lg, red, true, g)
                        .unwrap_or_else(|e| panic!("{id} on the GPU: {e}"));
                    let want: Vec<f64> = a.loss.iter().map(|v| *v as f64).collect();
                    assert_close(&format!("{id} {red:?} loss"), &b.loss, &want, 1e-4);
                    for (ga, gb) in a.grads.iter().zip(&b.grads) {
                        if let (Some(ga), Some(gb)) = (ga, gb) {
                            let want: Vec<f64> = ga.iter().map(|v| *v as f64).collect();
                            assert_close(&format!("{id} {red:?} grad"), gb, &want, 1e-4);
                        }
                    }
                }
            }
        }
    }
}
