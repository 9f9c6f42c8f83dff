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
//!
//! **GPU path** (`ca_calibration.wgsl`): one workgroup per row finds the first arg-max, the
//! sum `S` of the other classes' `exp(z_c - z_k)` and the log-sum-exp (the confidence is
//! `1/(1 + S)`, its distance to 1 `S/(1 + S)`, both without cancellation); the host reads
//! those four numbers per row back, computes the batch accuracy, weights and the scalar in
//! f64 in row order, and a second kernel writes the gradient elementwise. The whole logits
//! matrix is bound at once: a matrix larger than the device's largest binding is refused
//! (`Unsupported`).

use rayon::prelude::*;

use crate::backend::cpu::{RowIo, map_rows, max_sumexp, softmax_affine};
use crate::compute::Compute;
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::rows::BatchOutput;
use crate::exec::rowwise::{argmax, rows_io};
use crate::exec::targets::checked_targets;
use crate::params::{ParamSpec, ParamValue::Bool, Params};
use crate::spec::{InputSpec, LossSpec};
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
    LossDef::new(spec, CaCalibration)
        .gpu(crate::custom_gpu!(CaCalibration))
        .mean_rule(crate::exec::def::MeanRule::Scalar)
        .test_params(&[("balance", Bool(false))])
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
            check_ref_pred(id, r, &target, ig, classes)?;
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

/// Check the optional reference predictions on the contributing rows.
fn check_ref_pred(id: &str, r: &[i64], target: &[i64], ig: i64, classes: usize) -> Result<()> {
    for (i, (&v, &y)) in r.iter().zip(target).enumerate() {
        if y != ig && (v < 0 || v as u64 >= classes as u64) {
            bail!(
                InvalidTarget,
                "{id}: ref_pred[{i}] = {v} is outside [0, {classes}) on a row whose target is not ignored"
            );
        }
    }
    Ok(())
}

fn zero_grad(c: &mut Compute<'_>) {
    if let Grad::Out(g) = &mut c.grads[0] {
        g.fill(0.0);
    }
}

#[cfg(feature = "wgpu")]
mod gpu {
    use super::{CaCalibration, check_ref_pred};
    use crate::backend::wgpu::pairwise::{Kernels, route_grad, stage_input};
    use crate::backend::wgpu::{BindKind, GpuDevice, PRELUDE};
    use crate::compute::Compute;
    use crate::err;
    use crate::error::Result;
    use crate::exec::gpu::GpuLoss;
    use crate::exec::rows::BatchOutput;
    use crate::exec::targets::checked_targets;
    use crate::params::Params;
    use crate::spec::LossSpec;

    const WGSL: &str = include_str!("ca_calibration.wgsl");

    fn source() -> &'static str {
        static S: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        S.get_or_init(|| format!("{PRELUDE}\n{WGSL}"))
    }

    /// Arg-max, confidence, log-sum-exp, correctness, confidence minus correctness.
    type RowStat = (u32, f64, f32, bool, f64);

    fn kinds() -> [BindKind; 5] {
        use BindKind::*;
        [Uniform, Read, Read, ReadWrite, ReadWrite]
    }

    impl GpuLoss for CaCalibration {
        fn compute_gpu(
            &self,
            dev: &GpuDevice,
            _spec: &LossSpec,
            p: &Params,
            c: &mut Compute<'_>,
        ) -> Result<()> {
            let id = "ca_calibration";
            let ig = p.i64("ignore_index");
            let classes = c.dim("C");
            let out = BatchOutput::new(c);
            let target = checked_targets(
                id,
                c.get(1)
                    .ok_or_else(|| err!(Internal, "{id}: target missing"))?,
                classes,
                ig,
            )?;
            let refp = match c.get(2) {
                Some(t) => Some(t.read_i64()?),
                None => None,
            };
            if let Some(r) = &refp {
                check_ref_pred(id, r, &target, ig, classes)?;
            }
            let balance = p.bool("balance");
            dev.scoped(id, || {
                run(dev, c, &target, refp.as_deref(), ig, balance, &out)
            })
        }
    }

    fn run(
        dev: &GpuDevice,
        c: &mut Compute<'_>,
        target: &[i64],
        refp: Option<&[i64]>,
        ig: i64,
        balance: bool,
        out: &BatchOutput,
    ) -> Result<()> {
        let id = "ca_calibration";
        let (n, classes) = (c.dim("N"), c.dim("C"));
        let u = [n as u32, classes as u32, 0, 0];
        // Pass 1: per-row statistics.
        let mut kn = Kernels::new(dev, id)?;
        let zb = stage_input(&mut kn, c, 0, "logits")?;
        let stb = kn.scratch("per-row statistics", 4 * n)?;
        let (dr, dw) = (kn.dummy_read(), kn.dummy_write());
        let grid = kn.grid(n)?;
        kn.custom(
            "ca_calibration",
            source(),
            "stats",
            &[],
            &kinds(),
            &u,
            &[zb.buf(), &dr, stb.buf(), &dw],
            grid,
        )?;
        let mut sv = vec![0u8; 16 * n];
        {
            let sb = stb.buf().clone();
            let mut reads: Vec<(&wgpu::Buffer, &mut [u8])> = vec![(&sb, &mut sv)];
            kn.submit(c, &mut reads, Vec::new())?;
        }
        let st: &[f32] = bytemuck::cast_slice(&sv);
        // (k, conf, lse, correct, conf - correct) of the contributing rows.
        let rows: Vec<Option<RowStat>> = (0..n)
            .map(|i| {
                let y = target[i];
                if y == ig || classes == 0 {
                    return None;
                }
                let k = st[4 * i].to_bits();
                let conf = st[4 * i + 1] as f64;
                let s = st[4 * i + 3] as f64;
                let pred = refp.map_or(k as i64, |r| r[i]);
                let ok = pred == y;
                let e = if ok { -s / (1.0 + s) } else { conf };
                Some((k, conf, st[4 * i + 2], ok, e))
            })
            .collect();
        let count = rows.iter().flatten().count();
        let acc = if count == 0 {
            0.0
        } else {
            rows.iter().flatten().filter(|r| r.3).count() as f64 / count as f64
        };
        let balanced = balance && acc > 0.0 && acc < 1.0;
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
        for &(_, _, _, ok, e) in rows.iter().flatten() {
            let w = weight(ok);
            num += w * e * e;
            wsum += w;
        }
        out.write(c, if count == 0 { 0.0 } else { num / wsum });
        if !c.wants_grad(0) {
            return Ok(());
        }
        // Pass 2: the gradient.
        let mut co = vec![0f32; 4 * n];
        for (i, r) in rows.iter().enumerate() {
            if let Some((k, conf, lse, ok, e)) = *r {
                co[4 * i] = (out.scale * 2.0 * weight(ok) * e * conf / wsum) as f32;
                co[4 * i + 1] = lse;
                co[4 * i + 2] = f32::from_bits(k);
            }
        }
        let mut kn = Kernels::new(dev, id)?;
        let cob = kn.upload("per-row coefficients", bytemuck::cast_slice(&co))?;
        let gb = kn.scratch("the logit gradient", n * classes)?;
        let dw = kn.dummy_write();
        let grid = kn.grid((n * classes).div_ceil(256))?;
        kn.custom(
            "ca_calibration",
            source(),
            "grad",
            &[],
            &kinds(),
            &u,
            &[zb.buf(), cob.buf(), &dw, gb.buf()],
            grid,
        )?;
        let mut host = Vec::new();
        route_grad(&mut kn, c, 0, gb, n, classes, &mut host)?;
        kn.submit(c, &mut [], host)?;
        drop((zb, stb, cob));
        Ok(())
    }
}
