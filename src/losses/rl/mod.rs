//! RL fine-tuning family: token-level policy-gradient objectives on `[N, T]` per-token
//! log-probabilities (`token_logprobs`'s `token_logps`) with a `[N, T]` 0/1 mask.
//!
//! The family driver [`run_tokens`] does, once for `ppo_clip`, `grpo` and `steer`: mask
//! validation, the `loss_agg` row denominators, the aggregation `l_i = Σ_t mask·ℓ_t / den_i`
//! and its gradient `mask·∂ℓ_t/∂logp / den_i`, then the shared reduction over the `N` rows
//! (through the preference family's [`run_rows`]). Each loss supplies only its per-token
//! function. [`clipped_surrogate`] is the PPO clip rule all three share.
//!
//! `loss_agg` (with `reduction = mean`): `token_mean` (`den_i = max(Σ_all mask, 1)/N`: DAPO /
//! BNPO, `Σ_i Σ_t / Σ mask`), `seq_mean_token_mean` (`max(Σ_t mask_i, 1)`: original GRPO),
//! `seq_mean_token_sum` (1), `seq_mean_token_sum_norm` (`max_len`, 0 → T: Dr. GRPO). The
//! table mapping these to TRL and verl options is in the preference family's module doc.
//!
//! GPU: each loss is a per-sample contract kernel with `family.wgsl` (the clipped surrogate,
//! the row denominator) in front; the mask check and the denominators of the modes that do not
//! depend on the row come from [`mask_denominators`] on the host (the mask is read back when
//! it lives on the device) and reach the kernel as a constant (see [`gpu`]).
//! One invocation loops over its row (about 2·T iterations); on llvmpipe (lavapipe), whose
//! loop limiter stops an invocation's loops after 65535 iterations, longer rows are refused
//! (`Unsupported`) instead of computed wrongly; hardware drivers have no such limit.

pub mod grpo;
pub mod ppo_clip;
pub mod steer;

use crate::compute::Compute;
use crate::error::Result;
use crate::losses::preference::{check_values, run_rows};
use crate::params::{ParamSpec, Params};
use crate::spec::LossSpec;

/// The `loss_agg` choices.
pub const LOSS_AGG: &[&str] = &[
    "token_mean",
    "seq_mean_token_mean",
    "seq_mean_token_sum",
    "seq_mean_token_sum_norm",
];

/// The `loss_agg` parameter with its default.
pub fn agg_param(default: &str) -> ParamSpec {
    ParamSpec::choice(
        "loss_agg",
        default,
        LOSS_AGG,
        "how token losses are aggregated per row (token_mean = DAPO/BNPO, seq_mean_token_mean = GRPO, seq_mean_token_sum_norm = Dr. GRPO)",
    )
}

/// The `max_len` parameter (`seq_mean_token_sum_norm`'s divisor; 0 = T).
pub fn max_len_param() -> ParamSpec {
    ParamSpec::i64(
        "max_len",
        0,
        0,
        i64::MAX,
        "divisor of seq_mean_token_sum_norm (0 = T)",
    )
}

/// Row denominators `den_i` of an aggregation mode.
pub fn denominators(agg: &str, mask: &[f64], n: usize, t: usize, max_len: i64) -> Vec<f64> {
    match agg {
        "token_mean" => {
            let all: f64 = mask.iter().sum();
            vec![all.max(1.0) / n.max(1) as f64; n]
        }
        "seq_mean_token_mean" => (0..n)
            .map(|i| mask[i * t..(i + 1) * t].iter().sum::<f64>().max(1.0))
            .collect(),
        "seq_mean_token_sum" => vec![1.0; n],
        _ => vec![
            if max_len > 0 {
                max_len as f64
            } else {
                t.max(1) as f64
            };
            n
        ],
    }
}

/// The PPO clipped surrogate of one token and its derivative in `logp`.
///
/// `δ = logp − old` (clamped to `[−20, 20]` first when `clamp`, with zero gradient beyond),
/// `r = e^δ`, `C = max(−A r, −A clip(r, 1−lo, 1+hi))`; with a dual clip `c` (`Some(c)`, c > 1)
/// and `A < 0`: `ℓ = min(−A c, C)`. The derivative is `−A r` on the active set
/// `{A ≥ 0: r ≤ 1+hi} ∪ {A < 0: 1−lo ≤ r ≤ c}` (closed ends), else 0.
pub fn clipped_surrogate(
    delta: f64,
    a: f64,
    lo: f64,
    hi: f64,
    dual: Option<f64>,
    clamp: bool,
) -> (f64, f64) {
    let (d, dead) = if clamp && delta.abs() >= 20.0 {
        (delta.clamp(-20.0, 20.0), true)
    } else {
        (delta, false)
    };
    let r = d.exp();
    let c = (-a * r).max(-a * r.clamp(1.0 - lo, 1.0 + hi));
    let (loss, active) = if a >= 0.0 {
        (c, r <= 1.0 + hi)
    } else {
        match dual {
            Some(cc) => ((-a * cc).min(c), r >= 1.0 - lo && r <= cc),
            None => (c, r >= 1.0 - lo),
        }
    };
    (loss, if active && !dead { -a * r } else { 0.0 })
}

/// Check the 0/1 `mask` (row-major `[N, T]`) and return the `loss_agg` row denominators; the
/// CPU driver and the GPU glue share it.
pub fn mask_denominators(
    id: &str,
    p: &Params,
    mask: &[f64],
    n: usize,
    t: usize,
) -> Result<Vec<f64>> {
    check_values(id, "mask", mask, |m| m == 0.0 || m == 1.0, "is not 0 or 1")?;
    Ok(denominators(
        p.choice("loss_agg"),
        mask,
        n,
        t,
        p.i64("max_len"),
    ))
}

/// Run a token-level loss: `f(i, t)` gives `ℓ_t` and `∂ℓ_t/∂logp` for token `t` of row `i`.
/// The logits input is input 0 (`[N, T]`, differentiable); `mask` is the row-major 0/1 mask.
pub fn run_tokens<F>(
    spec: &LossSpec,
    p: &Params,
    c: &mut Compute<'_>,
    mask: &[f64],
    f: F,
) -> Result<()>
where
    F: Fn(usize, usize) -> (f64, f64),
{
    let id = spec.id.as_str();
    let (n, t) = (c.dim("N"), c.dim("T"));
    let den = mask_denominators(id, p, mask, n, t)?;
    run_rows(spec, c, n, n as f64, |i, g| {
        let mut l = 0.0;
        for tt in 0..t {
            if mask[i * t + tt] == 0.0 {
                continue;
            }
            let (lt, dt) = f(i, tt);
            l += lt;
            g.set(0, tt, dt / den[i]);
        }
        Ok(l / den[i])
    })
}

/// GPU glue shared by the family: kernels are the per-sample contract with `family.wgsl`
/// (the clipped surrogate, the `loss_agg` denominators) in front of each loss's source.
#[cfg(feature = "wgpu")]
pub mod gpu {
    use crate::compute::Compute;
    use crate::error::Result;
    use crate::params::Params;

    /// The family's shared WGSL.
    pub const FAMILY: &str = include_str!("family.wgsl");

    /// Read input `k` (host or device) as f64.
    pub fn read_f64(id: &str, c: &Compute<'_>, k: usize) -> Result<Vec<f64>> {
        let t = c
            .get(k)
            .ok_or_else(|| crate::err!(Internal, "{id}: required input #{k} missing"))?;
        Ok(t.read_f32()?.into_iter().map(f64::from).collect())
    }

    /// Validate the mask (input `mask_k`, read back from the device when it lives there)
    /// exactly as the CPU path does, and return the host's row denominator for the kernel
    /// (`seq_mean_token_mean` computes its own per row).
    pub fn host_den(id: &str, p: &Params, c: &Compute<'_>, mask_k: usize) -> Result<f32> {
        let mask = read_f64(id, c, mask_k)?;
        let den = super::mask_denominators(id, p, &mask, c.dim("N"), c.dim("T"))?;
        Ok(den.first().copied().unwrap_or(1.0) as f32)
    }
}
