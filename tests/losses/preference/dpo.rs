//! dpo: JAX float64 goldens for every loss type and f-divergence, finite differences, paper
//! properties, bad parameters.

use losskit::ParamValue::{Enum, F64};
use losskit::{ErrorKind, Loss};

use super::{golden, gradcheck_all, loss, rows_of, set_err};

const PC: &str = "policy_chosen_logps";
const PR: &str = "policy_rejected_logps";
const RC: &str = "ref_chosen_logps";
const RR: &str = "ref_rejected_logps";

#[test]
fn golden_values() {
    golden("dpo");
}

#[test]
fn gradcheck() {
    gradcheck_all("dpo", &[("B", 5)]);
}

fn with(pairs: &[(&str, losskit::ParamValue)]) -> Loss {
    let mut l = loss("dpo");
    for (n, v) in pairs {
        l.set(n, *v).unwrap();
    }
    l
}

fn lt(name: &str) -> losskit::ParamValue {
    let l = loss("dpo");
    let i = l.params().index("loss_type").unwrap();
    match &l.params().specs()[i].kind {
        losskit::ParamKind::Enum(c) => Enum(c.iter().position(|t| t.as_str() == name).unwrap()),
        _ => unreachable!(),
    }
}

/// Per-row gradient of `pc` with reduction none.
fn grad_pc(l: &Loss, pc: &[f32], pr: &[f32]) -> Vec<f32> {
    let b = pc.len();
    let mut out = vec![0.0f32; b];
    let mut g = vec![0.0f32; b];
    let mut c = losskit::Compute::new(losskit::Reduction::None, &mut out)
        .input(losskit::Tensor::f32(pc, &[b]))
        .input(losskit::Tensor::f32(pr, &[b]))
        .grad(0, losskit::TensorMut::new(&mut g, &[b]));
    l.compute(&mut c).unwrap();
    drop(c);
    g
}

#[test]
fn beta_to_zero_gives_log2_and_half_beta_gradient() {
    // DPO: as beta -> 0, sigma(x) -> 1/2, so the loss -> ln 2 and dl/dpc -> -beta/2.
    let beta = 1e-6;
    let l = with(&[("beta", F64(beta))]);
    let (pc, pr) = ([-3.0f32, -10.0, -0.5], [-1.0f32, -12.0, -7.0]);
    let v = rows_of(&l, &[(PC, &pc), (PR, &pr)]).unwrap();
    for x in v {
        assert!((x as f64 - std::f64::consts::LN_2).abs() < 1e-5, "{x}");
    }
    for g in grad_pc(&l, &pc, &pr) {
        assert!((g as f64 / beta + 0.5).abs() < 1e-4, "{g}");
    }
}

#[test]
fn ipo_optimum_is_at_margin_one_over_two_beta() {
    for beta in [0.5f64, 0.25, 0.125] {
        let l = with(&[("loss_type", lt("ipo")), ("beta", F64(beta))]);
        let m = (1.0 / (2.0 * beta)) as f32;
        let (pc, pr) = ([-2.0f32], [-2.0f32 - m]);
        assert!(rows_of(&l, &[(PC, &pc), (PR, &pr)]).unwrap()[0].abs() < 1e-10);
        assert!(grad_pc(&l, &pc, &pr)[0].abs() < 1e-7);
        // Off the optimum the gradient pushes the margin towards it.
        assert!(grad_pc(&l, &[-1.0], &pr)[0] > 0.0);
        assert!(grad_pc(&l, &[-3.0], &pr)[0] < 0.0);
    }
}

#[test]
fn conservative_and_robust_dpo_reduce_to_dpo_at_zero_smoothing() {
    let (pc, pr, rc, rr) = (
        [-3.0f32, -1.0, -8.0],
        [-2.5f32, -6.0, -7.5],
        [-2.0f32, -2.0, -9.0],
        [-3.0f32, -5.0, -6.0],
    );
    let ins: [(&str, &[f32]); 4] = [(PC, &pc), (PR, &pr), (RC, &rc), (RR, &rr)];
    let plain = rows_of(&loss("dpo"), &ins).unwrap();
    let beta = 0.1f64;
    for (i, v) in plain.iter().enumerate() {
        let x = beta * ((pc[i] - rc[i]) as f64 - (pr[i] - rr[i]) as f64);
        let want = (1.0 + (-x).exp()).ln();
        assert!((*v as f64 - want).abs() < 1e-6);
    }
    let robust0 = rows_of(&with(&[("loss_type", lt("robust"))]), &ins).unwrap();
    assert_eq!(plain, robust0);
}

#[test]
fn robust_dpo_is_the_unbiased_flip_combination() {
    let eps = 0.2f64;
    let (pc, pr) = ([-3.0f32, -1.0, -8.0], [-2.5f32, -6.0, -7.5]);
    let robust = rows_of(
        &with(&[("loss_type", lt("robust")), ("label_smoothing", F64(eps))]),
        &[(PC, &pc), (PR, &pr)],
    )
    .unwrap();
    let fwd = rows_of(&loss("dpo"), &[(PC, &pc), (PR, &pr)]).unwrap();
    let back = rows_of(&loss("dpo"), &[(PC, &pr), (PR, &pc)]).unwrap();
    for i in 0..3 {
        let want = ((1.0 - eps) * fwd[i] as f64 - eps * back[i] as f64) / (1.0 - 2.0 * eps);
        assert!((robust[i] as f64 - want).abs() < 1e-6);
    }
}

#[test]
fn reference_free_equals_zero_references() {
    let (pc, pr) = ([-3.0f32, -1.0], [-2.5f32, -6.0]);
    let z = [0.0f32, 0.0];
    for t in ["sigmoid", "hinge", "nca_pair", "apo_zero"] {
        let l = with(&[("loss_type", lt(t))]);
        let a = rows_of(&l, &[(PC, &pc), (PR, &pr)]).unwrap();
        let b = rows_of(&l, &[(PC, &pc), (PR, &pr), (RC, &z), (RR, &z)]).unwrap();
        assert_eq!(a, b, "{t}");
    }
}

#[test]
fn hinge_has_zero_gradient_at_the_kink_and_beyond() {
    let l = with(&[("loss_type", lt("hinge")), ("beta", F64(0.5))]);
    // x = 0.5 * (pc - pr) = 1 at the kink, 2 beyond it.
    assert_eq!(grad_pc(&l, &[-1.0, -1.0], &[-3.0, -5.0]), vec![0.0, 0.0]);
    assert_eq!(grad_pc(&l, &[-1.0], &[-2.0]), vec![-0.5]);
}

#[test]
fn bad_parameters_are_rejected() {
    let p = ErrorKind::InvalidParam;
    assert_eq!(set_err("dpo", &[], "beta", F64(0.0)), p);
    assert_eq!(set_err("dpo", &[], "label_smoothing", F64(1.0)), p);
    assert_eq!(set_err("dpo", &[], "f_alpha", F64(1.0)), p);
    assert_eq!(set_err("dpo", &[], "discopop_tau", F64(0.0)), p);
    assert_eq!(set_err("dpo", &[], "loss_type", lt("exo_pair")), p);
    assert_eq!(
        set_err(
            "dpo",
            &[("loss_type", lt("robust"))],
            "label_smoothing",
            F64(0.5)
        ),
        p
    );
    assert_eq!(
        set_err(
            "dpo",
            &[("label_smoothing", F64(0.6))],
            "loss_type",
            lt("robust")
        ),
        p
    );
    // The value is kept on error, never clamped.
    let mut l = with(&[("label_smoothing", F64(0.1)), ("loss_type", lt("exo_pair"))]);
    assert!(l.set_f64("label_smoothing", 1.0).is_err());
    assert_eq!(l.params().f64("label_smoothing"), 0.1);
    // A value inside its own range that the loss type refuses: the setter takes it, the
    // check of the configuration refuses it, naming both parameters.
    l.set_f64("label_smoothing", 0.0).unwrap();
    let e = l.check().unwrap_err();
    assert_eq!(e.kind, p);
    assert!(
        e.msg.contains("loss_type") && e.msg.contains("label_smoothing"),
        "{}",
        e.msg
    );
}

#[test]
fn bad_inputs_are_rejected() {
    let l = loss("dpo");
    let (pc, pr) = ([-1.0f32], [-2.0f32]);
    let e = rows_of(&l, &[(PC, &pc), (PR, &pr), (RC, &[-1.0])]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArg);
    let e = rows_of(&l, &[(PC, &pc), (PR, &pr), ("chosen_len", &[-1.0])]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
}
