//! `dco`: Direct Coverage Optimization, the pass@N-aware confidence-limiting loss.
//!
//! The loss is the negative log of pass@N coverage of one sample,
//! `l = -log(1 - (1 - p)^N)`, where `p = exp(logp)` is the model's probability of the
//! correct answer and `N` the number of attempts at test time. Its gradient is the
//! cross-entropy gradient times a factor `F` in `(0, 1]` that vanishes once `p` exceeds
//! about `1/N`, so confident samples stop pushing the model further.
//!
//! **Inputs**
//! - `logp [N]` f32, differentiable: `log p(y|x) <= 0` (for a sequence, the sum of its token
//!   log-probabilities; for one classification token, `-cross_entropy(reduction = none)`, in
//!   which case the gradient to the logits is `F * (softmax - e_y)` per row). A positive
//!   value is an input error; NaN propagates; `-inf` gives `l = +inf` and gradient `-1`.
//!
//! **Parameters**: `n_pass` (f64, default 1, `>= 1`, non-integer allowed): the paper's `N'`.
//! `n_pass = 1` is exactly cross-entropy (`l = -logp`).
//!
//! **Math** (f64, stable at both ends): `l1m = log1mexp(logp)`;
//! `a = log(-l1m)` if `l1m < 0` else `logp`; `b = log N + a`;
//! `l = -b` if `b < -700`, else `-log1mexp(-e^b)`. Gradient `dl/dlogp = -F` with
//! `log F = log N + logp + (N-1)·l1m + l` (the `(N-1)·l1m` term is 0 when `N = 1`).
//! `mean` divides by the number of samples.
//!
//! **Source**: *Rethinking Fine-Tuning when Scaling Test-Time Compute: Limiting Confidence
//! Improves Mathematical Reasoning* (no official code). The paper's batch refilling (dropping
//! samples whose `F` is below a threshold) is data selection and is not part of the loss.
//!
//! **Cost**: elementwise; rows run in parallel.
//!
//! **GPU path**: `dco.wgsl` on the per-sample kernel contract, one thread per sample, the
//! same stable formula in f32 (after the same `logp <= 0` check on the host).

use crate::backend::cpu::log1mexp;
use crate::bail;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::rows::run_elementwise;
use crate::params::{ParamSpec, ParamValue::F64, Params};
use crate::spec::{Domain, InputSpec, LossSpec};

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "dco",
        "classification",
        "Direct Coverage Optimization: -log(1 - (1 - p)^N), pass@N-aware confidence limiting",
        "Rethinking Fine-Tuning when Scaling Test-Time Compute: Limiting Confidence Improves Mathematical Reasoning",
    )
    .input(
        InputSpec::f32("logp", "N")
            .grad()
            .doc("log-probability of the correct answer, <= 0")
            .domain(Domain::LogProb),
    )
    .param(ParamSpec::f64(
        "n_pass",
        1.0,
        1.0,
        f64::INFINITY,
        "number of attempts N' at test time (1 = cross-entropy)",
    ));
    LossDef::new(spec, Dco)
        .gpu(GpuKernel::Sample(
            SampleKernel::new(&[super::SAMPLE_PRELUDE], include_str!("dco.wgsl")).passes(1),
        ))
        .test_params(&[("n_pass", F64(4.0))])
        .test_params(&[("n_pass", F64(2.5))])
        .test_params(&[("n_pass", F64(64.0))])
}

/// The implementation.
pub struct Dco;

/// Loss and `dl/dlogp` of one sample in f64, for `logp <= 0` and `n >= 1`.
pub fn dco_value(logp: f64, n: f64) -> (f64, f64) {
    if logp == f64::NEG_INFINITY {
        return (f64::INFINITY, -1.0);
    }
    let l1m = log1mexp(logp);
    let a = if l1m < 0.0 { (-l1m).ln() } else { logp };
    let b = n.ln() + a;
    let loss = if b < -700.0 { -b } else { -log1mexp(-b.exp()) };
    let tail = if n == 1.0 { 0.0 } else { (n - 1.0) * l1m };
    let log_f = n.ln() + logp + tail + loss;
    (loss, -log_f.exp())
}

/// Refuse a positive `logp` (device data is read back).
fn check_logp(c: &Compute<'_>) -> Result<()> {
    if let Some(t) = c.get(0) {
        for (i, &v) in t.read_f32()?.iter().enumerate() {
            if v > 0.0 {
                bail!(
                    InvalidInput,
                    "dco: logp[{i}] = {v} is a log-probability and must be <= 0"
                );
            }
        }
    }
    Ok(())
}

impl LossImpl for Dco {
    fn plan(&self, _spec: &LossSpec, _p: &Params, c: &Compute<'_>) -> Result<Plan> {
        check_logp(c)?;
        Ok(Plan::default())
    }
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let n = p.f64("n_pass");
        run_elementwise("dco", c, 0, |v| dco_value(v as f64, n))
    }
}
