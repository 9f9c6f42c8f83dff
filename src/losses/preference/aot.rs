//! `aot`: Alignment via Optimal Transport, distributional preference alignment by sorting
//! (batch-level).
//!
//! **Inputs** (`[B]`): `policy_chosen_logps`, `policy_rejected_logps` (differentiable);
//! `ref_chosen_logps`, `ref_rejected_logps` (required).
//!
//! **Parameters**: `variant` (`paired|unpaired`), `beta` β (0.1, `(0, ∞)`), `label_smoothing`
//! ε (0, `[0, 0.5)`).
//!
//! **Math**: paired `u = pc − pr`, `v = rc − rr` (policy margins against reference margins);
//! unpaired `u = pc − rc`, `v = pr − rr` (chosen log-ratios against rejected log-ratios, no
//! pairing needed). Both are sorted ascending (stable by index: the k-th smallest `u_(k)`,
//! `v_(k)`), which is the optimal 1-D transport plan between the two empirical distributions;
//! `D_k = u_(k) − v_(k)`, `ℓ_k = (1−ε)softplus(−βD_k) + ε softplus(βD_k)`. The loss is one
//! scalar over the batch: `mean` = `(1/B)Σ_k ℓ_k`, `sum` = `Σ_k ℓ_k`; `none` is refused
//! (`Unsupported`, the registry's status for every batch-level loss; the spec names it an
//! invalid parameter).
//! Gradient: `g_k = β[−(1−ε)σ(−βD_k) + εσ(βD_k)]` (times the reduction factor) goes to the
//! input rows that were sorted into place k: `∂/∂u_{π_u(k)} = g_k`, `∂/∂v_{π_v(k)} = −g_k`;
//! paired `∂/∂pc = ∂/∂u`, `∂/∂pr = −∂/∂u`; unpaired `∂/∂pc = ∂/∂u`, `∂/∂pr = ∂/∂v`. Ties use
//! the stable-sort permutation (one valid subgradient). B = 1 is conservative DPO on one pair.
//!
//! **Source**: *Distributional Preference Alignment of LLMs via Optimal Transport* (TRL
//! `DPOTrainer` loss types `aot` = paired, `aot_unpaired` = unpaired). Follows TRL; label
//! smoothing is TRL's addition (ε = 0 is the paper).
//!
//! **GPU path**: `aot.wgsl`, its own kernels (not the per-sample contract: the terms couple
//! rows). The keys of `u` and `v` (order-preserving u32 images of the f32 values, with the
//! pair index as tie-break, so the order is the CPU's stable `total_cmp` sort) are sorted by
//! a bitonic network in global memory (one dispatch per stage, any B whose `16·P` bytes fit a
//! binding, `P` = B rounded up to a power of two; larger batches are `Unsupported`); a last
//! pass computes each sorted term and writes `g_k`, already scaled by the reduction and the
//! upstream gradient, to the rows sorted into place k. The B terms are read back and summed
//! in f64 like every reduction. Values are f32; the order can differ from the CPU's only
//! where two margins differ by less than f32 rounding.

use super::{policy_inputs, ref_inputs};
use crate::backend::cpu::{sigmoid, softplus};
use crate::compute::Compute;
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::pairs::{finish_batch, required_f64};
use crate::params::{
    ParamSpec,
    ParamValue::{Enum, F64},
    Params,
};
use crate::spec::LossSpec;

const ID: &str = "aot";

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        ID,
        "preference",
        "AOT: distributional preference alignment by optimal transport (sorted margins or log-ratios), batch-level",
        "Distributional Preference Alignment of LLMs via Optimal Transport (TRL DPOTrainer aot, aot_unpaired)",
    )
    .rows("B")
    .batch_level();
    let spec = ref_inputs(policy_inputs(spec), false)
        .param(ParamSpec::choice(
            "variant",
            "paired",
            &["paired", "unpaired"],
            "paired: sort policy and reference margins; unpaired: sort chosen and rejected log-ratios",
        ))
        .param(super::dpo::beta_param(0.1))
        .param(
            ParamSpec::f64(
                "label_smoothing",
                0.0,
                0.0,
                0.5,
                "epsilon: conservative smoothing of each sorted term",
            )
            .open_max(),
        );
    LossDef::new(spec, Aot)
        .gpu(crate::custom_gpu!(Aot))
        .test_params(&[("beta", F64(0.5)), ("label_smoothing", F64(0.2))])
        .test_params(&[("variant", Enum(1))])
        .test_params(&[
            ("variant", Enum(1)),
            ("beta", F64(0.7)),
            ("label_smoothing", F64(0.1)),
        ])
}

/// The implementation.
pub struct Aot;

/// Indices sorting `x` ascending, stable (ties keep index order).
fn argsort(x: &[f64]) -> Vec<usize> {
    let mut p: Vec<usize> = (0..x.len()).collect();
    p.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    p
}

#[cfg(feature = "wgpu")]
impl crate::exec::gpu::GpuLoss for Aot {
    fn compute_gpu(
        &self,
        dev: &crate::backend::wgpu::GpuDevice,
        _spec: &LossSpec,
        p: &Params,
        c: &mut Compute<'_>,
    ) -> Result<()> {
        use crate::backend::wgpu::buffers::WgpuBuffer;
        use crate::backend::wgpu::buffers::{self, Window};
        use crate::backend::wgpu::per_sample::input_chunk;
        use crate::backend::wgpu::{BindKind, PRELUDE, PipelineKey, launch};
        use crate::reduction::RowReducer;
        use crate::tensor::{Data, Grad, Tensor};
        let b = c.dim("B");
        let reducer = RowReducer::new(c.reduction, c.grad_output, b as f64);
        if b == 0 {
            reducer.write_loss(&[], c.loss);
            return Ok(());
        }
        let pp = b.next_power_of_two();
        if (16 * pp) as u64 > dev.max_binding_bytes() {
            crate::bail!(
                Unsupported,
                "{ID}: B = {b} pairs: the GPU sort needs {} bytes in one binding, more than the device's largest ({} bytes)",
                16 * pp,
                dev.max_binding_bytes()
            );
        }
        let (beta, eps) = (p.f64("beta") as f32, p.f64("label_smoothing") as f32);
        let paired = (p.choice("variant") == "paired") as u32;
        let scale = reducer.grad_scale(0) as f32;
        let src = format!("{PRELUDE}\n{}", include_str!("aot.wgsl"));
        let mut kinds = vec![BindKind::Uniform];
        kinds.extend([BindKind::Read; 4]);
        kinds.extend([BindKind::ReadWrite; 4]);
        let (bgl, pl) = dev.layout("aot", &kinds);
        let pipe = |entry: &str| {
            dev.pipelines.get_with_layout(
                dev,
                &PipelineKey::new(&format!("aot/{entry}"), &src, entry, 256, &[]),
                &src,
                Some(&pl),
            )
        };
        let (keys, step, terms_p) = (pipe("aot_keys")?, pipe("aot_step")?, pipe("aot_terms")?);
        let maxd = dev.limits.max_compute_workgroups_per_dimension;
        let (gp, gb) = (
            launch::grid((pp as u64).div_ceil(256), maxd)?,
            launch::grid((b as u64).div_ceil(256), maxd)?,
        );
        let mut terms_raw = vec![0u8; b * 4];
        let mut host_g: Vec<(usize, Vec<u8>)> = Vec::new();
        dev.scoped(ID, || {
            let mut enc = dev
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(ID) });
            let mut ins = Vec::new();
            for k in 0..4 {
                let t = c
                    .get(k)
                    .ok_or_else(|| crate::err!(Internal, "{ID}: input #{k} missing"))?;
                ins.push(input_chunk(dev, &mut enc, ID, "", t, None)?);
            }
            let sortb = dev.pool.take(dev, (16 * pp) as u64, buffers::STORAGE)?;
            let outs: Vec<_> = (0..3)
                .map(|_| dev.pool.take(dev, (4 * b) as u64, buffers::STORAGE))
                .collect::<Result<_>>()?;
            let group = |k: u32, j: u32| {
                let u: [u32; 12] = [
                    b as u32,
                    pp as u32,
                    k,
                    j,
                    paired,
                    0,
                    0,
                    0,
                    beta.to_bits(),
                    eps.to_bits(),
                    scale.to_bits(),
                    0,
                ];
                let ub = buffers::uniform(dev, bytemuck::cast_slice(&u));
                let mut e = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: Window::whole(&ub).resource(),
                }];
                for (i, q) in ins.iter().chain([&sortb]).chain(&outs).enumerate() {
                    e.push(wgpu::BindGroupEntry {
                        binding: 1 + i as u32,
                        resource: Window::whole(q.buf()).resource(),
                    });
                }
                dev.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(ID),
                    layout: &bgl,
                    entries: &e,
                })
            };
            let mut stages = Vec::new();
            let mut k = 2usize;
            while k <= pp {
                let mut j = k / 2;
                while j >= 1 {
                    stages.push(group(k as u32, j as u32));
                    j /= 2;
                }
                k *= 2;
            }
            let g0 = group(0, 0);
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(ID),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&keys);
                pass.set_bind_group(0, &g0, &[]);
                pass.dispatch_workgroups(gp.0, gp.1, 1);
                pass.set_pipeline(&step);
                for g in &stages {
                    pass.set_bind_group(0, g, &[]);
                    pass.dispatch_workgroups(gp.0, gp.1, 1);
                }
                pass.set_pipeline(&terms_p);
                pass.set_bind_group(0, &g0, &[]);
                pass.dispatch_workgroups(gb.0, gb.1, 1);
            }
            // Gradients: copied into device destinations, read back for host ones.
            let mut holders = Vec::new();
            for (slot, q) in [(0usize, &outs[1]), (1, &outs[2])] {
                let dst = match (&c.grads[slot], c.get(slot)) {
                    (Grad::None, _) => continue,
                    (Grad::Device(o), _) => {
                        Some((o.data.buffer.wgpu(), o.data.offset, o.row_stride))
                    }
                    (
                        Grad::InPlace,
                        Some(Tensor {
                            data: Data::Device(d),
                            row_stride,
                            ..
                        }),
                    ) => Some((d.buffer.wgpu(), d.offset, *row_stride)),
                    _ => None,
                };
                match dst {
                    Some((buf, off, stride)) => {
                        if stride == 1 {
                            enc.copy_buffer_to_buffer(
                                q.buf(),
                                0,
                                &buf.buf,
                                (off * 4) as u64,
                                (b * 4) as u64,
                            );
                        } else {
                            for i in 0..b {
                                enc.copy_buffer_to_buffer(
                                    q.buf(),
                                    (i * 4) as u64,
                                    &buf.buf,
                                    ((off + i * stride) * 4) as u64,
                                    4,
                                );
                            }
                        }
                        holders.push(buf);
                    }
                    None => host_g.push((slot, vec![0u8; b * 4])),
                }
            }
            let mut reads: Vec<(&wgpu::Buffer, u64, &mut [u8])> =
                vec![(outs[0].buf(), 0, &mut terms_raw)];
            for (slot, v) in host_g.iter_mut() {
                reads.push((outs[1 + *slot].buf(), 0, v));
            }
            buffers::submit_and_read(dev, enc, &mut reads)
        })?;
        let terms: Vec<f64> = bytemuck::cast_slice::<u8, f32>(&terms_raw)
            .iter()
            .map(|&x| f64::from(x))
            .collect();
        reducer.write_loss(&terms, c.loss);
        for (slot, v) in &host_g {
            let g: &[f32] = bytemuck::cast_slice(v);
            let Compute { inputs, grads, .. } = &mut *c;
            let (dst, ds): (&mut [f32], usize) = match (&mut grads[*slot], inputs[*slot].as_mut()) {
                (Grad::Out(o), _) => (&mut *o.data, o.row_stride),
                (Grad::InPlace, Some(t)) => match &mut t.data {
                    Data::F32InPlace(d) => (&mut **d, t.row_stride),
                    _ => crate::bail!(Internal, "{ID}: inconsistent gradient slot"),
                },
                _ => crate::bail!(Internal, "{ID}: inconsistent gradient slot"),
            };
            for (i, &x) in g.iter().enumerate() {
                dst[i * ds] = x;
            }
        }
        Ok(())
    }
}

impl LossImpl for Aot {
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let b = c.dim("B");
        let beta = p.f64("beta");
        let eps = p.f64("label_smoothing");
        let paired = p.choice("variant") == "paired";
        let [pc, pr, rc, rr] = [0, 1, 2, 3].map(|k| required_f64(ID, c, k));
        let (pc, pr, rc, rr) = (pc?, pr?, rc?, rr?);
        let (u, v): (Vec<f64>, Vec<f64>) = if paired {
            (0..b).map(|i| (pc[i] - pr[i], rc[i] - rr[i])).unzip()
        } else {
            (0..b).map(|i| (pc[i] - rc[i], pr[i] - rr[i])).unzip()
        };
        let (su, sv) = (argsort(&u), argsort(&v));
        let mut per_term = Vec::with_capacity(b);
        let mut dpc = vec![0.0; b];
        let mut dpr = vec![0.0; b];
        for k in 0..b {
            let x = beta * (u[su[k]] - v[sv[k]]);
            per_term.push((1.0 - eps) * softplus(-x) + eps * softplus(x));
            let g = beta * (-(1.0 - eps) * sigmoid(-x) + eps * sigmoid(x));
            dpc[su[k]] += g;
            if paired {
                dpr[su[k]] -= g;
            } else {
                dpr[sv[k]] -= g;
            }
        }
        let full = vec![
            c.wants_grad(0).then_some(dpc),
            c.wants_grad(1).then_some(dpr),
            None,
            None,
        ];
        finish_batch(c, b as f64, &per_term, full)
    }
}
