//! aot: goldens, finite differences, one pair is conservative DPO, the loss depends only on
//! the two empirical distributions (invariant to permutations; unpaired: to re-pairing),
//! `none` refused, bad parameters.

use losskit::ParamValue::F64;
use losskit::{Compute, ErrorKind, Loss, Reduction, Tensor, TensorMut};

use super::{choice, close, golden, gradcheck_all, rows_of, set_err, with};

const ID: &str = "aot";

#[test]
fn golden_values() {
    golden(ID);
}

#[test]
fn gradcheck() {
    gradcheck_all(ID, &[("B", 6)]);
}

/// The summed loss and the gradients of pc and pr.
fn run(l: &Loss, red: Reduction, x: [&[f32]; 4]) -> losskit::Result<(f32, Vec<f32>, Vec<f32>)> {
    let b = x[0].len();
    let mut out = vec![0.0f32; 1];
    let (mut gc, mut gr) = (vec![0.0f32; b], vec![0.0f32; b]);
    {
        let mut c = Compute::new(red, &mut out);
        for t in x {
            c = c.input(Tensor::f32(t, &[b]));
        }
        c = c
            .grad(0, TensorMut::new(&mut gc, &[b]))
            .grad(1, TensorMut::new(&mut gr, &[b]));
        l.compute(&mut c)?;
    }
    Ok((out[0], gc, gr))
}

const PC: [f32; 5] = [-12.0, -3.0, -19.7, -7.5, -9.0];
const PR: [f32; 5] = [-9.0, -14.0, -18.0, -7.0, -15.3];
const RC: [f32; 5] = [-10.0, -4.0, -21.0, -6.0, -8.0];
const RR: [f32; 5] = [-8.0, -12.0, -17.5, -9.0, -13.0];
// No ties among pc − pr, rc − rr, pc − rc, pr − rr (a tie makes the subgradient depend on
// the order of the rows).

#[test]
fn one_pair_is_conservative_dpo() {
    let (beta, eps) = (0.3, 0.15);
    for variant in ["paired", "unpaired"] {
        let l = with(
            ID,
            &[
                ("beta", F64(beta)),
                ("label_smoothing", F64(eps)),
                ("variant", choice(ID, "variant", variant)),
            ],
        );
        let (v, _, _) = run(&l, Reduction::Sum, [&PC[..1], &PR[..1], &RC[..1], &RR[..1]]).unwrap();
        let dpo = rows_of(
            &with("dpo", &[("beta", F64(beta)), ("label_smoothing", F64(eps))]),
            &[
                ("policy_chosen_logps", &PC[..1]),
                ("policy_rejected_logps", &PR[..1]),
                ("ref_chosen_logps", &RC[..1]),
                ("ref_rejected_logps", &RR[..1]),
            ],
        )
        .unwrap();
        close(&[v], &dpo, 1e-6);
    }
}

fn permute(x: &[f32], p: &[usize]) -> Vec<f32> {
    p.iter().map(|&i| x[i]).collect()
}

#[test]
fn only_the_distributions_matter() {
    let perm = [3usize, 0, 4, 1, 2];
    let other = [1usize, 4, 0, 2, 3];
    for variant in ["paired", "unpaired"] {
        let l = with(
            ID,
            &[
                ("beta", F64(0.4)),
                ("variant", choice(ID, "variant", variant)),
            ],
        );
        let (v, gc, gr) = run(&l, Reduction::Mean, [&PC, &PR, &RC, &RR]).unwrap();
        // Permuting the pairs permutes the gradients and keeps the loss.
        let (pc, pr, rc, rr) = (
            permute(&PC, &perm),
            permute(&PR, &perm),
            permute(&RC, &perm),
            permute(&RR, &perm),
        );
        let (v2, gc2, gr2) = run(&l, Reduction::Mean, [&pc, &pr, &rc, &rr]).unwrap();
        assert!((v - v2).abs() < 1e-6);
        close(&gc2, &permute(&gc, &perm), 1e-6);
        close(&gr2, &permute(&gr, &perm), 1e-6);
        // Unpaired: the rejected responses may be re-paired with other prompts.
        if variant == "unpaired" {
            let (pr3, rr3) = (permute(&PR, &other), permute(&RR, &other));
            let (v3, _, _) = run(&l, Reduction::Mean, [&PC, &pr3, &RC, &rr3]).unwrap();
            assert!((v - v3).abs() < 1e-6);
        }
    }
}

#[test]
fn bad_input_is_rejected() {
    assert_eq!(
        set_err(ID, &[], "label_smoothing", F64(0.5)),
        ErrorKind::InvalidParam
    );
    assert_eq!(set_err(ID, &[], "beta", F64(0.0)), ErrorKind::InvalidParam);
    let e = rows_of(
        &with(ID, &[]),
        &[
            ("policy_chosen_logps", &PC),
            ("policy_rejected_logps", &PR),
            ("ref_chosen_logps", &RC),
            ("ref_rejected_logps", &RR),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
}
