//! `ca_calibration`: correctness-aware calibration objective (batch-level).
//!
//! Trains a calibrator (for example a temperature) so that the max-softmax confidence of
//! each prediction matches whether that prediction is correct: squared error between
//! confidence and 0/1 correctness, class-balanced by the batch accuracy so that correct and
//! wrong predictions weigh the same in total.
//!
//! Over the contributing rows `R` (target not `ignore_index`):
//! `k_i` = first arg-max of `z_i`, `conf_i = exp(z_ik - LSE(z_i))`,
//! `c_i = [ref_pred_i = y_i]`, `acc = mean_R c_i`,
//! `w_i = 1 - acc` if `c_i = 1` else `acc` (`balance = true`), `w_i = 1` (`balance = false`,
//! or when every balanced weight is 0, i.e. all rows correct or all wrong: the official code
//! gives NaN there), and `L = sum_R w_i (conf_i - c_i)² / sum_R w_i`.
//! Gradient (`w`, `c`, `k` are piecewise constant):
//! `dL/dz_i = (2 w_i (conf_i - c_i) conf_i / sum w)·(e_{k_i} - softmax(z_i))`.
//! With no contributing rows `L = 0` with zero gradient.
//!
//! **Inputs**
//! - `logits [N, C]` f32, differentiable: the calibrator's output (e.g. `z / T`).
//! - `target [N]` i64: class in `[0, C)` or `ignore_index`.
//! - `ref_pred [N]` i64, optional: the original classifier's predicted class, which decides
//!   correctness; must be in `[0, C)` on contributing rows. Absent: the arg-max of `logits`,
//!   which is the same for any order-preserving calibrator such as temperature scaling.
//!
//! **Parameters**: `balance` (bool, true), `ignore_index` (i64, -100).
//!
//! **Batch-level**: one scalar; `mean` and `sum` both return it, `none` is refused.
//!
//! **Source**: *Optimizing Calibration by Gaining Aware of Prediction Correctness*; official
//! code liuyvchi/Correctness-aware-calibration. The spec follows the released code (squared
//! error to correctness, balanced by batch accuracy); the paper's transformed views only
//! feed the calibrator network and are not part of the loss.
//!
//! **Cost**: one row log-sum-exp pass and one gradient pass, rows in parallel.

use rayon::prelude::*;

use super::drivers::BatchOutput;
use super::{argmax, checked_targets, rows_io};
use crate::backend::cpu::{RowIo, map_rows, max_sumexp, softmax_affine};
use crate::compute::Compute;
use crate::error::Result;
use crate::params::{ParamSpec, ParamValue::Bool, Params};
use crate::registry::{InputSpec, LossDef, LossImpl, LossSpec};
use crate::tensor::Grad;
use crate::{bail, err};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "ca_calibration",
        "classification",
        "Correctness-aware calibration: accuracy-balanced squared error between max-softmax confidence and correctness",
        "Optimizing Calibration by Gaining Aware of Prediction Correctness; code: liuyvchi/Correctness-aware-calibration",
    )
    .input(
        InputSpec::f32("logits", "N,C")
            .grad()
            .doc("calibrator output (e.g. temperature-scaled logits)"),
    )
    .input(InputSpec::i64("target", "N").doc("class index in [0, C) or ignore_index"))
    .input(
        InputSpec::i64("ref_pred", "N")
            .optional()
            .doc("class predicted by the original classifier (default: arg-max of logits)"),
    )
    .param(ParamSpec::bool(
        "balance",
        true,
        "weight correct rows by 1 - accuracy and wrong rows by accuracy",
    ))
    .param(ParamSpec::ignore_index())
    .batch_level();
    LossDef::new(spec, CaCalibration).test_params(&[("balance", Bool(false))])
}

/// The implementation.
pub struct CaCalibration;

impl LossImpl for CaCalibration {
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let id = "ca_calibration";
        let ig = p.i64("ignore_index");
        let n = c.dim("N");
        let classes = c.dim("C");
        let out = BatchOutput::new(c);
        let t = c
            .get(1)
            .ok_or_else(|| err!(Internal, "{id}: target missing"))?;
        let target = checked_targets(id, t, classes, ig)?;
        let refp: Option<Vec<i64>> = c.get(2).map(|t| t.to_i64_vec());
        if let Some(r) = &refp {
            for (i, (&v, &y)) in r.iter().zip(&target).enumerate() {
                if y != ig && (v < 0 || v as u64 >= classes as u64) {
                    bail!(
                        InvalidTarget,
                        "{id}: ref_pred[{i}] = {v} is outside [0, {classes}) on a row whose target is not ignored"
                    );
                }
            }
        }
        let x = c
            .get(0)
            .ok_or_else(|| err!(Internal, "{id}: logits missing"))?;
        let stride = x.row_stride;
        let data = x.f32_data().unwrap_or(&[]);
        // Pass 1: per contributing row (k, conf, lse, correct).
        let rows: Vec<Option<(usize, f64, f32, bool)>> = (0..n)
            .into_par_iter()
            .with_min_len((16384 / classes.max(1)).max(1))
            .map(|i| {
                let y = target[i];
                if y == ig {
                    return None;
                }
                let z = &data[i * stride..i * stride + classes];
                let (m, s) = max_sumexp(z);
                let lse = m as f64 + s.ln();
                let k = argmax(z).unwrap_or(0);
                let conf = (z[k] as f64 - lse).exp();
                let pred = refp.as_ref().map_or(k as i64, |r| r[i]);
                Some((k, conf, lse as f32, pred == y))
            })
            .collect();
        let count = rows.iter().flatten().count();
        if count == 0 {
            out.write(c, 0.0);
            zero_grad(c);
            return Ok(());
        }
        let acc = rows.iter().flatten().filter(|r| r.3).count() as f64 / count as f64;
        let balanced = p.bool("balance") && acc > 0.0 && acc < 1.0;
        let weight = |correct: bool| {
            if !balanced {
                1.0
            } else if correct {
                1.0 - acc
            } else {
                acc
            }
        };
        let mut num = 0.0f64;
        let mut wsum = 0.0f64;
        for &(_, conf, _, ok) in rows.iter().flatten() {
            let w = weight(ok);
            let e = conf - if ok { 1.0 } else { 0.0 };
            num += w * e * e;
            wsum += w;
        }
        out.write(c, num / wsum);
        if !c.wants_grad(0) {
            return Ok(());
        }
        let Compute { inputs, grads, .. } = c;
        let x = inputs[0]
            .as_mut()
            .ok_or_else(|| err!(Internal, "{id}: logits missing"))?;
        let io = rows_io(x, &mut grads[0])?;
        map_rows(io, n, classes, |i, mut r| {
            let Some((k, conf, lse, ok)) = rows[i] else {
                r.zero_grad();
                return;
            };
            let e = conf - if ok { 1.0 } else { 0.0 };
            let coef = (out.scale * 2.0 * weight(ok) * e * conf / wsum) as f32;
            match &mut r {
                RowIo::Separate(x, g) => softmax_affine(Some(x), g, lse, -coef, 0.0, None),
                RowIo::InPlace(g) => softmax_affine(None, g, lse, -coef, 0.0, None),
                RowIo::Read(_) => {}
            }
            if let Some(g) = r.grad_mut() {
                g[k] += coef;
            }
        });
        Ok(())
    }
}

fn zero_grad(c: &mut Compute<'_>) {
    if let Grad::Out(g) = &mut c.grads[0] {
        g.fill(0.0);
    }
}
