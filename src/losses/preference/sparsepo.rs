//! `sparsepo`: SparsePO, DPO with token-masked reward and KL terms.
//!
//! **Inputs** (`[2,B,T]`: row block 0 holds the B chosen responses, block 1 the B rejected
//! ones, i.e. the `[2B, T]` concatenated layout of TRL viewed as `[2, B, T]`, the same memory):
//! `token_logps` (differentiable, `token_logprobs`'s `token_logps`), `ref_token_logps`,
//! `token_kl` (differentiable, `token_logprobs`'s `token_kl`, ≤ 0), `mask` (0/1 response
//! tokens), `reward_mask` m_u (optional, differentiable, absent = 1), `kl_mask` m_d (optional,
//! differentiable, absent = 1; must be absent in `common` mode). Masks are assumed ≥ 0 (ReLU
//! heads).
//!
//! **Parameters**: `beta` β (0.1, `(0, ∞)`), `mask_mode` (`independent|common`), `l1_reward`
//! λ_u (0, `[0, ∞)`), `l1_kl` λ_d (0, `[0, ∞)`).
//!
//! **Math**: `common`: `m_d := m_u`. Per response `U = Σ_t mask·m_u·(lp − lp_ref)`, `K =
//! Σ_t mask·m_d·kl`; `u = U_w − U_l`, `d = K_w − K_l`; `ℓ = softplus(−β(u − d))` plus L1
//! penalties on the masks that are given (`P = Σ_t mask·|m|`): independent `λ_u(P_u,w +
//! P_u,l) + λ_d(P_d,w + P_d,l)`, common `½(λ_u + λ_d)(P_w + P_l)`. Gradients with `g =
//! −βσ(−β(u − d))` and `s = +1` for the chosen block, −1 for the rejected one: `∂ℓ/∂lp =
//! s g·mask·m_u`; `∂ℓ/∂kl = −s g·mask·m_d`; independent `∂ℓ/∂m_u = s g·mask·(lp − lp_ref) +
//! λ_u mask·sign(m_u)`, `∂ℓ/∂m_d = −s g·mask·kl + λ_d mask·sign(m_d)`; common `∂ℓ/∂m_u =
//! s g·mask·(lp − lp_ref − kl) + ½(λ_u + λ_d) mask·sign(m_u)` (sign(0) = 0). The gradients
//! reach the logits through `token_logprobs` (its `token_logps` and `token_kl` cotangents).
//! A `mask` value other than 0/1 is an invalid input; `kl_mask` in `common` mode is an
//! invalid parameter combination.
//!
//! **Source**: *SparsePO: Controlling Preference Alignment of LLMs via Sparse Token Masks*
//! (official code in huawei-noah/HEBO, `SparsePO/`, `sparse` and `mapo` trainers). Follows the
//! official trainer: the KL term is `Σ_v π_ref(log π − log π_ref)` (≤ 0), giving the logit
//! `β(u − d)`; in `common` mode both L1 coefficients are halved because the same mask is
//! penalised twice. The model-derived variant (MaPO) is this loss in `common` mode with a
//! constant mask from `sparsepo_mask`; the learned variant feeds a mask network's output as
//! `reward_mask` / `kl_mask`.
//!
//! **GPU path**: `sparsepo.wgsl`, declared as a per-sample kernel with a leading axis
//! (`SampleKernel::leading_axis`: the `[2, B, T]` inputs are chunked per block, so the
//! kernel sees `[2, rows, T]`), one invocation per pair in f32 with blocked sums
//! (`lk_acc` of the prelude: error about 130 ulp of the sum of |terms| for any `T` below 2^18,
//! where a plain running sum drifts by `T` ulp and a Kahan compensation can be compiled
//! away). The
//! `mask_mode`/`kl_mask` and mask checks run on the host first (the CPU's code). An invocation
//! loops 4·T times: on llvmpipe, which stops loops after 65535 iterations, T > 16383 is
//! refused (`Unsupported`). The heavy
//! part stays `token_logprobs` with `ref_logits` upstream.

use crate::backend::cpu::{sigmoid, softplus};
use crate::bail;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{check_values, required, run_rows, values};
use crate::params::{
    ParamSpec,
    ParamValue::{Enum, F64},
    Params,
};
use crate::spec::{Domain, InputSpec, LossSpec};

const ID: &str = "sparsepo";
const LP: usize = 0;
const REF: usize = 1;
const KL: usize = 2;
const MASK: usize = 3;
const MU: usize = 4;
const MD: usize = 5;

/// The registry entry.
pub fn def() -> LossDef {
    let tok = |name: &str, doc: &str| InputSpec::f32(name, "2,B,T").doc(doc);
    let spec = LossSpec::new(
        ID,
        "preference",
        "SparsePO: DPO with token-level reward and KL masks (independent or common), with L1 mask penalties",
        "SparsePO: Controlling Preference Alignment of LLMs via Sparse Token Masks (official code huawei-noah/HEBO, SparsePO/)",
    )
    .rows("B")
    .input(
        tok("token_logps", "policy log-prob per token; block 0 chosen, block 1 rejected")
            .grad()
            .domain(Domain::LogProb),
    )
    .input(
        tok("ref_token_logps", "reference log-prob per token").domain(Domain::LogProb),
    )
    .input(
        tok(
            "token_kl",
            "sum_v pi_ref (log pi - log pi_ref) per token (<= 0), from token_logprobs",
        )
        .grad()
        .domain(Domain::LogProb),
    )
    .input(tok("mask", "1 for a response token, 0 for padding").domain(Domain::Binary))
    .input(
        tok("reward_mask", "token mask m_u of the reward term (default 1; >= 0)")
            .grad()
            .optional()
            .domain(Domain::NonNegative),
    )
    .input(
        tok(
            "kl_mask",
            "token mask m_d of the KL term (default 1; >= 0; independent mode only)",
        )
        .grad()
        .optional()
        .domain(Domain::NonNegative),
    )
    .param(super::dpo::beta_param(0.1))
    .param(ParamSpec::choice(
        "mask_mode",
        "independent",
        &["independent", "common"],
        "separate reward and KL masks, or one mask for both",
    ))
    .param(ParamSpec::f64(
        "l1_reward",
        0.0,
        0.0,
        f64::INFINITY,
        "L1 penalty on the reward mask",
    ))
    .param(ParamSpec::f64(
        "l1_kl",
        0.0,
        0.0,
        f64::INFINITY,
        "L1 penalty on the KL mask",
    ));
    LossDef::new(spec, Sparsepo)
        .gpu(GpuKernel::Sample(
            SampleKernel::new(&[], include_str!("sparsepo.wgsl"))
                .leading_axis()
                .iterations(gpu_iterations),
        ))
        .test_omit(&["kl_mask"])
        .test_params(&[
            ("beta", F64(0.5)),
            ("l1_reward", F64(0.1)),
            ("l1_kl", F64(0.05)),
        ])
        .test_params(&[
            ("mask_mode", Enum(1)),
            ("beta", F64(0.5)),
            ("l1_reward", F64(0.1)),
            ("l1_kl", F64(0.3)),
        ])
}

/// The implementation.
pub struct Sparsepo;

fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The checks of a call (both paths): `kl_mask` only in `independent` mode, a 0/1 `mask`.
fn check_call(p: &Params, c: &Compute<'_>, mask: &[f32]) -> Result<()> {
    if p.choice("mask_mode") == "common" && c.get(MD).is_some() {
        bail!(
            InvalidParam,
            "{ID}: mask_mode common uses reward_mask for both terms; kl_mask must be absent"
        );
    }
    check_values(ID, "mask", mask, |m| m == 0.0 || m == 1.0, "is not 0 or 1")
}

/// Loop iterations of one GPU invocation: two passes over both blocks of its row.
fn gpu_iterations(_p: &Params, c: &Compute<'_>) -> u64 {
    4 * c.dim("T") as u64
}

impl LossImpl for Sparsepo {
    /// The mask and mode checks of the CPU path (the mask read back from the device).
    fn plan(&self, _spec: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        let mask = c
            .get(MASK)
            .ok_or_else(|| crate::err!(Internal, "{ID}: mask missing"))?
            .read_f32()?;
        check_call(p, c, &mask)?;
        Ok(Plan::default())
    }
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let (b, t) = (c.dim("B"), c.dim("T"));
        let beta = p.f64("beta");
        let common = p.choice("mask_mode") == "common";
        let (l1u, l1d) = (p.f64("l1_reward"), p.f64("l1_kl"));
        let lp = required(ID, c, LP)?;
        let rf = required(ID, c, REF)?;
        let kl = required(ID, c, KL)?;
        let mask = required(ID, c, MASK)?;
        let mu = values(c, MU)?;
        let md = values(c, MD)?;
        let at = |blk: usize, i: usize, j: usize| (blk * b + i) * t + j;
        let m_u = |e: usize| mu.as_ref().map_or(1.0, |m| m.at(e));
        let m_d = |e: usize| {
            if common {
                m_u(e)
            } else {
                md.as_ref().map_or(1.0, |m| m.at(e))
            }
        };
        // L1 weights of the reward and KL masks (common: one mask, half of each).
        let (wu, wd) = if common {
            (0.5 * (l1u + l1d), 0.0)
        } else {
            (l1u, l1d)
        };
        run_rows(spec, c, b, b as f64, |i, g| {
            let (mut u, mut d, mut pen) = (0.0, 0.0, 0.0);
            for blk in 0..2 {
                let s = if blk == 0 { 1.0 } else { -1.0 };
                for j in 0..t {
                    let e = at(blk, i, j);
                    if mask.at(e) == 0.0 {
                        continue;
                    }
                    u += s * m_u(e) * (lp.at(e) - rf.at(e));
                    d += s * m_d(e) * kl.at(e);
                    if let Some(m) = &mu {
                        pen += wu * m.at(e).abs();
                    }
                    if let (false, Some(m)) = (common, &md) {
                        pen += wd * m.at(e).abs();
                    }
                }
            }
            let z = beta * (u - d);
            let gz = -beta * sigmoid(-z);
            for blk in 0..2 {
                let s = if blk == 0 { 1.0 } else { -1.0 };
                for j in 0..t {
                    let e = at(blk, i, j);
                    if mask.at(e) == 0.0 {
                        continue;
                    }
                    let o = blk * t + j;
                    if !g.at(LP).is_empty() {
                        g.set(LP, o, s * gz * m_u(e));
                    }
                    if !g.at(KL).is_empty() {
                        g.set(KL, o, -s * gz * m_d(e));
                    }
                    if !g.at(MU).is_empty() {
                        let r = lp.at(e) - rf.at(e) - if common { kl.at(e) } else { 0.0 };
                        g.set(MU, o, s * gz * r + wu * sign(m_u(e)));
                    }
                    if !g.at(MD).is_empty() {
                        g.set(MD, o, -s * gz * kl.at(e) + wd * sign(m_d(e)));
                    }
                }
            }
            Ok(softplus(-z) + pen)
        })
    }
}
