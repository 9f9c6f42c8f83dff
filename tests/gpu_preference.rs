//! GPU (wgpu) tests of the preference family's kernels beyond the generic parity suite of
//! `tests/gpu.rs`: every `dpo` loss type at extreme margins (where naive `log(1 + e^x)` or
//! `e^x / (1 + e^x)` overflow in f32), `orpo` at average log-probs near 0, soft targets,
//! padding and ignored rows of `yojo_nway` (its `mean` denominator), long Plackett-Luce rows
//! of `spo_degree`, `kto` with a KL reference point, and the checks that the GPU path must
//! make exactly like the CPU path (same error kind and message, nothing written), from host
//! and from device buffers.
//!
//! Without a usable adapter every test passes after printing "skipped", unless
//! `LOSSKIT_REQUIRE_GPU=1`. Tolerance as in `tests/gpu.rs`: `|gpu - cpu| <= 2e-5 + 2e-4 |cpu|`.

#![cfg(feature = "wgpu")]

use losskit::{
    BackendKind, Compute, Context, DType, ErrorKind, Loss, ParamValue, Reduction, Tensor, TensorMut,
};

#[path = "common/gpu.rs"]
mod gpu_common;
use gpu_common::{close, gpu_ctx};

/// One input of a call.
#[derive(Clone)]
enum In {
    F(Vec<f32>, Vec<usize>),
    I(Vec<i64>, Vec<usize>),
    Absent,
}

fn f(v: &[f32]) -> In {
    In::F(v.to_vec(), vec![v.len()])
}

fn f2(v: &[f32], rows: usize, cols: usize) -> In {
    assert_eq!(v.len(), rows * cols);
    In::F(v.to_vec(), vec![rows, cols])
}

fn i(v: &[i64]) -> In {
    In::I(v.to_vec(), vec![v.len()])
}

/// The loss and the gradient of every present differentiable input.
type Out = (Vec<f32>, Vec<Option<Vec<f32>>>);

fn run(l: &Loss, ins: &[In], red: Reduction, go: Option<&[f32]>) -> losskit::Result<Out> {
    let spec = &l.def().spec;
    let rows = match &ins[0] {
        In::F(_, s) | In::I(_, s) => s[0],
        In::Absent => 0,
    };
    let mut loss = vec![0f32; if red == Reduction::None { rows } else { 1 }];
    let mut grads: Vec<Option<Vec<f32>>> = ins
        .iter()
        .zip(&spec.inputs)
        .map(|(x, s)| match x {
            In::F(v, _) if s.differentiable => Some(vec![f32::NAN; v.len()]),
            _ => None,
        })
        .collect();
    {
        let mut cc = Compute::new(red, &mut loss);
        for x in ins {
            cc = match x {
                In::F(v, s) => cc.input(Tensor::f32(v, s)),
                In::I(v, s) => cc.input(Tensor::i64(v, s)),
                In::Absent => cc.absent(),
            };
        }
        for (k, g) in grads.iter_mut().enumerate() {
            if let (Some(g), In::F(_, s)) = (g, &ins[k]) {
                cc = cc.grad(k, TensorMut::new(g, s));
            }
        }
        cc.grad_output = go;
        l.compute(&mut cc)?;
    }
    Ok((loss, grads))
}

fn loss_pair(g: &Context, id: &str, params: &[(&str, ParamValue)]) -> (Loss, Loss) {
    let mut lg = g.loss(id).unwrap();
    let mut lc = Context::cpu().loss(id).unwrap();
    for (n, v) in params {
        lg.set(n, *v).unwrap();
        lc.set(n, *v).unwrap();
    }
    (lg, lc)
}

/// GPU against CPU for every reduction, with and without an upstream gradient.
fn parity(what: &str, lg: &Loss, lc: &Loss, ins: &[In]) {
    let rows = match &ins[0] {
        In::F(_, s) | In::I(_, s) => s[0],
        In::Absent => 0,
    };
    let go_rows: Vec<f32> = (0..rows).map(|k| 0.3 + 0.25 * (k % 5) as f32).collect();
    for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
        let go_one = [0.7f32];
        for go in [
            None,
            Some(if red == Reduction::None {
                &go_rows[..]
            } else {
                &go_one[..]
            }),
        ] {
            let w = format!("{what} {} go {}", red.name(), go.is_some());
            let (lgv, gg) = run(lg, ins, red, go).unwrap_or_else(|e| panic!("{w}: GPU: {e}"));
            let (lcv, gc) = run(lc, ins, red, go).unwrap_or_else(|e| panic!("{w}: CPU: {e}"));
            close(&format!("{w}: loss"), &lgv, &lcv);
            for (k, (a, b)) in gg.iter().zip(&gc).enumerate() {
                if let (Some(a), Some(b)) = (a, b) {
                    close(&format!("{w}: grad {k}"), a, b);
                }
            }
        }
    }
}

/// The GPU path refuses `ins` exactly as the CPU path does, and writes no gradient.
fn same_error(what: &str, lg: &Loss, lc: &Loss, ins: &[In], kind: ErrorKind, needle: &str) {
    let ec = run(lc, ins, Reduction::Mean, None).expect_err(what);
    let eg = run(lg, ins, Reduction::Mean, None).expect_err(what);
    assert_eq!(ec.kind, kind, "{what}: CPU: {}", ec.msg);
    assert_eq!(eg.kind, ec.kind, "{what}: GPU {} vs CPU {}", eg.msg, ec.msg);
    assert_eq!(eg.msg, ec.msg, "{what}");
    assert!(ec.msg.contains(needle), "{what}: {}", ec.msg);
}

/// Policy chosen / rejected and reference chosen / rejected log-probs of pairs whose DPO
/// margin `lr_w - lr_l` runs from -300 to 300 (with beta 0.5: |x| up to 150, where a naive
/// f32 `log(1 + e^x)` or `e^x / (1 + e^x)` overflows).
fn extreme_raw() -> [Vec<f32>; 4] {
    let margins = [
        -300.0f32, -100.0, -60.0, -20.0, -2.0, -1e-3, 0.0, 1e-3, 2.0, 20.0, 60.0, 100.0, 300.0,
    ];
    let rc: Vec<f32> = margins.iter().map(|_| -120.0).collect();
    let rr: Vec<f32> = margins.iter().map(|_| -200.0).collect();
    let pc: Vec<f32> = margins.iter().map(|m| -120.0 + m / 2.0).collect();
    let pr: Vec<f32> = margins.iter().map(|m| -200.0 - m / 2.0).collect();
    [pc, pr, rc, rr]
}

fn extreme_pairs() -> [In; 4] {
    extreme_raw().map(|v| f(&v))
}

#[test]
fn dpo_every_loss_type_matches_at_extreme_margins() {
    use ParamValue::{Enum, F64};
    let Some(g) = gpu_ctx() else { return };
    let [pc, pr, rc, rr] = extreme_pairs();
    let b = 13;
    let lens: Vec<f32> = (0..b).map(|k| (k * 7 % 40) as f32).collect();
    let lens_r: Vec<f32> = (0..b).map(|k| (k * 13 % 30) as f32).collect();
    let weight: Vec<f32> = (0..b).map(|k| 0.5 + (k % 3) as f32).collect();
    let types = [
        "sigmoid",
        "hinge",
        "ipo",
        "exo_pair",
        "nca_pair",
        "robust",
        "bco_pair",
        "sppo_hard",
        "apo_zero",
        "apo_down",
        "discopop",
        "sigmoid_norm",
    ];
    for (k, name) in types.iter().enumerate() {
        let eps = match *name {
            "exo_pair" => 0.1,
            "robust" | "sigmoid" => 0.2,
            _ => 0.0,
        };
        for tau in [0.05, 0.5, 2.0] {
            if tau != 0.05 && *name != "discopop" {
                continue;
            }
            let (lg, lc) = loss_pair(
                &g,
                "dpo",
                &[
                    ("label_smoothing", F64(eps)),
                    ("loss_type", Enum(k)),
                    ("beta", F64(0.5)),
                    ("discopop_tau", F64(tau)),
                    ("bco_delta", F64(0.3)),
                ],
            );
            let with_ref = [
                pc.clone(),
                pr.clone(),
                rc.clone(),
                rr.clone(),
                f(&lens),
                f(&lens_r),
                f(&weight),
            ];
            parity(&format!("dpo {name} tau {tau}"), &lg, &lc, &with_ref);
            // Reference-free: the margin is pc - pr, about -40 here.
            let free = [
                pc.clone(),
                pr.clone(),
                In::Absent,
                In::Absent,
                In::Absent,
                In::Absent,
                In::Absent,
            ];
            parity(
                &format!("dpo {name} tau {tau} reference-free"),
                &lg,
                &lc,
                &free,
            );
        }
    }
}

#[test]
fn dpo_f_divergences_match() {
    use ParamValue::{Enum, F64};
    let Some(g) = gpu_ctx() else { return };
    // Log-ratios within +-6 (phi = -e^{-r} reaches e^6).
    let pc = [-3.0f32, -10.0, -1.0, -7.5, -2.0, -5.0];
    let pr = [-8.0f32, -4.0, -1.0, -2.5, -9.0, -5.5];
    let rc = [-5.0f32, -4.0, -1.5, -8.0, -3.0, -4.0];
    let rr = [-3.0f32, -7.0, -1.0, -2.0, -4.0, -6.0];
    for fdiv in 0..4 {
        for lt in 0..12 {
            let eps = match lt {
                3 => 0.3,
                0 | 5 => 0.1,
                _ => 0.0,
            };
            let (lg, lc) = loss_pair(
                &g,
                "dpo",
                &[
                    ("label_smoothing", F64(eps)),
                    ("loss_type", Enum(lt)),
                    ("f_divergence", Enum(fdiv)),
                    ("f_alpha", F64(0.3)),
                    ("beta", F64(0.8)),
                ],
            );
            let ins = [
                f(&pc),
                f(&pr),
                f(&rc),
                f(&rr),
                In::Absent,
                In::Absent,
                In::Absent,
            ];
            parity(&format!("dpo type {lt} f {fdiv}"), &lg, &lc, &ins);
        }
    }
}

#[test]
fn reference_free_losses_match_near_zero_and_far_out() {
    use ParamValue::{Enum, F64};
    let Some(g) = gpu_ctx() else { return };
    // Average log-probs from -1e-6 (log(1 - e^a) ~ log|a|, gradient ~ 1/|a|) to -60.
    let lw = [1.0f32, 10.0, 3.0, 200.0, 0.0, 7.0, 1.0];
    let ll = [2.0f32, 1.0, 5.0, 100.0, 1.0, 0.5, 40.0];
    let aw = [-1e-6f32, -0.3, -2.0, -1e-3, -60.0, -0.69, -5.0];
    let al = [-0.5f32, -1e-5, -0.01, -3.0, -0.1, -0.7, -1e-4];
    let pc: Vec<f32> = aw.iter().zip(&lw).map(|(a, l)| a * l.max(1.0)).collect();
    let pr: Vec<f32> = al.iter().zip(&ll).map(|(a, l)| a * l.max(1.0)).collect();
    let ins = [f(&pc), f(&pr), f(&lw), f(&ll)];
    for lam in [0.1, 2.0] {
        let (lg, lc) = loss_pair(&g, "orpo", &[("lam", F64(lam))]);
        parity(&format!("orpo lam {lam}"), &lg, &lc, &ins);
    }
    for (alpha, kind) in [(0.0, 0), (0.0, 1), (1.2, 0), (-2.0, 0)] {
        let (lg, lc) = loss_pair(
            &g,
            "simpo",
            &[
                ("alpha", F64(alpha)),
                ("loss_type", Enum(kind)),
                ("label_smoothing", F64(0.1)),
                ("sft_weight", F64(0.4)),
            ],
        );
        parity(&format!("simpo alpha {alpha} type {kind}"), &lg, &lc, &ins);
    }
    for kind in 0..3 {
        let (lg, lc) = loss_pair(
            &g,
            "cpo",
            &[
                ("loss_type", Enum(kind)),
                ("alpha", F64(0.05)),
                ("beta", F64(2.0)),
            ],
        );
        parity(&format!("cpo type {kind}"), &lg, &lc, &ins);
    }
    // The odds link of dpa_semantic on the same averages, every formula of its table.
    for (core, cond) in [(4, 6), (12, 15), (4, 15), (13, 15), (12, 14), (6, 6)] {
        let (lg, lc) = loss_pair(
            &g,
            "dpa_semantic",
            &[
                ("cond", ParamValue::I64(cond)),
                ("core", ParamValue::I64(core)),
                ("link", Enum(1)),
            ],
        );
        let dins = [f(&pc), f(&pr), In::Absent, In::Absent, f(&lw), f(&ll)];
        parity(&format!("dpa_semantic odds {core}/{cond}"), &lg, &lc, &dins);
    }
}

#[test]
fn yojo_soft_targets_padding_and_ignored_rows_match() {
    use ParamValue::F64;
    let Some(g) = gpu_ctx() else { return };
    let (n, k) = (6usize, 5usize);
    let scores: Vec<f32> = (0..n * k)
        .map(|e| ((e * 37 % 23) as f32 - 11.0) * 4.0)
        .collect();
    let mut valid = vec![1f32; n * k];
    for &(r, j) in &[(0, 4), (1, 0), (1, 1), (3, 2), (5, 4)] {
        valid[r * k + j] = 0.0;
    }
    // Hard targets with two ignored rows: mean divides by the 4 others.
    let target = [2i64, -100, 1, 0, -100, 3];
    for tau in [0.5, 3.0] {
        let (lg, lc) = loss_pair(&g, "yojo_nway", &[("temperature", F64(tau))]);
        let ins = [f2(&scores, n, k), i(&target), In::Absent, f2(&valid, n, k)];
        parity(&format!("yojo hard tau {tau}"), &lg, &lc, &ins);
        // Every row ignored: loss 0, gradient 0.
        let ins = [f2(&scores, n, k), i(&[-100; 6]), In::Absent, In::Absent];
        parity(&format!("yojo all ignored tau {tau}"), &lg, &lc, &ins);
        // Soft targets, zero on padding; row 2 has no mass at all.
        let q: Vec<f32> = (0..n * k)
            .map(|e| {
                if valid[e] == 0.0 || e / k == 2 {
                    0.0
                } else {
                    (e % 4) as f32 * 0.25
                }
            })
            .collect();
        let ins = [
            f2(&scores, n, k),
            In::Absent,
            f2(&q, n, k),
            f2(&valid, n, k),
        ];
        parity(&format!("yojo soft tau {tau}"), &lg, &lc, &ins);
    }
}

#[test]
fn spo_degree_hypo_and_kto_match_on_long_rows() {
    use ParamValue::{Enum, F64};
    let Some(g) = gpu_ctx() else { return };
    let (n, k) = (5usize, 9usize);
    let s: Vec<f32> = (0..n * k)
        .map(|e| -((e * 29 % 31) as f32) * 3.0 - 0.5)
        .collect();
    let r: Vec<f32> = (0..n * k).map(|e| -((e * 17 % 13) as f32) * 2.0).collect();
    let len: Vec<f32> = (0..n * k).map(|e| (e * 11 % 50) as f32).collect();
    for (score, obj) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let (lg, lc) = loss_pair(
            &g,
            "spo_degree",
            &[
                ("score", Enum(score)),
                ("objective", Enum(obj)),
                ("beta", F64(1.5)),
                ("weight", F64(0.6)),
            ],
        );
        let ins = [f2(&s, n, k), f2(&r, n, k), f2(&len, n, k)];
        parity(
            &format!("spo_degree score {score} obj {obj}"),
            &lg,
            &lc,
            &ins,
        );
    }
    // hypo with K = 9 online responses.
    let (lg, lc) = loss_pair(&g, "hypo", &[("beta", F64(0.3)), ("lam", F64(0.8))]);
    let pc: Vec<f32> = (0..n).map(|j| -10.0 - j as f32 * 7.0).collect();
    let pr: Vec<f32> = (0..n).map(|j| -30.0 + j as f32 * 5.0).collect();
    let ins = [f(&pc), f(&pr), f(&pr), f(&pc), f2(&s, n, k), f2(&r, n, k)];
    parity("hypo K 9", &lg, &lc, &ins);
    // kto with a KL reference point from 40 mismatched pairs (positive mean, so z0 > 0).
    let m = 40;
    let kl: Vec<f32> = (0..m).map(|j| -20.0 + (j % 7) as f32).collect();
    let klr: Vec<f32> = (0..m).map(|j| -23.0 + (j % 5) as f32 * 0.5).collect();
    let lp = [-5.0f32, -40.0, -12.0, -3.0, -70.0, -9.0];
    let rf = [-6.0f32, -10.0, -12.5, -30.0, -35.0, -9.0];
    let des = [1i64, 0, 1, 0, 1, 0];
    for lt in 0..2 {
        let (lg, lc) = loss_pair(&g, "kto", &[("loss_type", Enum(lt)), ("beta", F64(0.4))]);
        let ins = [f(&lp), f(&rf), i(&des), f(&kl), f(&klr)];
        parity(&format!("kto type {lt}"), &lg, &lc, &ins);
    }
}

#[test]
fn gpu_path_checks_like_the_cpu_path() {
    use ParamValue::{Enum, F64, I64};
    let Some(g) = gpu_ctx() else { return };
    let a = [-3.0f32, -2.0, -5.0];
    let b = [-4.0f32, -1.0, -2.0];
    let (lg, lc) = loss_pair(&g, "dpo", &[]);
    let mut ins = vec![
        f(&a),
        f(&b),
        f(&a),
        In::Absent,
        f(&[3.0, -1.0, 2.0]),
        In::Absent,
    ];
    ins.push(In::Absent);
    same_error("dpo one ref", &lg, &lc, &ins, ErrorKind::InvalidArg, "both");
    ins[3] = f(&b);
    same_error(
        "dpo negative len",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidInput,
        "chosen_len[1]",
    );

    let (lg, lc) = loss_pair(&g, "orpo", &[]);
    let ins = [f(&a), f(&[-1.0, 0.5, -2.0]), f(&[1.0; 3]), f(&[1.0; 3])];
    same_error(
        "orpo a >= 0",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidInput,
        "pair 1",
    );

    let (lg, lc) = loss_pair(&g, "kto", &[]);
    let ins = [f(&a), f(&b), i(&[1, 2, 0]), In::Absent, In::Absent];
    same_error(
        "kto label",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidInput,
        "desirable[1]",
    );
    let ins = [f(&a), f(&b), i(&[1, 0, 0]), f(&a), In::Absent];
    same_error(
        "kto one kl",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidArg,
        "kl_logps",
    );

    let (lg, lc) = loss_pair(&g, "mapl", &[]);
    let ins = [f(&a), f(&b), In::Absent, In::Absent, i(&[0, 1, 3])];
    same_error(
        "mapl level",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidInput,
        "level[2]",
    );
    let (lg, lc) = loss_pair(&g, "mapl", &[("mode", Enum(1))]);
    let ins = [f(&a), f(&b), f(&a), f(&b), In::Absent];
    same_error(
        "mapl rm refs",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidParam,
        "rm",
    );

    let (lg, lc) = loss_pair(&g, "osp_spce", &[]);
    let ins = [f(&a), f(&b), f(&a), f(&b), f(&[0.5, 1.5, 0.0])];
    same_error(
        "osp strength",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidInput,
        "strength[1]",
    );

    let (lg, lc) = loss_pair(&g, "seppo", &[]);
    let ins = [
        f(&[0.1, 0.2, 0.3]),
        f(&[0.1; 3]),
        f(&[0.2, -0.1, 0.1]),
        f(&[0.1; 3]),
    ];
    same_error(
        "seppo mse",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidInput,
        "err_sample[1]",
    );

    let (lg, lc) = loss_pair(&g, "solireward_btwt", &[("bce_weight", F64(0.5))]);
    let ins = [f(&a), f(&b), In::Absent, In::Absent];
    same_error(
        "soli bce",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidParam,
        "bce_weight",
    );

    let (lg, lc) = loss_pair(&g, "dpa_semantic", &[("link", Enum(1))]);
    let ins = [
        f(&a),
        f(&b),
        In::Absent,
        In::Absent,
        f(&[1.0; 3]),
        f(&[1.0, 1.0, -1.0]),
    ];
    same_error(
        "dpa len",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidInput,
        "rejected_len[2]",
    );
    let ins = [
        f(&a),
        f(&[-1.0, 0.0, -1.0]),
        In::Absent,
        In::Absent,
        In::Absent,
        In::Absent,
    ];
    same_error(
        "dpa odds",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidInput,
        "policy_rejected_logps[1]",
    );
    let (lg, lc) = loss_pair(&g, "dpa_semantic", &[("cond", I64(15)), ("core", I64(12))]);
    let ins = [f(&a), f(&b), f(&a), In::Absent, In::Absent, In::Absent];
    same_error("dpa one ref", &lg, &lc, &ins, ErrorKind::InvalidArg, "both");

    let (lg, lc) = loss_pair(&g, "hypo", &[]);
    let ins = [f(&a), f(&b), f(&a), f(&b), f2(&a, 3, 1), f2(&b, 3, 1)];
    same_error("hypo K 1", &lg, &lc, &ins, ErrorKind::InvalidInput, "K = 1");

    let (lg, lc) = loss_pair(&g, "spo_degree", &[("score", Enum(1))]);
    let ins = [
        f2(&[-1.0, -2.0, -3.0, -4.0], 2, 2),
        In::Absent,
        f2(&[1.0, -2.0, 3.0, 4.0], 2, 2),
    ];
    same_error(
        "spo len",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidInput,
        "variant_len[1]",
    );

    let (lg, lc) = loss_pair(&g, "yojo_nway", &[]);
    let sc = [0.1f32, 0.2, 0.3, 0.4];
    let ins = [
        f2(&sc, 2, 2),
        i(&[1, 0]),
        In::Absent,
        f2(&[1.0, 0.0, 0.0, 1.0], 2, 2),
    ];
    same_error(
        "yojo target on padding",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidInput,
        "target[0]",
    );
    let ins = [f2(&sc, 2, 2), i(&[1, 0]), f2(&sc, 2, 2), In::Absent];
    same_error(
        "yojo both targets",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidArg,
        "exactly one",
    );
    let ins = [f2(&sc, 2, 2), i(&[1, 2]), In::Absent, In::Absent];
    same_error(
        "yojo target range",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidTarget,
        "target[1]",
    );
    let ins = [
        f2(&sc, 2, 2),
        In::Absent,
        f2(&[0.5, -0.5, 1.0, 0.0], 2, 2),
        In::Absent,
    ];
    same_error(
        "yojo negative q",
        &lg,
        &lc,
        &ins,
        ErrorKind::InvalidInput,
        "target_probs[1]",
    );
}

#[test]
fn device_inputs_are_checked_and_computed() {
    let Some(g) = gpu_ctx() else { return };
    let (lg, lc) = loss_pair(&g, "dpo", &[("loss_type", ParamValue::Enum(2))]);
    let [pc, pr, rc, rr] = extreme_raw();
    let b = pc.len();
    let lens: Vec<f32> = (0..b).map(|k| (k * 3) as f32).collect();
    let up = |v: &[f32]| {
        let d = g.buffer((v.len() * 4) as u64).unwrap();
        d.write_f32(0, v).unwrap();
        d
    };
    let bufs = [up(&pc), up(&pr), up(&rc), up(&rr), up(&lens), up(&lens)];
    let gbuf = g.buffer((b * 4) as u64).unwrap();
    let run_dev = |loss: &mut [f32]| {
        let mut cc = Compute::new(Reduction::Sum, loss);
        for d in &bufs {
            cc = cc.input(Tensor::device(d, DType::F32, 0, &[b]));
        }
        cc = cc.absent();
        cc.grads
            .push(losskit::Grad::Device(losskit::tensor::DeviceOut::new(
                &gbuf,
                0,
                &[b],
            )));
        lg.compute(&mut cc)
    };
    let mut loss = [0f32];
    run_dev(&mut loss).unwrap();
    let host = [
        f(&pc),
        f(&pr),
        f(&rc),
        f(&rr),
        f(&lens),
        f(&lens),
        In::Absent,
    ];
    let (lcv, gc) = run(&lc, &host, Reduction::Sum, None).unwrap();
    close("device dpo ipo loss", &loss, &lcv);
    close(
        "device dpo ipo grad",
        &gbuf.read_f32(0, b).unwrap(),
        gc[0].as_ref().unwrap(),
    );
    // A negative length in device memory is refused like a host one; nothing is written.
    bufs[5].write_f32(4, &[-2.0]).unwrap();
    gbuf.write_f32(0, &vec![7.0; b]).unwrap();
    let e = run_dev(&mut loss).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput, "{}", e.msg);
    assert!(e.msg.contains("rejected_len[4]"), "{}", e.msg);
    assert_eq!(gbuf.read_f32(0, b).unwrap(), vec![7.0; b]);
}

/// Rows split over several launches (1 KiB bindings): chunk-local rows, inputs that are not
/// per-sample (`kto`'s KL pairs) bound whole to every chunk, and `yojo_nway`'s mean over
/// the rows not ignored across chunks.
#[test]
fn chunked_rows_match() {
    use ParamValue::{Enum, F64};
    let Some(g0) = gpu_ctx() else { return };
    drop(g0);
    let g = Context::new(BackendKind::Wgpu).expect("second wgpu context");
    g.gpu_device().unwrap().set_max_binding_bytes(1024);
    let wave = |n: usize, a: f32, b: f32| -> Vec<f32> {
        (0..n)
            .map(|e| a + b * (((e * 7919) % 101) as f32 / 101.0))
            .collect()
    };
    let b = 1000;
    let (lg, lc) = loss_pair(&g, "dpo", &[("loss_type", Enum(10)), ("beta", F64(0.3))]);
    let ins = [
        In::F(wave(b, -60.0, 50.0), vec![b]),
        In::F(wave(b + 3, -70.0, 60.0)[3..].to_vec(), vec![b]),
        In::F(wave(b + 5, -55.0, 40.0)[5..].to_vec(), vec![b]),
        In::F(wave(b + 9, -65.0, 30.0)[9..].to_vec(), vec![b]),
        In::F(wave(b, 0.0, 30.0), vec![b]),
        In::F(wave(b + 1, 0.0, 30.0)[1..].to_vec(), vec![b]),
        In::F(wave(b, 0.2, 2.0), vec![b]),
    ];
    parity("chunked dpo", &lg, &lc, &ins);

    let (n, k) = (300usize, 5usize);
    let (lg, lc) = loss_pair(&g, "yojo_nway", &[("temperature", F64(0.7))]);
    let target: Vec<i64> = (0..n)
        .map(|r| if r % 7 == 3 { -100 } else { (r % k) as i64 })
        .collect();
    let ins = [
        In::F(wave(n * k, -20.0, 40.0), vec![n, k]),
        In::I(target, vec![n]),
        In::Absent,
        In::Absent,
    ];
    parity("chunked yojo", &lg, &lc, &ins);

    let (n, k) = (200usize, 9usize);
    let (lg, lc) = loss_pair(&g, "hypo", &[("lam", F64(0.5))]);
    let ins = [
        In::F(wave(n, -40.0, 30.0), vec![n]),
        In::F(wave(n + 2, -40.0, 30.0)[2..].to_vec(), vec![n]),
        In::F(wave(n + 4, -40.0, 30.0)[4..].to_vec(), vec![n]),
        In::F(wave(n + 6, -40.0, 30.0)[6..].to_vec(), vec![n]),
        In::F(wave(n * k, -30.0, 20.0), vec![n, k]),
        In::F(wave(n * k + 1, -30.0, 20.0)[1..].to_vec(), vec![n, k]),
    ];
    parity("chunked hypo", &lg, &lc, &ins);
    let (lg, lc) = loss_pair(&g, "spo_degree", &[("objective", Enum(1))]);
    let ins = [
        In::F(wave(n * k, -30.0, 25.0), vec![n, k]),
        In::F(wave(n * k + 3, -30.0, 25.0)[3..].to_vec(), vec![n, k]),
        In::Absent,
    ];
    parity("chunked spo_degree", &lg, &lc, &ins);

    let n = 1000;
    let (lg, lc) = loss_pair(&g, "kto", &[("beta", F64(0.2))]);
    let des: Vec<i64> = (0..n).map(|r| (r % 3 == 0) as i64).collect();
    let ins = [
        In::F(wave(n, -40.0, 30.0), vec![n]),
        In::F(wave(n + 1, -45.0, 30.0)[1..].to_vec(), vec![n]),
        In::I(des, vec![n]),
        In::F(wave(40, -20.0, 10.0), vec![40]),
        In::F(wave(41, -25.0, 10.0)[1..].to_vec(), vec![40]),
    ];
    parity("chunked kto", &lg, &lc, &ins);
}

/// Every preference loss with a kernel, every parameter set of its registry entry, on
/// random inputs wider than the generic suite's: log-probs down to -80 (log-ratios up to
/// 80 nats, `e^{±r}` of the f-divergences near 1e35), token counts 0..400, rewards and
/// scores with a spread of about 40, with all optional inputs and with none. Where the CPU
/// path refuses the draw (a label conflict, say) the GPU path must refuse it the same way.
#[test]
fn wide_random_inputs_match() {
    use losskit::registry::Domain;
    use losskit::testing::Rng;
    let Some(g) = gpu_ctx() else { return };
    let ids = [
        "dpo",
        "orpo",
        "simpo",
        "cpo",
        "kto",
        "rpo",
        "osp_spce",
        "mapl",
        "inpo",
        "solireward_btwt",
        "dpa_semantic",
        "seppo",
        "hypo",
        "yojo_nway",
        "spo_degree",
    ];
    let (mut checked, mut refused) = (0, Vec::new());
    for (li, id) in ids.iter().enumerate() {
        let def = g.find(id).unwrap();
        assert!(def.has_gpu(), "{id} has a GPU kernel");
        let size = |l: &str| -> usize {
            if let Some((_, v)) = def.test_dims.iter().find(|(k, _)| k == l) {
                return *v;
            }
            match l {
                "K" => 6,
                "M" => 23,
                _ => l.parse().unwrap_or(97),
            }
        };
        let mut sets = vec![Vec::new()];
        sets.extend(def.test_params.iter().cloned());
        for (si, set) in sets.iter().enumerate() {
            let (mut lg, mut lc) = loss_pair(&g, id, &[]);
            for (n, v) in set {
                lg.set(n, *v).unwrap();
                lc.set(n, *v).unwrap();
            }
            for with_opt in [true, false] {
                if !with_opt && def.test_needs_optional {
                    continue;
                }
                let mut rng = Rng::new(77 + li as u64 * 31 + si as u64);
                let ins: Vec<In> = def
                    .spec
                    .inputs
                    .iter()
                    .map(|s| {
                        let omit = def.test_omit.iter().any(|o| o.as_str() == s.name.as_str());
                        if s.optional && (!with_opt || omit) {
                            return In::Absent;
                        }
                        let shape: Vec<usize> = s.shape.as_str().split(',').map(size).collect();
                        let n: usize = shape.iter().product();
                        if s.dtype == DType::I64 {
                            let v = (0..n)
                                .map(|_| match &s.domain {
                                    Domain::Class(l) => {
                                        if *id == "yojo_nway" && rng.below(8) == 0 {
                                            -100
                                        } else {
                                            rng.below(size(l.as_str()) as u64) as i64
                                        }
                                    }
                                    _ => rng.below(2) as i64,
                                })
                                .collect();
                            return In::I(v, shape);
                        }
                        let v = (0..n)
                            .map(|_| {
                                let u = rng.uniform();
                                (match s.domain {
                                    Domain::LogProb => -80.0 * u * u * u - 1e-4,
                                    Domain::Real => 40.0 * rng.normal(),
                                    Domain::Positive => 400.0 * u,
                                    Domain::NonNegative => 3.0 * u,
                                    Domain::Unit => u,
                                    Domain::Binary => rng.below(2) as f64,
                                    Domain::Class(_) => rng.below(3) as f64,
                                }) as f32
                            })
                            .collect();
                        In::F(v, shape)
                    })
                    .collect();
                let what = format!("{id} set {si} {set:?} optional {with_opt}");
                match run(&lc, &ins, Reduction::Mean, None) {
                    Ok(_) => parity(&what, &lg, &lc, &ins),
                    Err(ec) => {
                        let eg = run(&lg, &ins, Reduction::Mean, None)
                            .expect_err(&format!("{what}: GPU accepted what the CPU refused"));
                        assert_eq!((eg.kind, &eg.msg), (ec.kind, &ec.msg), "{what}");
                        refused.push(what);
                    }
                }
                checked += 1;
            }
        }
    }
    eprintln!(
        "wide random inputs: {checked} configurations, {} refused by both paths: {refused:?}",
        refused.len()
    );
    assert!(refused.len() * 4 < checked, "most draws must be computed");
}

/// An empty batch: loss 0 for mean and sum, nothing per row, on both paths.
#[test]
fn empty_batches_match() {
    let Some(g) = gpu_ctx() else { return };
    let e: [f32; 0] = [];
    let cases: [(&str, Vec<In>); 4] = [
        (
            "dpo",
            vec![
                f(&e),
                f(&e),
                In::Absent,
                In::Absent,
                In::Absent,
                In::Absent,
                In::Absent,
            ],
        ),
        (
            "kto",
            vec![f(&e), f(&e), i(&[]), f(&[-1.0, -2.0]), f(&[-1.5, -1.0])],
        ),
        (
            "yojo_nway",
            vec![In::F(vec![], vec![0, 3]), i(&[]), In::Absent, In::Absent],
        ),
        (
            "hypo",
            vec![
                f(&e),
                f(&e),
                f(&e),
                f(&e),
                In::F(vec![], vec![0, 3]),
                In::F(vec![], vec![0, 3]),
            ],
        ),
    ];
    for (id, ins) in &cases {
        let (lg, lc) = loss_pair(&g, id, &[]);
        parity(&format!("{id} empty"), &lg, &lc, ins);
        let (l, _) = run(&lg, ins, Reduction::Mean, None).unwrap();
        assert_eq!(l, [0.0], "{id}");
    }
}
