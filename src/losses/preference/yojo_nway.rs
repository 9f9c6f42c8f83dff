//! `yojo_nway`: N-way cross-entropy over the scores of K responses to one prompt (You Only
//! Judge Once).
//!
//! **Inputs**: `scores [N,K]` (differentiable: one reward-model score per response);
//! exactly one of `target [N]` i64 (index of the preferred response, or `ignore_index`: the
//! row contributes nothing) and `target_probs [N,K]` (soft targets q ≥ 0); `valid [N,K]`
//! (optional 0/1 padding for rows with fewer than K responses; absent = all valid).
//!
//! **Parameters**: `temperature` τ (1, `(0, ∞)`), `ignore_index` (−100; must not lie in
//! `[0, K)`).
//!
//! **Math**: `z = scores/τ` (invalid entries → −∞), `log p = z − LSE(z)`; hard `ℓ =
//! −log p_target`, soft `ℓ = −Σ_k q_k log p_k` (terms with `q_k = 0` skipped). Gradient: hard
//! `(softmax(z) − onehot(target))/τ`, soft `((Σq)·softmax(z) − q)/τ`, 0 at invalid entries.
//! `mean` divides by the number of rows that are not ignored. A target pointing to an invalid
//! entry, soft mass on one, a negative soft target or a `valid` value other than 0/1 is an
//! invalid input; giving both or neither of `target`/`target_probs` is an invalid argument.
//! K = 2 is the Bradley-Terry loss.
//!
//! **Source**: *You Only Judge Once: Multi-response Reward Modeling in a Single Forward Pass*.
//! The paper applies a cross-entropy over the K scalar scores of one concatenated forward
//! pass; the temperature and the soft targets are extensions (τ = 1 with hard targets is the
//! paper's loss).
//!
//! **GPU path**: `yojo_nway.wgsl`, one invocation per row under the per-sample kernel
//! contract (max-shifted log-sum-exp over the valid entries), after every check of the CPU
//! path (the targets, soft targets and padding mask are read back), which also give the
//! `mean` denominator (the rows not ignored) to the contract's host side.

use crate::backend::cpu::lse;
use crate::bail;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{check_values, read_f64, required, run_rows, values};
use crate::exec::targets::checked_targets;
use crate::params::{ParamSpec, ParamValue::F64, Params};
use crate::spec::{Domain, InputSpec, LossSpec};
use crate::text::Text;

const ID: &str = "yojo_nway";

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        ID,
        "preference",
        "YOJO: N-way cross-entropy over the reward scores of K responses (hard or soft targets)",
        "You Only Judge Once: Multi-response Reward Modeling in a Single Forward Pass",
    )
    .rows("N")
    .input(
        InputSpec::f32("scores", "N,K")
            .grad()
            .doc("reward score of each of the K responses"),
    )
    .input(
        InputSpec::i64("target", "N")
            .optional()
            .domain(Domain::Class(Text::new("K")))
            .doc("index of the preferred response, or ignore_index (exclusive with target_probs)"),
    )
    .input(
        InputSpec::f32("target_probs", "N,K")
            .optional()
            .domain(Domain::NonNegative)
            .doc("soft targets q >= 0 (exclusive with target)"),
    )
    .input(
        InputSpec::f32("valid", "N,K")
            .optional()
            .domain(Domain::Binary)
            .doc("1 for a real response, 0 for padding (default all 1)"),
    )
    .param(
        ParamSpec::f64_open_min(
            "temperature",
            1.0,
            0.0,
            f64::INFINITY,
            "scores are divided by this",
        )
        .open_max(),
    )
    .param(ParamSpec::ignore_index());
    LossDef::new(spec, YojoNway)
        .gpu(GpuKernel::Sample(SampleKernel::new(
            &[super::FAMILY_WGSL],
            include_str!("yojo_nway.wgsl"),
        )))
        .test_needs_optional()
        .test_omit(&["target_probs", "valid"])
        .test_params(&[("temperature", F64(0.5))])
        .test_params(&[("temperature", F64(2.5))])
}

/// The implementation.
pub struct YojoNway;

/// Every check of both backends (ignore_index outside the responses, exactly one target
/// kind, targets, soft targets and padding values, no target on padding). Returns the hard
/// targets, if given, and the `mean` denominator (rows not ignored).
fn checked_targets_nway(p: &Params, c: &Compute<'_>) -> Result<(Option<Vec<i64>>, usize)> {
    let (n, k) = (c.dim("N"), c.dim("K"));
    let ig = p.i64("ignore_index");
    if ig >= 0 && (ig as u64) < k as u64 {
        bail!(
            InvalidParam,
            "{ID}: ignore_index = {ig} lies inside the responses [0, {k})"
        );
    }
    let target = match (c.get(1), c.get(2).is_some()) {
        (Some(t), false) => Some(checked_targets(ID, t, k, ig)?),
        (None, true) => None,
        _ => bail!(
            InvalidArg,
            "{ID}: give exactly one of target and target_probs"
        ),
    };
    let q = read_f64(c, 2)?;
    if let Some(q) = &q {
        check_values(ID, "target_probs", q, |v| v >= 0.0, "is negative")?;
    }
    let valid = read_f64(c, 3)?;
    if let Some(v) = &valid {
        check_values(ID, "valid", v, |x| x == 0.0 || x == 1.0, "is not 0 or 1")?;
    }
    let is_valid = |i: usize, j: usize| valid.as_ref().is_none_or(|v| v[i * k + j] == 1.0);
    for i in 0..n {
        for j in 0..k {
            if is_valid(i, j) {
                continue;
            }
            if target.as_ref().is_some_and(|t| t[i] == j as i64) {
                bail!(
                    InvalidInput,
                    "{ID}: target[{i}] = {j} points to an invalid response"
                );
            }
            if q.as_ref().is_some_and(|q| q[i * k + j] != 0.0) {
                bail!(
                    InvalidInput,
                    "{ID}: target_probs[{i}, {j}] puts mass on an invalid response"
                );
            }
        }
    }
    let den = target
        .as_ref()
        .map_or(n, |t| t.iter().filter(|&&y| y != ig).count());
    Ok((target, den))
}

impl LossImpl for YojoNway {
    fn plan(&self, _spec: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        Ok(Plan::with_den(Some(
            ({ checked_targets_nway(p, c).map(|(_, den)| den as f64) })?,
        )))
    }
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let (n, k) = (c.dim("N"), c.dim("K"));
        let tau = p.f64("temperature");
        let ig = p.i64("ignore_index");
        let (target, den) = checked_targets_nway(p, c)?;
        let q = values(c, 2)?;
        let valid = values(c, 3)?;
        let is_valid = |i: usize, j: usize| valid.as_ref().is_none_or(|v| v.at(i * k + j) == 1.0);
        let scores = required(ID, c, 0)?;
        run_rows(spec, c, n, den as f64, |i, g| {
            if target.as_ref().is_some_and(|t| t[i] == ig) {
                return Ok(0.0);
            }
            let mut z = vec![0.0; k];
            for (j, zj) in z.iter_mut().enumerate() {
                *zj = if is_valid(i, j) {
                    scores.at(i * k + j) / tau
                } else {
                    f64::NEG_INFINITY
                };
            }
            let l = lse(&z);
            // Target weights: one-hot for a hard target, q for soft targets.
            let w = |j: usize| match (&target, &q) {
                (Some(t), _) => f64::from(u8::from(t[i] == j as i64)),
                (None, Some(q)) => q.at(i * k + j),
                _ => 0.0,
            };
            let mass: f64 = (0..k).map(w).sum();
            if mass == 0.0 {
                return Ok(0.0);
            }
            let mut loss = 0.0;
            let gr = g.at(0);
            for j in 0..k {
                if !is_valid(i, j) {
                    continue;
                }
                let (wj, lp) = (w(j), z[j] - l);
                if wj != 0.0 {
                    loss -= wj * lp;
                }
                if !gr.is_empty() {
                    gr[j] = (mass * lp.exp() - wj) / tau;
                }
            }
            Ok(loss)
        })
    }
}
