//! RL fine-tuning family: token-level policy-gradient objectives on `[N, T]` per-token
//! log-probabilities (`token_logprobs`'s `token_logps`) with a `[N, T]` 0/1 mask.
//!
//! Each loss supplies only its per-token function to the token-level driver
//! [`run_tokens`](crate::exec::pairs::run_tokens), which checks the mask, computes the
//! `loss_agg` row denominators, aggregates each row and reduces over the `N` rows in
//! parallel. This module holds what the family shares on top of it: the `loss_agg` and
//! `max_len` parameter specs ([`agg_param`], [`max_len_param`]), the PPO clip rule
//! ([`clipped_surrogate`]) and the GPU glue ([`gpu`]). The table mapping `loss_agg` to TRL
//! and verl options is in the preference family's module doc.
//!
//! GPU: each loss is a per-sample contract kernel with `family.wgsl` (the clipped surrogate,
//! the row denominator) in front; the mask check and the denominators of the modes that do not
//! depend on the row come from [`mask_denominators`](crate::exec::pairs::mask_denominators)
//! on the host (the mask is read back when it lives on the device) and reach the kernel as a
//! constant (see [`gpu`]). One invocation loops over its row (about 2·T iterations); on
//! llvmpipe (lavapipe), whose loop limiter stops an invocation's loops after 65535
//! iterations, longer rows are refused (`Unsupported`) instead of computed wrongly; hardware
//! drivers have no such limit.

pub mod grpo;
pub mod ppo_clip;
pub mod steer;

use crate::exec::pairs::LOSS_AGG;
use crate::params::ParamSpec;

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

/// GPU glue shared by the family: kernels are the per-sample contract with `family.wgsl`
/// (the clipped surrogate, the `loss_agg` denominators) in front of each loss's source.
pub mod gpu {
    use crate::compute::Compute;
    use crate::error::Result;
    use crate::exec::pairs::{mask_denominators, required};
    use crate::params::Params;

    /// The family's shared WGSL.
    pub const FAMILY: &str = include_str!("family.wgsl");

    /// Validate the mask (input `mask_k`, read back from the device when it lives there)
    /// exactly as the CPU path does, and return the host's row denominator for the kernel
    /// (`seq_mean_token_mean` computes its own per row).
    pub fn host_den(id: &str, p: &Params, c: &Compute<'_>, mask_k: usize) -> Result<f32> {
        let mask = required(id, c, mask_k)?;
        let den = mask_denominators(id, p, mask.as_f32(), c.dim("N"), c.dim("T"))?;
        Ok(den.first().copied().unwrap_or(1.0) as f32)
    }
}
