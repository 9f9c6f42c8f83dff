//! `seppo`: SePPO, Diffusion-DPO on (winning image, reference-model sample) pairs with an
//! anchor-based decision whether the reference sample is a loser or a winner.
//!
//! **Inputs** (`[B]`, all ≥ 0): `err_win` (differentiable: the policy's denoising MSE on the
//! winning image at the sampled timestep), `err_win_ref` (the reference model's MSE on the same
//! noisy input), `err_sample` (differentiable: the policy's MSE on the reference model's own
//! sample), `err_sample_ref`.
//!
//! **Parameters**: `beta` β (5000, `(0, ∞)`: Diffusion-DPO's β, which absorbs T·ω(λ_t)),
//! `criterion` (`anchor|always_lose`).
//!
//! **Math**: `d_w = err_win − err_win_ref`, `d_r = err_sample − err_sample_ref`; `anchor`:
//! `s = +1` when `d_w ≤ 0` (the policy already fits the winning anchor better than the
//! reference, so the reference sample is treated as losing), else `s = −1` (it is learnt from
//! as a winner); `always_lose`: `s = +1` (plain Diffusion-DPO with the sample as loser).
//! `x = −½β(d_w − s·d_r)`, `ℓ = softplus(−x)`; `∂ℓ/∂err_win = ½βσ(−x)`, `∂ℓ/∂err_sample =
//! −s·½βσ(−x)` (s is piecewise constant: the value jumps where `d_w` crosses 0 under
//! `anchor`). A negative MSE is an invalid input.
//!
//! **Source**: *SePPO: Semi-Policy Preference Optimization for Diffusion Alignment*
//! (DwanZhang-AI/SePPO holds inference code only); the loss form and the `−½β` scale follow
//! the public Diffusion-DPO training code. The anchor criterion is the spec's reading of
//! "use the winning image as the anchor to decide whether the reference sample is winning or
//! losing" (confidence low), kept as specified.
//!
//! **GPU path**: `seppo.wgsl`, one invocation per pair under the per-sample kernel contract,
//! after the CPU path's checks (the MSEs are read back and checked). The anchor decision
//! uses the sign of the f32 difference, which is exact, so both backends pick the same `s`.

use crate::backend::cpu::{sigmoid, softplus};
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{PairIdx, PairOut, check_pairs, check_values, required, run_pairwise};
use crate::params::{
    ParamSpec,
    ParamValue::{Enum, F64},
    Params,
};
use crate::spec::{Domain, InputSpec, LossSpec};

const ID: &str = "seppo";
const NAMES: [&str; 4] = ["err_win", "err_win_ref", "err_sample", "err_sample_ref"];

/// The registry entry.
pub fn def() -> LossDef {
    let mse = |name: &str, doc: &str| {
        InputSpec::f32(name, "B")
            .domain(Domain::NonNegative)
            .doc(doc)
    };
    let spec = LossSpec::new(
        ID,
        "preference",
        "SePPO: Diffusion-DPO against the reference model's own sample, loser or winner by the winning-image anchor",
        "SePPO: Semi-Policy Preference Optimization for Diffusion Alignment (DwanZhang-AI/SePPO, inference code only); loss form of Diffusion-DPO",
    )
    .rows("B")
    .input(mse("err_win", "policy denoising MSE on the winning image").grad())
    .input(mse("err_win_ref", "reference-model denoising MSE on the winning image"))
    .input(mse("err_sample", "policy denoising MSE on the reference model's sample").grad())
    .input(mse("err_sample_ref", "reference-model denoising MSE on its own sample"))
    .param(
        ParamSpec::f64_open_min(
            "beta",
            5000.0,
            0.0,
            f64::INFINITY,
            "Diffusion-DPO beta (absorbs T omega(lambda_t))",
        )
        .open_max(),
    )
    .param(ParamSpec::choice(
        "criterion",
        "anchor",
        &["anchor", "always_lose"],
        "anchor: the sample loses iff the policy beats the reference on the winning image; always_lose: Diffusion-DPO",
    ));
    LossDef::new(spec, Seppo)
        .gpu(GpuKernel::Sample(SampleKernel::new(
            &[super::FAMILY_WGSL],
            include_str!("seppo.wgsl"),
        )))
        .test_params(&[("beta", F64(2.0))])
        .test_params(&[("beta", F64(3.0)), ("criterion", Enum(1))])
        .test_params(&[("criterion", Enum(1))])
}

/// The implementation.
pub struct Seppo;

const IDX: PairIdx = PairIdx::new(0, 2).refs(1, 3);

/// The checks of both backends: no negative MSE (NaN propagates), then the pair checks.
fn check_mses(spec: &LossSpec, c: &Compute<'_>) -> Result<()> {
    for (k, name) in NAMES.iter().enumerate() {
        let v = required(ID, c, k)?;
        check_values(
            ID,
            name,
            v.as_f32(),
            |x| x >= 0.0 || x.is_nan(),
            "is a negative MSE",
        )?;
    }
    check_pairs(spec, c, IDX).map(drop)
}

impl LossImpl for Seppo {
    fn plan(&self, s: &LossSpec, _p: &Params, c: &Compute<'_>) -> Result<Plan> {
        (check_mses(s, c))?;
        Ok(Plan::default())
    }
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let half_beta = 0.5 * p.f64("beta");
        let anchor = p.choice("criterion") == "anchor";
        run_pairwise(spec, c, IDX, |q| {
            let (dw, dr) = (q.lr_w(), q.lr_l());
            let s = if !anchor || dw <= 0.0 { 1.0 } else { -1.0 };
            let x = -half_beta * (dw - s * dr);
            let g = half_beta * sigmoid(-x);
            Ok(PairOut {
                loss: softplus(-x),
                d_pc: g,
                d_pr: -s * g,
            })
        })?;
        Ok(())
    }
}
