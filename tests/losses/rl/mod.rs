//! Per-loss tests of the RL family (`grpo`, `ppo_clip`, `steer`: token-level objectives on
//! `[N, T]` log-probabilities with a 0/1 mask), with the helpers they share with the
//! preference family's tests, and the family's `loss_agg` rule checked against token counts
//! taken from the mask.

mod grpo;
mod ppo_clip;
mod steer;

use std::collections::BTreeMap;

use losskit::Reduction;
use losskit::testing::{Case, OwnedData};

pub use crate::preference::{
    choice, close, gradcheck_all, gradcheck_with, loss, run_named, set_err, with,
};

use crate::common::{LOSS_TOL, assert_close};

/// Golden values of an RL loss (`tests/golden/rl/<id>.json`).
pub fn golden(id: &str) {
    crate::golden::check(id);
}

/// `loss_agg` divides each row's masked token sum by the mode's denominator, counted here from
/// the mask: `token_mean` by `max(Σ mask, 1)/N`, `seq_mean_token_mean` by `max(Σ_t mask_i, 1)`,
/// `seq_mean_token_sum_norm` by `max_len` (0 = `T`). Each mode's per-row output times that
/// count equals the row's token sum (`seq_mean_token_sum`), for every loss of the family.
#[test]
fn loss_agg_divides_by_the_token_counts_of_the_mask() {
    let mut checked = 0;
    for id in ["grpo", "ppo_clip", "steer"] {
        let plain = with(
            id,
            &[("loss_agg", choice(id, "loss_agg", "seq_mean_token_sum"))],
        );
        let spec = plain.def().spec.clone();
        let mut case = Case::random(&plain, &BTreeMap::new(), 3, true);
        let mk = spec.input_index("mask").expect("mask input");
        let (n, t) = (case.rows(&spec), case.dims["T"]);
        // One row without any token (its denominator is clamped to 1).
        if let Some(OwnedData::F32(m)) = case.inputs[mk].as_mut().map(|x| &mut x.data) {
            m[..t].iter_mut().for_each(|v| *v = 0.0);
        }
        let mask = case.inputs[mk].as_ref().unwrap().f32().to_vec();
        let sums = case.run(&plain, Reduction::None, false, None).unwrap().loss;
        let all: f64 = mask.iter().map(|&v| v as f64).sum();
        let per_row: Vec<f64> = (0..n)
            .map(|i| mask[i * t..(i + 1) * t].iter().map(|&v| v as f64).sum())
            .collect();
        let modes: [(&str, i64, Vec<f64>); 4] = [
            ("token_mean", 0, vec![all.max(1.0) / n as f64; n]),
            (
                "seq_mean_token_mean",
                0,
                per_row.iter().map(|c| c.max(1.0)).collect(),
            ),
            ("seq_mean_token_sum_norm", 0, vec![t as f64; n]),
            ("seq_mean_token_sum_norm", 7, vec![7.0; n]),
        ];
        for (mode, max_len, den) in modes {
            let l = with(
                id,
                &[
                    ("loss_agg", choice(id, "loss_agg", mode)),
                    ("max_len", losskit::ParamValue::I64(max_len)),
                ],
            );
            let rows = case.run(&l, Reduction::None, false, None).unwrap().loss;
            let want: Vec<f64> = sums.iter().zip(&den).map(|(&s, &d)| s as f64 / d).collect();
            assert_close(
                &format!("{id} loss_agg={mode} max_len={max_len}"),
                &rows,
                &want,
                LOSS_TOL,
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}
