//! `amp_entropy`: the label-free information-entropy criterion of AMP (batch-level).
//!
//! The features of one batch are compared with each other: each row's softmax over its
//! temperature-scaled cosine similarities to every row of the batch (itself included) is a
//! distribution, and the loss is the mean entropy of those distributions. AMP uses the
//! gradient of this loss for first-order Taylor importance scores of MLP neurons (that
//! scoring step is outside the library).
//!
//! ```text
//! x̂_i = x_i / max(‖x_i‖, 1e-12)        (x̂ = x when normalize = false)
//! S   = temp_inv · X̂ X̂ᵀ                (N x N, diagonal included)
//! P   = row-softmax(S),  H_i = -Σ_j P_ij log P_ij   (log P from the log-softmax)
//! L   = (1/N) Σ_i H_i
//! ```
//! Gradient: `G_ij = -P_ij (log P_ij + H_i)/N`, `dL/dX̂ = temp_inv (G + Gᵀ) X̂`, then through
//! the normalisation `dL/dx_i = (I - x̂_i x̂_iᵀ)(dL/dx̂_i)/‖x_i‖`.
//!
//! **Inputs**: `features [N, D]` f32, differentiable (the embeddings of one batch; in a
//! multi-process run the caller concatenates every rank's features first). `N = 0` gives 0,
//! `N = 1` gives 0 with a zero gradient.
//!
//! **Parameters**: `temp_inv` (f64, 20, `> 0`; the DINOv2 and EVA-CLIP-bigE configs, the
//! other CLIP configs use 15), `normalize` (bool, true).
//!
//! **Batch-level**: one scalar; `mean` and `sum` both return it, `none` is refused.
//!
//! **Source**: *Adaptive MLP Pruning for Large Vision Transformers*; official code
//! visresearch/AMP (`step_entropy`, used by every shipped pruning config). The spec takes the
//! log-softmax where the code takes `log(softmax)` (NaN on underflow).
//!
//! **CPU path**: the Gram matrix by the tiled pairwise kernel of
//! [`crate::backend::pairwise`], the row softmax and entropies in parallel over rows, and the
//! backward product `(G + Gᵀ) X̂` by the same kernels; `O(N²·D)`.

use rayon::prelude::*;

use super::drivers::BatchOutput;
use crate::backend::pairwise::{
    Bwd, Operand, Product, ProductDeriv, normalise, pair_grad_left, pair_reduce, through_normalise,
};
use crate::compute::Compute;
use crate::err;
use crate::error::Result;
use crate::params::{ParamSpec, ParamValue::Bool, ParamValue::F64, Params};
use crate::registry::{InputSpec, LossDef, LossImpl, LossSpec};
use crate::tensor::Grad;

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "amp_entropy",
        "classification",
        "Mean entropy of the row-softmax of a batch's temperature-scaled cosine similarity matrix (label-free)",
        "Adaptive MLP Pruning for Large Vision Transformers; code: visresearch/AMP",
    )
    .input(
        InputSpec::f32("features", "N,D")
            .grad()
            .doc("embeddings of one batch"),
    )
    .param(ParamSpec::f64_open_min(
        "temp_inv",
        20.0,
        0.0,
        f64::INFINITY,
        "inverse temperature of the similarities",
    ))
    .param(ParamSpec::bool(
        "normalize",
        true,
        "L2-normalise the features first (cosine similarities)",
    ))
    .batch_level();
    LossDef::new(spec, AmpEntropy)
        .test_params(&[("temp_inv", F64(15.0))])
        .test_params(&[("normalize", Bool(false)), ("temp_inv", F64(0.5))])
}

/// The implementation.
pub struct AmpEntropy;

impl LossImpl for AmpEntropy {
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let id = "amp_entropy";
        let tau = p.f64("temp_inv");
        let norm = p.bool("normalize");
        let (n, d) = (c.dim("N"), c.dim("D"));
        let out = BatchOutput::new(c);
        let x = c
            .get(0)
            .ok_or_else(|| err!(Internal, "{id}: features missing"))?
            .to_f32_vec();
        if n == 0 {
            out.write(c, 0.0);
            return Ok(());
        }
        let (xh, norms) = if norm {
            normalise(&x, n, d)
        } else {
            (x, Vec::new())
        };
        let mut gram = vec![0.0f32; n * n];
        pair_reduce(
            &Product,
            Operand::new(&xh, n),
            Operand::new(&xh, n),
            d,
            &mut gram,
            None,
        );
        let want = c.wants_grad(0);
        let inv_n = 1.0 / n as f64;
        // Per row: H_i, and (when asked) G_ij written over the Gram row.
        let ent: Vec<f64> = gram
            .par_chunks_mut(n)
            .map(|row| {
                let s: Vec<f64> = row.iter().map(|&v| tau * v as f64).collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + s.iter().map(|&v| (v - m).exp()).sum::<f64>().ln();
                let h: f64 = -s
                    .iter()
                    .map(|&v| {
                        let lp = v - lse;
                        lp.exp() * lp
                    })
                    .sum::<f64>();
                if want {
                    for (g, &v) in row.iter_mut().zip(&s) {
                        let lp = v - lse;
                        *g = (-lp.exp() * (lp + h) * inv_n) as f32;
                    }
                }
                h
            })
            .collect();
        out.write(c, ent.iter().sum::<f64>() * inv_n);
        if !want {
            return Ok(());
        }
        // A = scale · temp_inv · (G + Gᵀ); dL/dX̂ = A X̂.
        let k = out.scale * tau;
        let g = &gram;
        let mut a = vec![0.0f32; n * n];
        a.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (k * (g[i * n + j] as f64 + g[j * n + i] as f64)) as f32;
            }
        });
        let mut gx = vec![0.0f32; n * d];
        pair_grad_left(
            &Bwd {
                t: &ProductDeriv,
                a1: &a,
                a2: None,
                x: &xh,
                w: &xh,
                n,
                c: n,
                d,
            },
            &mut gx,
        );
        if norm {
            through_normalise(&mut gx, &xh, &norms, d);
        }
        if let Grad::Out(t) = &mut c.grads[0] {
            let stride = t.row_stride.max(d);
            for i in 0..n {
                t.data[i * stride..i * stride + d].copy_from_slice(&gx[i * d..(i + 1) * d]);
            }
        }
        Ok(())
    }
}
