//! Configuration over the whole registry: order-free setters, the combination checks at
//! compute time (`Loss::check`, `lk_loss_check`), the typed getters (`lk_loss_get_bool`,
//! `lk_loss_get_enum`), and no silent defaults for an unknown parameter name or shape letter.
//!
//! For every registered loss (the builtins and the example plugins, C and Rust), the
//! defaults and each `test_params` set are applied in forward and in reverse order: both
//! succeed, give the same values, pass the check and compute on small random inputs (with
//! and without the optional inputs), which also runs the parameter and shape-letter lookups
//! of the loss's code under that setting.

mod common;

#[cfg(feature = "plugins")]
#[path = "plugins/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use losskit::ffi::context::{lk_context, lk_context_create, lk_context_free};
use losskit::ffi::last_error::lk_last_error_message;
use losskit::ffi::loss::*;
use losskit::ffi::status::lk_status;
use losskit::testing::Case;
use losskit::{
    BackendKind, Compute, Context, ErrorKind, Loss, ParamKind, ParamValue, Reduction, Tensor,
    TensorMut, backend_available,
};

/// The contexts to test: builtins, and (with the plugin host) the example plugins.
fn contexts() -> Vec<Context> {
    #[cfg(feature = "plugins")]
    {
        vec![support::context_with_examples()]
    }
    #[cfg(not(feature = "plugins"))]
    {
        vec![Context::cpu()]
    }
}

/// Every parameter at its default, then each `test_params` set, for one loss.
fn settings(l: &Loss) -> Vec<Vec<(String, ParamValue)>> {
    let defaults: Vec<(String, ParamValue)> = l
        .def()
        .spec
        .params
        .iter()
        .map(|p| (p.name.to_string(), p.default))
        .collect();
    let mut v = vec![defaults];
    v.extend(l.def().test_params.iter().cloned());
    v
}

fn reductions(l: &Loss) -> Vec<Reduction> {
    if l.def().spec.batch_level {
        vec![Reduction::Mean, Reduction::Sum]
    } else {
        vec![Reduction::Mean, Reduction::Sum, Reduction::None]
    }
}

/// `base` with `set` applied in the given order; panics with the loss and the setting.
fn apply<'a>(base: &Loss, set: impl Iterator<Item = &'a (String, ParamValue)>, what: &str) -> Loss {
    let mut l = base.clone();
    for (n, v) in set {
        l.set(n, *v)
            .unwrap_or_else(|e| panic!("{}: {what}: set {n} = {v:?}: {e}", base.id()));
    }
    l
}

#[test]
fn every_setting_of_every_loss_works_in_both_orders() {
    let mut n_losses = 0;
    let mut n_settings = 0;
    for ctx in contexts() {
        for def in ctx.losses() {
            let id = def.spec.id.to_string();
            let base = ctx.loss(&id).unwrap();
            n_losses += 1;
            for (s, set) in settings(&base).iter().enumerate() {
                let what = format!("setting #{s} {set:?}");
                let fwd = apply(&base, set.iter(), &format!("{what}, forward"));
                let rev = apply(&base, set.iter().rev(), &format!("{what}, reverse"));
                assert_eq!(
                    fwd.params().values(),
                    rev.params().values(),
                    "{id}: {what}: forward and reverse orders differ"
                );
                // The last value given for a name wins (a set names each parameter once).
                for (n, v) in set {
                    assert_eq!(fwd.get(n).unwrap(), *v, "{id}: {what}: {n}");
                }
                for (order, l) in [("forward", &fwd), ("reverse", &rev)] {
                    l.check()
                        .unwrap_or_else(|e| panic!("{id}: {what}, {order}: check: {e}"));
                }
                // One reduction per setting (the generic suites cover the others).
                let red = reductions(&fwd)[s % reductions(&fwd).len()];
                for with_optional in [false, true] {
                    let case = Case::random(&fwd, &BTreeMap::new(), 3 + s as u64, with_optional);
                    case.run(&fwd, red, true, None).unwrap_or_else(|e| {
                        panic!("{id}: {what} {red:?} optional={with_optional}: {e}")
                    });
                }
                n_settings += 1;
            }
        }
    }
    println!("{n_losses} losses, {n_settings} settings, each in both orders");
    assert!(n_losses >= 44, "only {n_losses} losses seen");
}

fn lt(name: &str) -> ParamValue {
    let l = Context::cpu().loss("dpo").unwrap();
    let i = l.params().index("loss_type").unwrap();
    match &l.params().specs()[i].kind {
        ParamKind::Enum(c) => ParamValue::Enum(c.iter().position(|t| t.as_str() == name).unwrap()),
        _ => unreachable!(),
    }
}

/// Loss and gradient of the policy's chosen log-probs of a 2-pair `dpo`-like call with
/// references; `Err` when refused (the buffers are then checked untouched).
fn run_pairs(l: &Loss) -> losskit::Result<(Vec<f32>, Vec<f32>)> {
    let spec = &l.def().spec;
    let (pc, pr, rc, rr) = (
        [-1.0f32, -2.0],
        [-2.0f32, -1.5],
        [-1.2f32, -2.2],
        [-1.8f32, -1.4],
    );
    let mut loss = vec![f32::NAN; 2];
    let mut g = vec![f32::NAN; 2];
    let r = {
        let mut c = Compute::new(Reduction::None, &mut loss);
        for (k, name) in [
            "policy_chosen_logps",
            "policy_rejected_logps",
            "ref_chosen_logps",
            "ref_rejected_logps",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(spec.input_index(name), Some(k), "{}: input order", l.id());
        }
        c = c
            .input(Tensor::f32(&pc, &[2]))
            .input(Tensor::f32(&pr, &[2]))
            .input(Tensor::f32(&rc, &[2]))
            .input(Tensor::f32(&rr, &[2]))
            .grad(0, TensorMut::new(&mut g, &[2]));
        l.compute(&mut c)
    };
    match r {
        Ok(()) => Ok((loss, g)),
        Err(e) => {
            assert!(
                loss.iter().chain(&g).all(|x| x.is_nan()),
                "{}: written on error",
                l.id()
            );
            Err(e)
        }
    }
}

#[test]
fn dpo_exo_pair_and_label_smoothing_in_either_order() {
    let ctx = Context::cpu();
    let mut a = ctx.loss("dpo").unwrap();
    a.set("loss_type", lt("exo_pair")).unwrap();
    a.set_f64("label_smoothing", 0.1).unwrap();
    let mut b = ctx.loss("dpo").unwrap();
    b.set_f64("label_smoothing", 0.1).unwrap();
    b.set_enum("loss_type", "exo_pair").unwrap();
    assert_eq!(a.params().values(), b.params().values());
    a.check().unwrap();
    let (la, ga) = run_pairs(&a).unwrap();
    let (lb, gb) = run_pairs(&b).unwrap();
    assert_eq!((la, ga), (lb, gb));
    assert_eq!(a.get_enum("loss_type").unwrap().as_str(), "exo_pair");
}

#[test]
fn dpa_semantic_core_and_cond_equal_in_either_order() {
    let ctx = Context::cpu();
    for order in [["core", "cond"], ["cond", "core"]] {
        let mut l = ctx.loss("dpa_semantic").unwrap();
        for n in order {
            l.set_i64(n, 8).unwrap();
        }
        l.check().unwrap();
        assert_eq!(l.get_i64("core").unwrap(), 8);
        assert_eq!(l.get_i64("cond").unwrap(), 8);
        let case = Case::random(&l, &BTreeMap::new(), 1, true);
        case.run(&l, Reduction::Mean, true, None).unwrap();
    }
}

/// A refused combination: `Loss::check` and `Loss::compute` give the same `InvalidParam`
/// naming both parameters, nothing is written, and a later set that repairs it is accepted.
fn assert_refused_then_repaired(ctx: &Context, backend: &str) {
    let mut l = ctx.loss("dpo").unwrap();
    l.set_enum("loss_type", "exo_pair").unwrap();
    let e = l.check().unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidParam, "{backend}: {e}");
    assert!(
        e.msg.contains("loss_type") && e.msg.contains("label_smoothing"),
        "{backend}: {}",
        e.msg
    );
    let e2 = run_pairs(&l).unwrap_err();
    assert_eq!((e2.kind, &e2.msg), (e.kind, &e.msg), "{backend}");
    // A clone is checked on its own; the repair clears the refusal.
    let mut fixed = l.clone();
    fixed.set_f64("label_smoothing", 0.2).unwrap();
    fixed.check().unwrap();
    run_pairs(&fixed).unwrap();
    assert!(
        l.check().is_err(),
        "{backend}: the clone's set leaked into the original"
    );
    // A successful check is forgotten by the next set.
    fixed.set_f64("label_smoothing", 0.0).unwrap();
    assert_eq!(fixed.check().unwrap_err().msg, e.msg, "{backend}");
}

#[test]
fn a_bad_combination_is_refused_at_compute_on_the_cpu() {
    assert_refused_then_repaired(&Context::cpu(), "cpu");
    // The other combination checks name their parameters too.
    let ctx = Context::cpu();
    for (id, sets, names) in [
        (
            "dpa_semantic",
            vec![("core", ParamValue::I64(1)), ("cond", ParamValue::I64(8))],
            ["core", "cond"],
        ),
        (
            "inpo",
            vec![("tau", ParamValue::F64(0.5)), ("eta", ParamValue::F64(2.5))],
            ["eta", "tau"],
        ),
        (
            "steer",
            vec![("weight_max", ParamValue::F64(0.5))],
            ["weight_min", "weight_max"],
        ),
        (
            "categorical_value",
            vec![("v_max", ParamValue::F64(-20.0))],
            ["v_min", "v_max"],
        ),
    ] {
        let mut l = ctx.loss(id).unwrap();
        for (n, v) in &sets {
            l.set(n, *v).unwrap();
        }
        let e = l.check().unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParam, "{id}: {e}");
        for n in names {
            assert!(e.msg.contains(n), "{id}: '{}' does not name {n}", e.msg);
        }
        let case = Case::random(&l, &BTreeMap::new(), 1, true);
        let e2 = case.run(&l, Reduction::Mean, true, None).unwrap_err();
        assert_eq!(e2.msg, e.msg, "{id}");
    }
}

#[test]
fn a_bad_combination_is_refused_at_compute_on_the_gpu() {
    if !backend_available(BackendKind::Wgpu) {
        assert!(
            std::env::var("LOSSKIT_REQUIRE_GPU").as_deref() != Ok("1"),
            "no wgpu adapter"
        );
        println!("skipped: no wgpu adapter");
        return;
    }
    let ctx = Context::new(BackendKind::Wgpu).unwrap();
    assert_refused_then_repaired(&ctx, "wgpu");
}

fn c_msg() -> String {
    let p = lk_last_error_message();
    assert!(!p.is_null(), "no message");
    // SAFETY: non-NULL, NUL-terminated, valid until the next call on this thread.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

struct CLoss {
    ctx: *mut lk_context,
    loss: *mut lk_loss,
}

impl CLoss {
    fn new(id: &str) -> Self {
        let mut ctx = ptr::null_mut();
        let mut loss = ptr::null_mut();
        let id = CString::new(id).unwrap();
        // SAFETY: valid out-pointers and C strings.
        unsafe {
            assert_eq!(lk_context_create(1, &mut ctx), lk_status::LK_OK);
            assert_eq!(
                lk_loss_create(ctx, id.as_ptr(), &mut loss),
                lk_status::LK_OK
            );
        }
        CLoss { ctx, loss }
    }
}

impl Drop for CLoss {
    fn drop(&mut self) {
        // SAFETY: created in new(), freed once.
        unsafe {
            lk_loss_free(self.loss);
            lk_context_free(self.ctx);
        }
    }
}

#[test]
fn lk_loss_check_gives_what_compute_gives() {
    let l = CLoss::new("dpo");
    let (lt_name, exo, eps) = (
        CString::new("loss_type").unwrap(),
        CString::new("exo_pair").unwrap(),
        CString::new("label_smoothing").unwrap(),
    );
    // SAFETY: a live loss and C strings.
    unsafe {
        assert_eq!(lk_loss_check(l.loss), lk_status::LK_OK);
        assert_eq!(
            lk_loss_set_enum(l.loss, lt_name.as_ptr(), exo.as_ptr()),
            lk_status::LK_OK
        );
        assert_eq!(lk_loss_check(l.loss), lk_status::LK_ERR_INVALID_PARAM);
    }
    let m = c_msg();
    assert!(
        m.contains("loss_type") && m.contains("label_smoothing"),
        "{m}"
    );
    // A compute (even with arguments it would refuse otherwise) gives the same, first.
    let out = [f32::NAN];
    let shape: [i64; 0] = [];
    let loss_out = losskit::ffi::tensor::lk_tensor {
        data: out.as_ptr() as *mut _,
        device: losskit::ffi::tensor::lk_device {
            device_type: losskit::ffi::tensor::LK_DEVICE_CPU,
            device_id: 0,
        },
        ndim: 0,
        dtype: losskit::ffi::tensor::lk_dtype {
            code: losskit::ffi::tensor::LK_DTYPE_CODE_FLOAT,
            bits: 32,
            lanes: 1,
        },
        shape: shape.as_ptr(),
        strides: ptr::null(),
        byte_offset: 0,
    };
    // SAFETY: a live loss; no inputs; a valid output view.
    let s = unsafe {
        lk_loss_compute(
            l.loss,
            ptr::null(),
            0,
            1,
            ptr::null(),
            &loss_out,
            ptr::null(),
            0,
            ptr::null(),
            0,
        )
    };
    assert_eq!(s, lk_status::LK_ERR_INVALID_PARAM);
    assert_eq!(c_msg(), m);
    assert!(out[0].is_nan(), "written on error");
    // SAFETY: as above.
    unsafe {
        assert_eq!(lk_loss_set_f64(l.loss, eps.as_ptr(), 0.1), lk_status::LK_OK);
        assert_eq!(lk_loss_check(l.loss), lk_status::LK_OK);
        assert_eq!(lk_loss_check(ptr::null()), lk_status::LK_ERR_NULL_ARG);
    }
}

#[test]
fn lk_loss_get_bool_and_get_enum() {
    let cce = CLoss::new("cut_cross_entropy");
    let dpo = CLoss::new("dpo");
    let name = |s: &str| CString::new(s).unwrap();
    let (fe, lt_name, beta, nope) = (
        name("filter_e_grad"),
        name("loss_type"),
        name("beta"),
        name("nope"),
    );
    // SAFETY: live losses, C strings, writable out-params (or NULL where refused).
    unsafe {
        let mut b = false;
        assert_eq!(
            lk_loss_get_bool(cce.loss, fe.as_ptr(), &mut b),
            lk_status::LK_OK
        );
        assert!(b);
        assert_eq!(
            lk_loss_set_bool(cce.loss, fe.as_ptr(), false),
            lk_status::LK_OK
        );
        b = true;
        assert_eq!(
            lk_loss_get_bool(cce.loss, fe.as_ptr(), &mut b),
            lk_status::LK_OK
        );
        assert!(!b);
        // Errors leave the out-param alone.
        b = true;
        assert_eq!(
            lk_loss_get_bool(dpo.loss, beta.as_ptr(), &mut b),
            lk_status::LK_ERR_INVALID_PARAM
        );
        assert!(c_msg().contains("beta"));
        assert_eq!(
            lk_loss_get_bool(dpo.loss, nope.as_ptr(), &mut b),
            lk_status::LK_ERR_UNKNOWN_PARAM
        );
        assert!(b);
        assert_eq!(
            lk_loss_get_bool(ptr::null(), fe.as_ptr(), &mut b),
            lk_status::LK_ERR_NULL_ARG
        );
        assert_eq!(
            lk_loss_get_bool(cce.loss, ptr::null(), &mut b),
            lk_status::LK_ERR_NULL_ARG
        );
        assert_eq!(
            lk_loss_get_bool(cce.loss, fe.as_ptr(), ptr::null_mut()),
            lk_status::LK_ERR_NULL_ARG
        );

        let mut s: *const c_char = ptr::null();
        assert_eq!(
            lk_loss_get_enum(dpo.loss, lt_name.as_ptr(), &mut s),
            lk_status::LK_OK
        );
        assert_eq!(CStr::from_ptr(s).to_str().unwrap(), "sigmoid");
        let hinge = name("hinge");
        assert_eq!(
            lk_loss_set_enum(dpo.loss, lt_name.as_ptr(), hinge.as_ptr()),
            lk_status::LK_OK
        );
        assert_eq!(
            lk_loss_get_enum(dpo.loss, lt_name.as_ptr(), &mut s),
            lk_status::LK_OK
        );
        assert_eq!(CStr::from_ptr(s).to_str().unwrap(), "hinge");
        // The string is the registry's, the one introspection hands out.
        let def = losskit::registry::builtin("dpo").unwrap();
        let k = def
            .spec
            .params
            .iter()
            .position(|p| p.name.as_str() == "loss_type")
            .unwrap();
        let id = name("dpo");
        let choice = match &def.spec.params[k].kind {
            ParamKind::Enum(c) => c.iter().position(|t| t.as_str() == "hinge").unwrap(),
            _ => unreachable!(),
        };
        let intro = losskit::ffi::introspect::lk_loss_param_choice(dpo.ctx, id.as_ptr(), k, choice);
        assert_eq!(s, intro);
        // Errors leave the out-param alone.
        let before = s;
        assert_eq!(
            lk_loss_get_enum(dpo.loss, beta.as_ptr(), &mut s),
            lk_status::LK_ERR_INVALID_PARAM
        );
        assert_eq!(
            lk_loss_get_enum(dpo.loss, nope.as_ptr(), &mut s),
            lk_status::LK_ERR_UNKNOWN_PARAM
        );
        assert_eq!(s, before);
        assert_eq!(
            lk_loss_get_enum(dpo.loss, lt_name.as_ptr(), ptr::null_mut()),
            lk_status::LK_ERR_NULL_ARG
        );
        // The string outlives the loss (it belongs to the registry entry).
        drop(dpo);
        assert_eq!(CStr::from_ptr(before).to_str().unwrap(), "hinge");
    }
}

fn panic_text(f: impl FnOnce()) -> String {
    let p = catch_unwind(AssertUnwindSafe(f)).expect_err("must panic");
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn an_unknown_parameter_name_or_type_panics_in_every_profile() {
    let l = Context::cpu().loss("dpo").unwrap();
    let p = l.params();
    assert_eq!(p.f64("beta"), 0.1);
    let m = panic_text(|| {
        p.f64("betta");
    });
    assert!(m.contains("'betta'") && m.contains("beta"), "{m}");
    let m = panic_text(|| {
        p.i64("beta");
    });
    assert!(m.contains("'beta'") && m.contains("f64"), "{m}");
    for m in [
        panic_text(|| {
            p.bool("loss_type");
        }),
        panic_text(|| {
            p.choice("beta");
        }),
        panic_text(|| {
            p.choice_index("nope");
        }),
    ] {
        assert!(m.contains("losskit internal error"), "{m}");
    }
    assert_eq!(p.choice("loss_type"), "sigmoid");
    // The Rust getters are the checked path for callers: errors, not panics.
    assert_eq!(
        l.get_f64("betta").unwrap_err().kind,
        ErrorKind::UnknownParam
    );
    assert_eq!(
        l.get_bool("beta").unwrap_err().kind,
        ErrorKind::InvalidParam
    );
}

#[test]
fn an_unknown_shape_letter_panics_and_an_absent_one_has_no_size() {
    // dpo: [B] log-probs of the policy (then optional references, lengths, weights).
    let l = Context::cpu().loss("dpo").unwrap();
    let spec = &l.def().spec;
    let x = [-1.0f32, -2.0, -3.0];
    let mut out = [0.0f32; 3];
    let mut c = Compute::new(Reduction::None, &mut out)
        .input(Tensor::f32(&x, &[3]))
        .input(Tensor::f32(&x, &[3]));
    c.validate(spec).unwrap();
    assert_eq!(c.dim(spec.rows.as_str()), 3);
    let m = panic_text(|| {
        c.dim("Q");
    });
    assert!(
        m.contains("'Q'") && m.contains("losskit internal error"),
        "{m}"
    );
    // Before validation no letter is known.
    let mut out2 = [0.0f32];
    let fresh = Compute::new(Reduction::Mean, &mut out2);
    let m = panic_text(|| {
        fresh.dim("B");
    });
    assert!(m.contains("not validated"), "{m}");

    // A letter of the spec that only an absent optional input has: no size, dim 0.
    let ctx = Context::cpu();
    let mut found = 0;
    for def in ctx.losses() {
        let spec = &def.spec;
        let required: Vec<&str> = spec
            .inputs
            .iter()
            .filter(|i| !i.optional)
            .flat_map(|i| i.dims())
            .collect();
        let Some(only_optional) = spec
            .inputs
            .iter()
            .filter(|i| i.optional)
            .flat_map(|i| i.dims())
            .find(|d| d.parse::<usize>().is_err() && !required.contains(d))
        else {
            continue;
        };
        let l = ctx.loss(spec.id.as_str()).unwrap();
        let case = Case::random(&l, &BTreeMap::new(), 1, false);
        if case
            .inputs
            .iter()
            .zip(&spec.inputs)
            .any(|(t, i)| i.optional && t.is_some())
        {
            continue; // the loss needs its optional inputs in the generic cases
        }
        let mut lossv = vec![0.0f32; 1];
        let mut c = Compute::new(Reduction::Mean, &mut lossv);
        for t in &case.inputs {
            c.inputs.push(t.as_ref().map(|t| t.view()));
        }
        c.validate(spec).unwrap();
        assert_eq!(c.bound_dim(only_optional), None, "{}", spec.id);
        assert_eq!(c.dim(only_optional), 0, "{}", spec.id);
        found += 1;
    }
    println!("{found} losses with a letter only optional inputs have");
}
