//! `spo_degree`: preference-degree loss over K degree-ordered variants of one response
//! (Self-supervised Preference Optimization).
//!
//! **Inputs** (`[N,K]`): `variant_logps` (differentiable summed log-probs of K variants of a
//! response; column 0 has the highest preference degree, i.e. the least key content removed,
//! and degrees decrease with the column); `variant_ref_logps` (optional, absent = 0; used by
//! `score = ratio`); `variant_len` (optional token counts, `L = max(len, 1)`, absent = 1; used
//! by `score = avg`).
//!
//! **Parameters**: `beta` β (0.1, `(0, ∞)`), `score` (`ratio|avg`), `objective`
//! (`ce|plackett_luce`), `weight` λ (1, `[0, ∞)`).
//!
//! **Math**: `z = β(s − s_ref)` (ratio) or `z = β s/L` (avg, for reference-free alignment
//! losses; the reference input is not used). `ce`: `ℓ = λ(LSE_k z_k − z_0)` (identify the
//! top-degree variant); `plackett_luce`: `ℓ = λ Σ_{k=0}^{K−2}(LSE_{j≥k} z_j − z_k)` (the whole
//! degree order). Gradients: ce `λ(softmax(z)_j − 1[j=0])`; PL `λ(Σ_{k ≤ min(j, K−2)}
//! softmax(z_{k:})_j − 1[j ≤ K−2])`; times `∂z/∂s = β` or `β/L`. The SPO objective is an
//! alignment loss plus ℓ: the caller adds e.g. `dpo` with the same β. K < 2 is an invalid
//! input.
//!
//! **Source**: *Self-supervised Preference Optimization: Enhance Your Language Model with
//! Preference Degree Awareness* (lijian16/SPO holds only a licence). No official code and the
//! paper text could not be retrieved when the spec was written: the K-way classification of
//! degree-ordered variants scored by the policy's implicit reward is the spec's reading
//! (confidence low), kept as specified; verify before relying on it.
//!
//! **GPU path**: `spo_degree.wgsl`, one invocation per row under the per-sample kernel
//! contract, after the CPU path's checks: max-shifted log-sum-exps; for Plackett-Luce the
//! suffix log-sum-exps are built from the back and parked in the row's gradient slots
//! (O(K²) per row, no scratch array).

use crate::backend::cpu::lse;
use crate::bail;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{Lengths, lengths, required, run_rows, values};
use crate::params::{
    ParamSpec,
    ParamValue::{Enum, F64},
    Params,
};
use crate::spec::{Domain, InputSpec, LossSpec};

const ID: &str = "spo_degree";

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        ID,
        "preference",
        "SPO preference-degree loss: K-way (or Plackett-Luce) classification of degree-ordered response variants by implicit reward",
        "Self-supervised Preference Optimization: Enhance Your Language Model with Preference Degree Awareness (lijian16/SPO holds no code)",
    )
    .rows("N")
    .input(
        InputSpec::f32("variant_logps", "N,K")
            .grad()
            .domain(Domain::LogProb)
            .doc("policy log-prob of each variant; column 0 has the highest preference degree"),
    )
    .input(
        InputSpec::f32("variant_ref_logps", "N,K")
            .optional()
            .domain(Domain::LogProb)
            .doc("reference log-prob of each variant (ratio score; absent = 0)"),
    )
    .input(
        InputSpec::f32("variant_len", "N,K")
            .optional()
            .domain(Domain::Positive)
            .doc("token count of each variant (avg score; max(len, 1) is used)"),
    )
    .param(super::dpo::beta_param(0.1))
    .param(ParamSpec::choice(
        "score",
        "ratio",
        &["ratio", "avg"],
        "implicit reward: beta (logps - ref) or beta logps / length",
    ))
    .param(ParamSpec::choice(
        "objective",
        "ce",
        &["ce", "plackett_luce"],
        "identify the top-degree variant, or the likelihood of the whole degree order",
    ))
    .param(ParamSpec::f64(
        "weight",
        1.0,
        0.0,
        f64::INFINITY,
        "lambda: weight of the degree loss",
    ));
    LossDef::new(spec, SpoDegree)
        .gpu(GpuKernel::Sample(SampleKernel::new(
            &[super::FAMILY_WGSL],
            include_str!("spo_degree.wgsl"),
        )))
        .test_dims(&[("K", 4)])
        .test_params(&[("beta", F64(0.5)), ("weight", F64(0.7))])
        .test_params(&[("objective", Enum(1)), ("beta", F64(0.5))])
        .test_params(&[("score", Enum(1)), ("beta", F64(2.0))])
        .test_params(&[
            ("score", Enum(1)),
            ("objective", Enum(1)),
            ("beta", F64(2.0)),
        ])
}

/// The implementation.
pub struct SpoDegree;

/// The checks of both backends: `K ≥ 2`, no negative length (avg score). Returns the
/// lengths `max(len, 1)` (1 for the ratio score).
fn checked_lengths<'a>(p: &Params, c: &Compute<'a>) -> Result<Lengths<'a>> {
    let k = c.dim("K");
    if k < 2 {
        bail!(
            InvalidInput,
            "{ID}: K = {k} variants; the degree loss needs at least 2"
        );
    }
    let avg = p.choice("score") == "avg";
    lengths(ID, "variant_len", c, avg.then_some(2))
}

impl LossImpl for SpoDegree {
    fn plan(&self, _spec: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        (checked_lengths(p, c).map(drop))?;
        Ok(Plan::default())
    }
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let len = checked_lengths(p, c)?;
        let (n, k) = (c.dim("N"), c.dim("K"));
        let beta = p.f64("beta");
        let lam = p.f64("weight");
        let avg = p.choice("score") == "avg";
        let pl = p.choice("objective") == "plackett_luce";
        let s = required(ID, c, 0)?;
        let rf = if avg { None } else { values(c, 1)? };
        run_rows(spec, c, n, n as f64, |i, g| {
            let (mut z, mut jac) = (vec![0.0; k], vec![0.0; k]);
            for j in 0..k {
                let e = i * k + j;
                (z[j], jac[j]) = if avg {
                    (beta * s.at(e) / len.at(e), beta / len.at(e))
                } else {
                    (
                        beta * (s.at(e) - rf.as_ref().map_or(0.0, |r| r.at(e))),
                        beta,
                    )
                };
            }
            let gr = g.at(0);
            let stages = if pl { k - 1 } else { 1 };
            let mut loss = 0.0;
            for st in 0..stages {
                let l = lse(&z[st..]);
                loss += l - z[st];
                if !gr.is_empty() {
                    for j in st..k {
                        gr[j] += (z[j] - l).exp();
                    }
                    gr[st] -= 1.0;
                }
            }
            for (gj, jj) in gr.iter_mut().zip(&jac) {
                *gj *= lam * jj;
            }
            Ok(lam * loss)
        })
    }
}
