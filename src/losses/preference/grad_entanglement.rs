//! `grad_entanglement`: the gradient-entanglement diagnostic of margin-based alignment (no
//! gradient).
//!
//! **Inputs**: `grad_chosen [B,D]`, `grad_rejected [B,D]`: `∇θ log π(y_w)` and `∇θ log
//! π(y_l)` per pair, flattened (B = 1 for batch-level gradients). Nothing is differentiable.
//!
//! **Parameters**: `lambda_w` λ_w, `lambda_l` λ_l (1, `(0, ∞)`): the margin is `m = λ_w log π_w
//! − λ_l log π_l` (e.g. `1/|y|` for SimPO, 1 for DPO).
//!
//! **Output**: the auxiliary output `stats [B,8]`, per pair: `ip = ⟨g_w, g_l⟩`, `n_w = ‖g_w‖²`,
//! `n_l = ‖g_l‖²`, `cos = ip/√(n_w n_l)`, `ρ_w = ip/n_w`, `ρ_l = ip/n_l`, `δ_w = λ_w n_w − λ_l
//! ip`, `δ_l = λ_w ip − λ_l n_l` (ratios and cos are 0 where a norm is 0). One gradient step
//! on a decreasing margin loss changes log π_w by ∝ δ_w and log π_l by ∝ δ_l: the chosen
//! log-prob rises iff `ip < (λ_w/λ_l) n_w`, the rejected one falls iff `ip < (λ_l/λ_w) n_l`.
//! The per-pair value (the `none` output, reduced by `mean`/`sum` over B) is `cos`. Sums are
//! accumulated in f64.
//!
//! **Source**: *A Common Pitfall of Margin-based Language Model Alignment: Gradient
//! Entanglement*. The paper states these conditions on the inner product relative to the
//! norms; the first-order changes are its decomposition of the margin gradient.
//!
//! **GPU path**: `grad_entanglement.wgsl`, its own kernel: one workgroup of 256 invocations
//! per pair (so B = 1 with a full parameter count D still uses a whole workgroup), each
//! summing a strided share of the row with compensation in f32, then a fixed-order tree
//! reduction (deterministic); rows are chunked to fit a binding. llvmpipe (lavapipe) stops a
//! loop after 65535 iterations, so there D is limited to 256·65535 ≈ 16.7M per pair.

use crate::compute::Compute;
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::pairs::{required, run_rows};
use crate::params::{ParamSpec, ParamValue::F64, Params};
use crate::spec::{AuxSpec, InputSpec, LossSpec};
use rayon::prelude::*;

const ID: &str = "grad_entanglement";

/// The column names of `stats`, in order.
pub const STATS: [&str; 8] = [
    "ip", "n_w", "n_l", "cos", "rho_w", "rho_l", "delta_w", "delta_l",
];

/// The registry entry.
pub fn def() -> LossDef {
    let lam = |name: &str, doc: &str| {
        ParamSpec::f64_open_min(name, 1.0, 0.0, f64::INFINITY, doc).open_max()
    };
    let spec = LossSpec::new(
        ID,
        "preference",
        "Gradient-entanglement diagnostic: inner product, norms, cosine and first-order log-prob changes of chosen/rejected gradients (no gradient)",
        "A Common Pitfall of Margin-based Language Model Alignment: Gradient Entanglement",
    )
    .rows("B")
    .input(InputSpec::f32("grad_chosen", "B,D").doc("gradient of log pi(y_w) per pair, flattened"))
    .input(InputSpec::f32("grad_rejected", "B,D").doc("gradient of log pi(y_l) per pair, flattened"))
    .param(lam("lambda_w", "weight of log pi_w in the margin"))
    .param(lam("lambda_l", "weight of log pi_l in the margin"))
    .aux(AuxSpec::new(
        "stats",
        "B,8",
        "ip, n_w, n_l, cos, rho_w, rho_l, delta_w, delta_l per pair",
    ));
    LossDef::new(spec, GradEntanglement)
        .gpu(crate::custom_gpu!(GradEntanglement))
        .test_params(&[("lambda_w", F64(0.25)), ("lambda_l", F64(0.1))])
}

/// The implementation.
pub struct GradEntanglement;

/// The eight statistics of one pair.
pub fn stats(gw: &[f32], gl: &[f32], lw: f64, ll: f64) -> [f64; 8] {
    let (mut ip, mut nw, mut nl) = (0.0f64, 0.0f64, 0.0f64);
    for (&a, &b) in gw.iter().zip(gl) {
        let (a, b) = (f64::from(a), f64::from(b));
        ip += a * b;
        nw += a * a;
        nl += b * b;
    }
    let ratio = |x: f64, d: f64| if d == 0.0 { 0.0 } else { x / d };
    [
        ip,
        nw,
        nl,
        ratio(ip, (nw * nl).sqrt()),
        ratio(ip, nw),
        ratio(ip, nl),
        lw * nw - ll * ip,
        lw * ip - ll * nl,
    ]
}

#[cfg(feature = "wgpu")]
impl crate::exec::gpu::GpuLoss for GradEntanglement {
    fn compute_gpu(
        &self,
        dev: &crate::backend::wgpu::GpuDevice,
        _spec: &LossSpec,
        p: &Params,
        c: &mut Compute<'_>,
    ) -> Result<()> {
        use crate::backend::wgpu::buffers::{self, Window};
        use crate::backend::wgpu::per_sample::input_chunk;
        use crate::backend::wgpu::{BindKind, PRELUDE, PipelineKey, launch};
        use crate::reduction::RowReducer;
        let (b, d) = (c.dim("B"), c.dim("D"));
        let (lw, ll) = (p.f64("lambda_w") as f32, p.f64("lambda_l") as f32);
        let iters = (d as u64).div_ceil(256);
        crate::backend::wgpu::per_sample::check_loop_iterations(dev, ID, iters)?;
        let src = format!("{PRELUDE}\n{}", include_str!("grad_entanglement.wgsl"));
        let kinds = [
            BindKind::Uniform,
            BindKind::Read,
            BindKind::Read,
            BindKind::ReadWrite,
        ];
        let (bgl, pl) = dev.layout("grad_entanglement", &kinds);
        let pipe = dev.pipelines.get_with_layout(
            dev,
            &PipelineKey::new(ID, &src, "main", 256, &[]),
            &src,
            Some(&pl),
        )?;
        let maxb = dev.max_binding_bytes();
        let chunk = launch::rows_per_chunk(maxb, d.max(8), d.max(8), 4, 0, ID)?.max(1);
        let mut all = vec![0f32; b * 8];
        dev.scoped(ID, || {
            let mut r0 = 0usize;
            while r0 < b {
                let r1 = (r0 + chunk).min(b);
                let rows = r1 - r0;
                let mut enc = dev
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(ID) });
                let mut ins = Vec::new();
                for k in 0..2 {
                    let t = c
                        .get(k)
                        .ok_or_else(|| crate::err!(Internal, "{ID}: input #{k} missing"))?;
                    ins.push(input_chunk(dev, &mut enc, ID, "", t, Some((r0, r1)))?);
                }
                let out = dev.pool.take(dev, (rows * 32) as u64, buffers::STORAGE)?;
                let u: [u32; 4] = [rows as u32, d as u32, lw.to_bits(), ll.to_bits()];
                let ub = buffers::uniform(dev, bytemuck::cast_slice(&u));
                let bg = dev.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(ID),
                    layout: &bgl,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: Window::whole(&ub).resource(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: Window::whole(ins[0].buf()).resource(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: Window::whole(ins[1].buf()).resource(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 3,
                            resource: Window::whole(out.buf()).resource(),
                        },
                    ],
                });
                let (gx, gy) =
                    launch::grid(rows as u64, dev.limits.max_compute_workgroups_per_dimension)?;
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(ID),
                        timestamp_writes: None,
                    });
                    pass.set_pipeline(&pipe);
                    pass.set_bind_group(0, &bg, &[]);
                    pass.dispatch_workgroups(gx, gy, 1);
                }
                let dst: &mut [f32] = &mut all[r0 * 8..r1 * 8];
                buffers::submit_and_read(
                    dev,
                    enc,
                    &mut [(out.buf(), 0, bytemuck::cast_slice_mut(dst))],
                )?;
                r0 = r1;
            }
            Ok(())
        })?;
        let per_row: Vec<f64> = (0..b).map(|i| f64::from(all[i * 8 + 3])).collect();
        RowReducer::new(c.reduction, c.grad_output, b as f64).write_loss(&per_row, c.loss);
        if let Some(dst) = c.take_aux("stats").as_mut() {
            for i in 0..b {
                dst.data[i * dst.row_stride..i * dst.row_stride + 8]
                    .copy_from_slice(&all[i * 8..i * 8 + 8]);
            }
        }
        Ok(())
    }
}

impl LossImpl for GradEntanglement {
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let (b, d) = (c.dim("B"), c.dim("D"));
        let (lw, ll) = (p.f64("lambda_w"), p.f64("lambda_l"));
        let gw = required(ID, c, 0)?;
        let gl = required(ID, c, 1)?;
        let (gw, gl) = (gw.as_f32(), gl.as_f32());
        let all: Vec<[f64; 8]> = (0..b)
            .into_par_iter()
            .map(|i| stats(&gw[i * d..(i + 1) * d], &gl[i * d..(i + 1) * d], lw, ll))
            .collect();
        run_rows(spec, c, b, b as f64, |i, _| Ok(all[i][3]))?;
        if let Some(dst) = c.take_aux("stats").as_mut() {
            for (i, s) in all.iter().enumerate() {
                for (j, v) in s.iter().enumerate() {
                    dst.data[i * dst.row_stride + j] = *v as f32;
                }
            }
        }
        Ok(())
    }
}
