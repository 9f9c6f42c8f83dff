//! mapl: goldens (levels, dpo and rm modes), finite differences, level weighting, bad input.

use losskit::ParamValue::F64;
use losskit::{Compute, ErrorKind, Reduction, Tensor};

use super::{choice, golden, gradcheck_all, rows_of, set_err, with};

#[test]
fn golden_values() {
    golden("mapl");
}

#[test]
fn gradcheck() {
    gradcheck_all("mapl", &[("B", 5)]);
}

fn run(l: &losskit::Loss, level: &[i64]) -> losskit::Result<Vec<f32>> {
    let (w, s) = ([-2.0f32, -2.0, -2.0], [-3.0f32, -3.0, -3.0]);
    let mut out = vec![0.0f32; 3];
    {
        let mut c = Compute::new(Reduction::None, &mut out)
            .input(Tensor::f32(&w, &[3]))
            .input(Tensor::f32(&s, &[3]))
            .absent()
            .absent()
            .input(Tensor::i64(level, &[3]));
        l.compute(&mut c)?;
    }
    Ok(out)
}

#[test]
fn levels_scale_the_bradley_terry_term() {
    let l = with("mapl", &[("w_intra", F64(0.5)), ("w_inter", F64(3.0))]);
    let v = run(&l, &[0, 1, 2]).unwrap();
    assert!((v[1] - 0.5 * v[0]).abs() < 1e-7 && (v[2] - 3.0 * v[0]).abs() < 1e-6);
    assert_eq!(
        run(&l, &[0, 3, 0]).unwrap_err().kind,
        ErrorKind::InvalidInput
    );
}

#[test]
fn rm_mode_is_bradley_terry_on_scores_and_refuses_references() {
    let rm = with("mapl", &[("mode", choice("mapl", "mode", "rm"))]);
    let (w, s) = ([1.5f32], [0.5f32]);
    let v = rows_of(&rm, &[("win_logps", &w), ("lose_logps", &s)]).unwrap();
    assert!((v[0] as f64 - (1.0 + (-1.0f64).exp()).ln()).abs() < 1e-6);
    let e = rows_of(
        &rm,
        &[
            ("win_logps", &w),
            ("lose_logps", &s),
            ("ref_win_logps", &w),
            ("ref_lose_logps", &s),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidParam);
    assert_eq!(
        set_err("mapl", &[], "w_intra", F64(-1.0)),
        ErrorKind::InvalidParam
    );
}
