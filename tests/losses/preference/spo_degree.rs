//! spo_degree: goldens, finite differences, two variants reduce to DPO (both objectives), the
//! degree order is rewarded, bad input.

use losskit::ParamValue::F64;
use losskit::{Compute, ErrorKind, Loss, Reduction, Tensor};

use super::{choice, close, golden, gradcheck_all, rows_of, set_err, with};

const ID: &str = "spo_degree";

#[test]
fn golden_values() {
    golden(ID);
}

#[test]
fn gradcheck() {
    gradcheck_all(ID, &[("N", 5), ("K", 4)]);
}

fn run(l: &Loss, k: usize, inputs: &[Option<&[f32]>]) -> losskit::Result<Vec<f32>> {
    let n = inputs[0].unwrap().len() / k;
    let mut out = vec![0.0f32; n];
    {
        let mut c = Compute::new(Reduction::None, &mut out);
        for t in inputs {
            c = match t {
                Some(d) => c.input(Tensor::f32(d, &[n, k])),
                None => c.absent(),
            };
        }
        l.compute(&mut c)?;
    }
    Ok(out)
}

#[test]
fn two_variants_is_dpo_for_both_objectives() {
    let lp = [-12.0f32, -13.5, -3.0, -2.0, -20.0, -26.0];
    let rf = [-11.0f32, -12.0, -4.0, -2.5, -21.0, -22.0];
    let beta = 0.3;
    let dpo = rows_of(
        &with("dpo", &[("beta", F64(beta))]),
        &[
            ("policy_chosen_logps", &[lp[0], lp[2], lp[4]]),
            ("policy_rejected_logps", &[lp[1], lp[3], lp[5]]),
            ("ref_chosen_logps", &[rf[0], rf[2], rf[4]]),
            ("ref_rejected_logps", &[rf[1], rf[3], rf[5]]),
        ],
    )
    .unwrap();
    for obj in ["ce", "plackett_luce"] {
        let l = with(
            ID,
            &[
                ("beta", F64(beta)),
                ("objective", choice(ID, "objective", obj)),
            ],
        );
        close(&run(&l, 2, &[Some(&lp), Some(&rf)]).unwrap(), &dpo, 1e-6);
    }
}

#[test]
fn the_degree_order_is_rewarded() {
    let ordered = [-1.0f32, -2.0, -3.0, -4.0];
    let reversed = [-4.0f32, -3.0, -2.0, -1.0];
    for obj in ["ce", "plackett_luce"] {
        let l = with(
            ID,
            &[
                ("beta", F64(1.0)),
                ("objective", choice(ID, "objective", obj)),
            ],
        );
        let a = run(&l, 4, &[Some(&ordered)]).unwrap()[0];
        let b = run(&l, 4, &[Some(&reversed)]).unwrap()[0];
        assert!(a < b, "{obj}: {a} !< {b}");
    }
    // The weight scales the loss linearly.
    let l1 = with(ID, &[("beta", F64(1.0))]);
    let l2 = with(ID, &[("beta", F64(1.0)), ("weight", F64(2.5))]);
    let a = run(&l1, 4, &[Some(&ordered)]).unwrap()[0];
    let b = run(&l2, 4, &[Some(&ordered)]).unwrap()[0];
    assert!((b - 2.5 * a).abs() < 1e-6);
}

#[test]
fn bad_input_is_rejected() {
    assert_eq!(set_err(ID, &[], "beta", F64(0.0)), ErrorKind::InvalidParam);
    assert_eq!(
        set_err(ID, &[], "weight", F64(-1.0)),
        ErrorKind::InvalidParam
    );
    let l = with(ID, &[]);
    let e = run(&l, 1, &[Some(&[-1.0, -2.0])]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    let avg = with(ID, &[("score", choice(ID, "score", "avg"))]);
    let e = run(&avg, 2, &[Some(&[-1.0, -2.0]), None, Some(&[3.0, -1.0])]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
}
