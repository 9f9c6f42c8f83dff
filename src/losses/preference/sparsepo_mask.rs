//! `sparsepo_mask`: the model-derived token mask of SparsePO's MaPO variant, from reference-
//! model activations (a helper, no gradient).
//!
//! **Inputs**: `activations [L,N,T]` (reference-model activations per hooked layer, already
//! averaged over the hidden units by the caller), `mask [N,T]` (0/1 response tokens). Nothing
//! is differentiable.
//!
//! **Parameters**: none.
//!
//! **Output**: the auxiliary output `token_mask [N,T]`: for each layer and row, the min and
//! max over the masked tokens give `r = (a − min)/(max − min)` (`r = 1` where max = min);
//! `m = mask·mean_layers(r)`; a fully masked row is 0. The per-row value (the `none`
//! output, reduced by `mean`/`sum` over N) is the row's mask mass `Σ_t m`. Feed `token_mask`
//! to `sparsepo` as `reward_mask` in `common` mode. A `mask` value other than 0/1, or no
//! layer (L = 0) for a non-empty batch, is an invalid input.
//!
//! **Source**: the `mapo` trainer of the SparsePO code (huawei-noah/HEBO, `SparsePO/`,
//! `zn_rescale` activation mapping), for *SparsePO: Controlling Preference Alignment of LLMs
//! via Sparse Token Masks*. The official `zn_rescale` z-normalises before the min-max rescale;
//! that affine step cancels exactly, except that it divides by zero when all masked values
//! are equal, where this returns 1 (uniform mask, DPO-like weighting) instead of NaN. The
//! official code detaches the mask; so there is no gradient.
//!
//! **GPU path**: `sparsepo_mask.wgsl` under the per-sample kernel contract (one invocation per
//! row; `activations` bound whole, which must fit one binding; `token_mask` as its auxiliary
//! output), in f32. The layer and mask checks run on the host first (the CPU's code).

use crate::bail;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{check_values, required, run_rows};
use crate::params::Params;
use crate::spec::{AuxSpec, Domain, InputSpec, LossSpec};
use rayon::prelude::*;

const ID: &str = "sparsepo_mask";

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        ID,
        "preference",
        "SparsePO MaPO mask: per-layer min-max rescaled reference activations averaged over layers (no gradient)",
        "SparsePO: Controlling Preference Alignment of LLMs via Sparse Token Masks (official code huawei-noah/HEBO, SparsePO/ mapo trainer)",
    )
    .rows("N")
    .input(
        InputSpec::f32("activations", "L,N,T")
            .doc("reference-model activation per layer and token (averaged over hidden units)"),
    )
    .input(
        InputSpec::f32("mask", "N,T")
            .domain(Domain::Binary)
            .doc("1 for a response token, 0 for padding"),
    )
    .aux(AuxSpec::new(
        "token_mask",
        "N,T",
        "mask * mean over layers of the min-max rescaled activations",
    ));
    LossDef::new(spec, SparsepoMask).gpu(GpuKernel::Sample(
        SampleKernel::new(&[], include_str!("sparsepo_mask.wgsl")).iterations(gpu_iterations),
    ))
}

/// The implementation.
pub struct SparsepoMask;

/// The checks of a call (both paths): at least one layer, a 0/1 mask.
fn check_call(c: &Compute<'_>, mask: &[f32]) -> Result<()> {
    let (nl, n, t) = (c.dim("L"), c.dim("N"), c.dim("T"));
    if nl == 0 && n * t > 0 {
        bail!(InvalidInput, "{ID}: activations have no layer (L = 0)");
    }
    check_values(ID, "mask", mask, |m| m == 0.0 || m == 1.0, "is not 0 or 1")
}

/// Loop iterations of one GPU invocation: a pass over T, two per layer, one more over T.
fn gpu_iterations(_p: &Params, c: &Compute<'_>) -> u64 {
    (2 * c.dim("L") as u64 + 2) * c.dim("T") as u64
}

impl LossImpl for SparsepoMask {
    /// The layer and mask checks of the CPU path (the mask read back from the device).
    fn plan(&self, _spec: &LossSpec, _p: &Params, c: &Compute<'_>) -> Result<Plan> {
        let mask = c
            .get(1)
            .ok_or_else(|| crate::err!(Internal, "{ID}: mask missing"))?
            .read_f32()?;
        check_call(c, &mask)?;
        Ok(Plan::default())
    }
    fn compute_cpu(&self, spec: &LossSpec, _p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let (nl, n, t) = (c.dim("L"), c.dim("N"), c.dim("T"));
        let a = required(ID, c, 0)?;
        let mask = required(ID, c, 1)?;
        // The token mask of row `i` into `row`, returning its sum (the row's value).
        let mask_row = |i: usize, row: &mut [f64]| -> f64 {
            let on = |j: usize| mask.at(i * t + j) == 1.0;
            if !(0..t).any(on) {
                return 0.0;
            }
            for l in 0..nl {
                let x = |j: usize| a.at((l * n + i) * t + j);
                let (lo, hi) = (0..t)
                    .filter(|&j| on(j))
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), j| {
                        (lo.min(x(j)), hi.max(x(j)))
                    });
                for j in (0..t).filter(|&j| on(j)) {
                    row[j] += if hi > lo {
                        (x(j) - lo) / (hi - lo)
                    } else {
                        1.0
                    };
                }
            }
            for v in row.iter_mut() {
                *v /= nl as f64;
            }
            row.iter().sum()
        };
        let mut out = vec![0.0f64; n * t];
        let sums: Vec<f64> = if t == 0 {
            vec![0.0; n]
        } else {
            out.par_chunks_mut(t)
                .enumerate()
                .map(|(i, row)| mask_row(i, row))
                .collect()
        };
        run_rows(spec, c, n, n as f64, |i, _| Ok(sums[i]))?;
        if let Some(dst) = c.take_aux("token_mask").as_mut() {
            for i in 0..n {
                for j in 0..t {
                    dst.data[i * dst.row_stride + j] = out[i * t + j] as f32;
                }
            }
        }
        Ok(())
    }
}
