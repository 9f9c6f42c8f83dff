//! GPU (wgpu) tests of the classification kernels on the per-sample contract (see
//! `src/losses/classification/gpu.rs`), beyond the generic parity suite of `tests/gpu.rs`:
//! `aldr_kl`'s `lambda_out` auxiliary output, `ignore_index` inside the class range, device
//! buffers (inputs, gradients, in place), the same errors as the CPU path before anything
//! runs, and `reward_shaped_ntp`'s top-k set with many ties.
//!
//! Without a usable adapter every test prints "skipped: no wgpu adapter" and passes, unless
//! `LOSSKIT_REQUIRE_GPU=1`. Tolerance as in `tests/gpu.rs`: `|gpu - cpu| <= 2e-5 +
//! 2e-4·|cpu|` element by element.

#![cfg(feature = "wgpu")]

use losskit::tensor::DeviceOut;
use losskit::testing::{Case, OwnedData, Rng};
use losskit::{Compute, Context, DType, ErrorKind, Loss, ParamValue, Reduction, Tensor, TensorMut};

#[path = "common/gpu.rs"]
mod gpu_common;
use gpu_common::{close, dims, gpu_ctx};

/// The losses of this file's kernels that take integer targets with `ignore_index`.
const WITH_TARGETS: [&str; 6] = [
    "spherical_z_loss",
    "ldr_kl",
    "aldr_kl",
    "smooth_adv_comp_sum",
    "noisefit_hybrid",
    "reward_shaped_ntp",
];

/// The loss on both contexts with the same parameters.
fn pair(g: &Context, id: &str, set: &[(&str, ParamValue)]) -> (Loss, Loss) {
    let mut lg = g.loss(id).unwrap();
    let mut lc = Context::cpu().loss(id).unwrap();
    for (n, v) in set {
        lg.set(n, *v).unwrap();
        lc.set(n, *v).unwrap();
    }
    (lg, lc)
}

/// Loss, gradients of every differentiable input and `lambda_out` (when `aux`).
struct Out {
    loss: Vec<f32>,
    grads: Vec<Option<Vec<f32>>>,
    lambda_out: Vec<f32>,
}

fn run_aux(l: &Loss, case: &Case, red: Reduction, aux: bool) -> losskit::Result<Out> {
    let spec = &l.def().spec;
    let n = case.rows(spec);
    let mut loss = vec![0f32; if red == Reduction::None { n } else { 1 }];
    let mut grads: Vec<Option<Vec<f32>>> = spec
        .inputs
        .iter()
        .zip(&case.inputs)
        .map(|(is, t)| match t {
            Some(t) if is.differentiable => Some(vec![f32::NAN; t.f32().len()]),
            _ => None,
        })
        .collect();
    let mut lam = vec![f32::NAN; n];
    {
        let mut c = Compute::new(red, &mut loss);
        for t in &case.inputs {
            c.inputs.push(t.as_ref().map(|t| t.view()));
        }
        for (k, g) in grads.iter_mut().enumerate() {
            if let (Some(g), Some(t)) = (g.as_mut(), case.inputs[k].as_ref()) {
                c = c.grad(k, TensorMut::new(g, &t.shape));
            }
        }
        if aux {
            c = c.aux("lambda_out", TensorMut::new(&mut lam, &[n]));
        }
        l.compute(&mut c)?;
    }
    Ok(Out {
        loss,
        grads,
        lambda_out: lam,
    })
}

fn compare(what: &str, g: &Out, c: &Out) {
    close(&format!("{what}: loss"), &g.loss, &c.loss);
    for (k, (a, b)) in g.grads.iter().zip(&c.grads).enumerate() {
        if let (Some(a), Some(b)) = (a, b) {
            close(&format!("{what}: grad {k}"), a, b);
        }
    }
}

fn targets(case: &Case, k: usize) -> Vec<i64> {
    match &case.inputs[k].as_ref().unwrap().data {
        OwnedData::I64(v) => v.clone(),
        OwnedData::F32(_) => panic!("input {k} is not i64"),
    }
}

#[test]
fn aldr_kl_lambda_out_matches_cpu() {
    let Some(g) = gpu_ctx() else { return };
    let sets: [&[(&str, ParamValue)]; 3] = [
        &[],
        &[
            ("normalize", ParamValue::Enum(1)),
            ("lam0", ParamValue::F64(0.5)),
        ],
        &[
            ("normalize", ParamValue::Enum(0)),
            ("alpha", ParamValue::F64(1.5)),
        ],
    ];
    for (si, set) in sets.iter().enumerate() {
        let (lg, lc) = pair(&g, "aldr_kl", set);
        let lam0 = match lc.params().get("lam0") {
            Some(ParamValue::F64(v)) => v as f32,
            _ => panic!("lam0"),
        };
        for (di, d) in [
            dims(&[("N", 37), ("C", 300)]),
            dims(&[("N", 3), ("C", 9000)]),
        ]
        .iter()
        .enumerate()
        {
            for opt in [false, true] {
                let case = Case::random(&lc, d, 40 + si as u64 * 5 + di as u64, opt);
                let y = targets(&case, 1);
                if di == 0 {
                    assert!(y.contains(&-100), "the case must have ignored rows");
                }
                for red in [Reduction::None, Reduction::Mean] {
                    let what = format!("aldr_kl set {si} dims {d:?} lambda_prev {opt} {red:?}");
                    let oc = run_aux(&lc, &case, red, true).unwrap();
                    let og = run_aux(&lg, &case, red, true).unwrap();
                    compare(&what, &og, &oc);
                    close(
                        &format!("{what}: lambda_out"),
                        &og.lambda_out,
                        &oc.lambda_out,
                    );
                    // Ignored rows copy the previous temperature (lam0 without lambda_prev).
                    for (i, &t) in y.iter().enumerate() {
                        if t == -100 {
                            let want = if opt {
                                case.inputs[2].as_ref().unwrap().f32()[i]
                            } else {
                                lam0
                            };
                            assert_eq!(og.lambda_out[i], want, "{what}: row {i}");
                        }
                    }
                }
            }
        }
        // Without the auxiliary output the loss and gradient are the same.
        let case = Case::random(&lc, &dims(&[("N", 9), ("C", 17)]), 3, true);
        let a = run_aux(&lg, &case, Reduction::Mean, false).unwrap();
        let b = run_aux(&lc, &case, Reduction::Mean, true).unwrap();
        compare("aldr_kl without aux", &a, &b);
    }
}

#[test]
fn ignore_index_inside_the_class_range() {
    let Some(g) = gpu_ctx() else { return };
    for id in WITH_TARGETS {
        // ignore_index = 2, a valid class: rows with target 2 are ignored.
        let (lg, lc) = pair(&g, id, &[("ignore_index", ParamValue::I64(2))]);
        let spec = &lc.def().spec;
        let ti = spec
            .inputs
            .iter()
            .position(|i| i.name.as_str() == "target")
            .unwrap();
        let mut case = Case::random(&lc, &dims(&[("N", 40), ("C", 7)]), 11, true);
        let mut y = targets(&case, ti);
        y[0] = 3;
        y[1] = 2;
        case.inputs[ti].as_mut().unwrap().data = OwnedData::I64(y.clone());
        let ignored = y.iter().filter(|&&t| t == 2).count();
        assert!(ignored > 1 && ignored < y.len(), "{id}: {ignored} ignored");
        for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
            let what = format!("{id} ignore_index 2 {red:?}");
            let oc = run_aux(&lc, &case, red, false).unwrap();
            let og = run_aux(&lg, &case, red, false).unwrap();
            compare(&what, &og, &oc);
            let c = 7;
            for (i, &t) in y.iter().enumerate() {
                if t != 2 {
                    continue;
                }
                if red == Reduction::None {
                    assert_eq!(og.loss[i], 0.0, "{what}: row {i} loss");
                }
                for gr in og.grads.iter().flatten() {
                    assert!(
                        gr[i * c..(i + 1) * c].iter().all(|&v| v == 0.0),
                        "{what}: row {i} gradient"
                    );
                }
            }
        }
        // Every row ignored: zero loss and, for mean, no division by zero.
        let mut all = case.clone();
        all.inputs[ti].as_mut().unwrap().data = OwnedData::I64(vec![2; y.len()]);
        let og = run_aux(&lg, &all, Reduction::Mean, false).unwrap();
        let oc = run_aux(&lc, &all, Reduction::Mean, false).unwrap();
        compare(&format!("{id} all ignored"), &og, &oc);
    }
}

fn bytes_ok<T>(r: losskit::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{}", e.msg))
}

#[test]
fn device_buffers_inputs_gradients_and_in_place() {
    let Some(g) = gpu_ctx() else { return };
    let (n, c) = (13usize, 50usize);
    // ldr_kl: device logits and targets, gradient into a device buffer and in place.
    let (lg, lc) = pair(&g, "ldr_kl", &[("normalize", ParamValue::Enum(2))]);
    let case = Case::random(&lc, &dims(&[("N", n), ("C", c)]), 21, false);
    let x = case.inputs[0].as_ref().unwrap().f32().to_vec();
    let y = targets(&case, 1);
    let oc = run_aux(&lc, &case, Reduction::Mean, false).unwrap();
    let off = 16;
    let xb = bytes_ok(g.buffer(((off + n * c) * 4) as u64));
    bytes_ok(xb.write_f32(off, &x));
    let yb = bytes_ok(g.buffer((n * 8) as u64));
    bytes_ok(yb.write_i64(0, &y));
    let gb = bytes_ok(g.buffer((n * c * 4) as u64));
    let mut loss = [0f32];
    {
        let mut cc = Compute::new(Reduction::Mean, &mut loss)
            .input(Tensor::device(&xb, DType::F32, off, &[n, c]))
            .input(Tensor::device(&yb, DType::I64, 0, &[n]));
        cc.grads
            .push(losskit::Grad::Device(DeviceOut::new(&gb, 0, &[n, c])));
        lg.compute(&mut cc).unwrap();
    }
    close("ldr_kl device loss", &loss, &oc.loss);
    close(
        "ldr_kl device grad",
        &bytes_ok(gb.read_f32(0, n * c)),
        oc.grads[0].as_ref().unwrap(),
    );
    {
        let mut cc = Compute::new(Reduction::Mean, &mut loss)
            .input(Tensor::device(&xb, DType::F32, off, &[n, c]))
            .input(Tensor::device(&yb, DType::I64, 0, &[n]))
            .grad_in_place(0);
        lg.compute(&mut cc).unwrap();
    }
    close("ldr_kl in-place loss", &loss, &oc.loss);
    close(
        "ldr_kl in-place grad",
        &bytes_ok(xb.read_f32(off, n * c)),
        oc.grads[0].as_ref().unwrap(),
    );
    // A bad device target is refused like a host one, before anything is written.
    bytes_ok(xb.write_f32(off, &x));
    bytes_ok(yb.write_i64(4, &[c as i64]));
    let mut cc = Compute::new(Reduction::Mean, &mut loss)
        .input(Tensor::device(&xb, DType::F32, off, &[n, c]))
        .input(Tensor::device(&yb, DType::I64, 0, &[n]))
        .grad_in_place(0);
    let e = lg.compute(&mut cc).unwrap_err();
    drop(cc);
    assert_eq!(e.kind, ErrorKind::InvalidTarget, "{}", e.msg);
    assert!(e.msg.contains("target[4]"), "{}", e.msg);
    assert_eq!(bytes_ok(xb.read_f32(off, n * c)), x);

    // noisefit_hybrid: three device inputs, gradients to host and device.
    let (lg, lc) = pair(&g, "noisefit_hybrid", &[]);
    let case = Case::random(&lc, &dims(&[("N", n), ("C", c)]), 22, false);
    let oc = run_aux(&lc, &case, Reduction::Sum, false).unwrap();
    let bufs: Vec<_> = (0..3)
        .map(|k| {
            let b = bytes_ok(g.buffer((n * c * 4) as u64));
            bytes_ok(b.write_f32(0, case.inputs[k].as_ref().unwrap().f32()));
            b
        })
        .collect();
    let y = targets(&case, 3);
    let yb = bytes_ok(g.buffer((n * 8) as u64));
    bytes_ok(yb.write_i64(0, &y));
    let g1 = bytes_ok(g.buffer((n * c * 4) as u64));
    let mut gz = vec![0f32; n * c];
    {
        let mut cc = Compute::new(Reduction::Sum, &mut loss)
            .input(Tensor::device(&bufs[0], DType::F32, 0, &[n, c]))
            .input(Tensor::device(&bufs[1], DType::F32, 0, &[n, c]))
            .input(Tensor::device(&bufs[2], DType::F32, 0, &[n, c]))
            .input(Tensor::device(&yb, DType::I64, 0, &[n]))
            .grad(0, TensorMut::new(&mut gz, &[n, c]));
        cc.grads
            .push(losskit::Grad::Device(DeviceOut::new(&g1, 0, &[n, c])));
        lg.compute(&mut cc).unwrap();
    }
    close("noisefit device loss", &loss, &oc.loss);
    close("noisefit device grad 0", &gz, oc.grads[0].as_ref().unwrap());
    close(
        "noisefit device grad 1",
        &bytes_ok(g1.read_f32(0, n * c)),
        oc.grads[1].as_ref().unwrap(),
    );
}

/// Run `id` with `set` on both contexts over `case`; both must fail with the same error.
fn same_error(g: &Context, id: &str, set: &[(&str, ParamValue)], case: &Case, kind: ErrorKind) {
    let (lg, lc) = pair(g, id, set);
    let ec = run_aux(&lc, case, Reduction::Mean, false)
        .err()
        .unwrap_or_else(|| panic!("{id}: the CPU path accepted a bad case"));
    let eg = run_aux(&lg, case, Reduction::Mean, false)
        .err()
        .unwrap_or_else(|| panic!("{id}: the GPU path accepted a bad case"));
    assert_eq!(ec.kind, kind, "{id}: {}", ec.msg);
    assert_eq!(eg.kind, ec.kind, "{id}: {} vs {}", eg.msg, ec.msg);
    assert_eq!(eg.msg, ec.msg, "{id}");
}

fn set_f32(case: &mut Case, k: usize, at: usize, v: f32) {
    if let OwnedData::F32(d) = &mut case.inputs[k].as_mut().unwrap().data {
        d[at] = v;
    }
}

#[test]
fn bad_inputs_give_the_cpu_errors() {
    let Some(g) = gpu_ctx() else { return };
    let cpu = Context::cpu();
    let d = dims(&[("N", 6), ("C", 5)]);
    // Targets out of range.
    for id in WITH_TARGETS {
        let lc = cpu.loss(id).unwrap();
        let ti = lc
            .def()
            .spec
            .inputs
            .iter()
            .position(|i| i.name.as_str() == "target")
            .unwrap();
        let mut case = Case::random(&lc, &d, 5, true);
        let mut y = targets(&case, ti);
        y[3] = 5;
        case.inputs[ti].as_mut().unwrap().data = OwnedData::I64(y);
        same_error(&g, id, &[], &case, ErrorKind::InvalidTarget);
    }
    // dco: a positive log-probability.
    let lc = cpu.loss("dco").unwrap();
    let mut case = Case::random(&lc, &d, 5, false);
    set_f32(&mut case, 0, 2, 0.25);
    same_error(&g, "dco", &[], &case, ErrorKind::InvalidInput);
    // aldr_kl: lambda_prev <= 0, and a single class.
    let lc = cpu.loss("aldr_kl").unwrap();
    let mut case = Case::random(&lc, &d, 5, true);
    set_f32(&mut case, 2, 4, 0.0);
    same_error(&g, "aldr_kl", &[], &case, ErrorKind::InvalidInput);
    let case = Case::random(&lc, &dims(&[("N", 4), ("C", 1)]), 5, true);
    same_error(&g, "aldr_kl", &[], &case, ErrorKind::ShapeMismatch);
    // categorical_value: a non-finite target, and two-hot over one bin.
    let lc = cpu.loss("categorical_value").unwrap();
    let mut case = Case::random(&lc, &dims(&[("N", 6), ("M", 11)]), 5, false);
    set_f32(&mut case, 1, 1, f32::NAN);
    same_error(&g, "categorical_value", &[], &case, ErrorKind::InvalidInput);
    let case = Case::random(&lc, &dims(&[("N", 6), ("M", 1)]), 5, false);
    same_error(
        &g,
        "categorical_value",
        &[("kind", ParamValue::Enum(1))],
        &case,
        ErrorKind::ShapeMismatch,
    );
    // symmetric_ce: a softmax over no classes.
    let lc = cpu.loss("symmetric_ce").unwrap();
    let case = Case::random(&lc, &dims(&[("N", 3), ("C", 0)]), 5, false);
    same_error(&g, "symmetric_ce", &[], &case, ErrorKind::ShapeMismatch);

    // A device lambda_prev with a bad value is read back and refused the same way.
    let (lg, _) = pair(&g, "aldr_kl", &[]);
    let mut case = Case::random(&lc_of("aldr_kl"), &d, 6, true);
    set_f32(&mut case, 2, 1, -1.0);
    let lp = case.inputs[2].as_ref().unwrap().f32().to_vec();
    let b = bytes_ok(g.buffer((lp.len() * 4) as u64));
    bytes_ok(b.write_f32(0, &lp));
    let mut loss = [0f32];
    let mut cc = Compute::new(Reduction::Mean, &mut loss);
    cc.inputs.push(case.inputs[0].as_ref().map(|t| t.view()));
    cc.inputs.push(case.inputs[1].as_ref().map(|t| t.view()));
    cc = cc.input(Tensor::device(&b, DType::F32, 0, &[6]));
    let e = lg.compute(&mut cc).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput, "{}", e.msg);
    assert!(e.msg.contains("lambda_prev[1]"), "{}", e.msg);
}

fn lc_of(id: &str) -> Loss {
    Context::cpu().loss(id).unwrap()
}

#[test]
fn reward_shaped_ntp_top_k_with_ties() {
    let Some(g) = gpu_ctx() else { return };
    let (n, c) = (24usize, 40usize);
    let mut rng = Rng::new(8);
    // Logits on a coarse grid: many ties, some at the k-th value.
    let x: Vec<f32> = (0..n * c)
        .map(|_| ((rng.normal() * 2.0).round() * 0.5) as f32)
        .collect();
    let y: Vec<i64> = (0..n).map(|_| rng.below(c as u64) as i64).collect();
    for k in [1i64, 2, 3, 7, 39, 40, 1000] {
        let set = [
            ("lambda_top", ParamValue::F64(0.3)),
            ("lambda_tail", ParamValue::F64(-0.05)),
            ("beta", ParamValue::F64(0.5)),
            ("top_k", ParamValue::I64(k)),
        ];
        let (lg, lc) = pair(&g, "reward_shaped_ntp", &set);
        let mut case = Case::random(&lc, &dims(&[("N", n), ("C", c)]), 1, false);
        case.inputs[0].as_mut().unwrap().data = OwnedData::F32(x.clone());
        case.inputs[1].as_mut().unwrap().data = OwnedData::I64(y.clone());
        for red in [Reduction::None, Reduction::Sum] {
            let oc = run_aux(&lc, &case, red, false).unwrap();
            let og = run_aux(&lg, &case, red, false).unwrap();
            compare(&format!("reward_shaped_ntp top_k {k} {red:?}"), &og, &oc);
        }
    }
}

#[test]
fn long_rows_on_llvmpipe_are_refused_not_wrong() {
    let Some(g) = gpu_ctx() else { return };
    let llvmpipe = g
        .device_info()
        .is_some_and(|i| i.name.to_ascii_lowercase().contains("llvmpipe"));
    // 4 passes over 16384 classes: past llvmpipe's loop budget (the results were wrong
    // there before the refusal).
    let (lg, lc) = pair(&g, "smooth_adv_comp_sum", &[]);
    let mut case = Case::random(&lc, &dims(&[("N", 1), ("C", 16384)]), 4, false);
    case.inputs[2].as_mut().unwrap().data = OwnedData::I64(vec![5]);
    let oc = run_aux(&lc, &case, Reduction::Sum, false).unwrap();
    match run_aux(&lg, &case, Reduction::Sum, false) {
        Err(e) => {
            assert!(llvmpipe, "refused on a hardware adapter: {}", e.msg);
            assert_eq!(e.kind, ErrorKind::Unsupported, "{}", e.msg);
            assert!(e.msg.contains("llvmpipe"), "{}", e.msg);
        }
        Ok(og) => {
            assert!(!llvmpipe, "llvmpipe ran a row past its loop budget");
            compare("smooth_adv_comp_sum C=16384", &og, &oc);
        }
    }
}
