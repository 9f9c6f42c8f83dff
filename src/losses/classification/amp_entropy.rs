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
//! **GPU path**: the same steps on the tiled pairwise kernels of
//! [`crate::backend::wgpu::pairwise`] (row normalisation, the Gram matrix tile by tile, the
//! contraction `(G + Gᵀ) X̂` and the chain rule through the normalisation), with the row
//! softmax and entropies in `amp_entropy.wgsl` (one workgroup per row, fixed tree order);
//! scratch of `N x N` besides the features' shape. The batch mean of the `N` entropies is
//! summed on the host in f64, in row order.
//!
//! **CPU path**: the Gram matrix by the tiled pairwise kernel of
//! [`crate::backend::pairwise`], the row softmax and entropies in parallel over rows, and the
//! backward product `(G + Gᵀ) X̂` by the same kernels; `O(N²·D)`.

use rayon::prelude::*;

use crate::backend::pairwise::{
    Bwd, Operand, Product, ProductDeriv, normalise, pair_grad_left, pair_reduce, through_normalise,
};
use crate::compute::Compute;
use crate::err;
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::rows::BatchOutput;
use crate::params::{ParamSpec, ParamValue::Bool, ParamValue::F64, Params};
use crate::spec::{InputSpec, LossSpec};
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
        .gpu(crate::custom_gpu!(AmpEntropy))
        .mean_rule(crate::exec::def::MeanRule::Scalar)
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

#[cfg(feature = "wgpu")]
mod gpu {
    use super::AmpEntropy;
    use crate::backend::wgpu::pairwise::{
        FwdOp, GradArgs, GradOp, Kernels, Mat, route_grad, stage_input,
    };
    use crate::backend::wgpu::{BindKind, GpuDevice, PRELUDE};
    use crate::compute::Compute;
    use crate::error::Result;
    use crate::exec::gpu::GpuLoss;
    use crate::exec::rows::BatchOutput;
    use crate::params::Params;
    use crate::spec::LossSpec;

    const ROWS_WGSL: &str = include_str!("amp_entropy.wgsl");

    fn rows_source() -> &'static str {
        static S: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        S.get_or_init(|| format!("{PRELUDE}\n{ROWS_WGSL}"))
    }

    impl GpuLoss for AmpEntropy {
        fn compute_gpu(
            &self,
            dev: &GpuDevice,
            _spec: &LossSpec,
            p: &Params,
            c: &mut Compute<'_>,
        ) -> Result<()> {
            let id = "amp_entropy";
            let tau = p.f64("temp_inv");
            let norm = p.bool("normalize");
            let n = c.dim("N");
            let out = BatchOutput::new(c);
            if n == 0 {
                out.write(c, 0.0);
                return Ok(());
            }
            let ent = dev.scoped(id, || run(dev, c, tau, norm, out.scale))?;
            let total: f64 = ent.iter().map(|&v| v as f64).sum();
            out.write(c, total / n as f64);
            Ok(())
        }
    }

    fn run(
        dev: &GpuDevice,
        c: &mut Compute<'_>,
        tau: f64,
        norm: bool,
        scale: f64,
    ) -> Result<Vec<f32>> {
        let id = "amp_entropy";
        let (n, d) = (c.dim("N"), c.dim("D"));
        let want = c.wants_grad(0);
        let mut kn = Kernels::new(dev, id)?;
        let xb = stage_input(&mut kn, c, 0, "features")?;
        let normed = if norm {
            let xh = kn.scratch("unit features", n * d)?;
            let xn = kn.scratch("feature norms", n)?;
            kn.misc(
                "norm_rows",
                n,
                d,
                0.0,
                xb.buf(),
                None,
                xh.buf(),
                Some(xn.buf()),
            )?;
            Some((xh, xn))
        } else {
            None
        };
        let xh = normed.as_ref().map_or(xb.buf(), |p| p.0.buf());
        let gram = kn.scratch("the [N, N] similarities", n * n)?;
        let xm = Mat::rows(xh, n, d);
        kn.fwd(
            FwdOp::Product,
            xm,
            None,
            xm,
            None,
            d,
            gram.buf(),
            n,
            None,
            None,
        )?;
        let entb = kn.scratch("per-row entropies", n)?;
        let u: [u32; 8] = [
            n as u32,
            want as u32,
            0,
            0,
            (tau as f32).to_bits(),
            ((1.0 / n as f64) as f32).to_bits(),
            0,
            0,
        ];
        let grid = kn.grid(n)?;
        {
            use BindKind::*;
            kn.custom(
                "amp_entropy_rows",
                rows_source(),
                "rows",
                &[],
                &[Uniform, ReadWrite, ReadWrite],
                &u,
                &[gram.buf(), entb.buf()],
                grid,
            )?;
        }
        let mut host = Vec::new();
        if want {
            // A = scale · temp_inv · (G + Gᵀ); dL/dX̂ = A X̂.
            let a = kn.scratch("the [N, N] gradient coefficients", n * n)?;
            kn.misc(
                "sym",
                n * n,
                n,
                (scale * tau) as f32,
                gram.buf(),
                None,
                a.buf(),
                None,
            )?;
            let gx = kn.scratch("the feature gradient", n * d)?;
            kn.grad(&GradArgs {
                op: GradOp::Product,
                left: true,
                own: xh,
                m: n,
                partner: xh,
                n,
                k: d,
                c1: a.buf(),
                c2: None,
                c_rs: n,
                c_ps: 1,
                idx: None,
                out: gx.buf(),
            })?;
            if let Some((xh, xn)) = &normed {
                kn.thru_norm(n, d, xh.buf(), xn.buf(), gx.buf())?;
            }
            kn.keep(a);
            route_grad(&mut kn, c, 0, gx, n, d, &mut host)?;
        }
        let mut ev = vec![0u8; n * 4];
        {
            let eb = entb.buf().clone();
            let mut reads: Vec<(&wgpu::Buffer, &mut [u8])> = vec![(&eb, &mut ev)];
            kn.submit(c, &mut reads, host)?;
        }
        drop((xb, normed, gram, entb));
        Ok(bytemuck::cast_slice::<u8, f32>(&ev).to_vec())
    }
}
