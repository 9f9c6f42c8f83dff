//! `steer`: entropy-change-aware token reweighting of the dual-clip PPO surrogate (STEER).
//!
//! **Inputs** (`[N, T]` f32): `logps` (differentiable), `old_logps`, `advantages`, `entropy`
//! (per-token policy entropy, e.g. `token_logprobs`'s `entropy`; a constant), `mask` (0/1).
//!
//! **Parameters**: `clip_low` (0.2, `[0, 1)`), `clip_high` (0.28, `[0, ∞)`), `clip_ratio_c`
//! (10, `(1, ∞)`), `mapping` (`linear|exp`), `weight_min` (0.8, `(0, 1]`), `weight_max` (1.2,
//! `≥ weight_min`; linear only), `loss_agg` (`token_mean`), `max_len` (0).
//!
//! **Math**: per-token weights, constants (no gradient flows through them, as in the official
//! code): `p = clamp(e^{logp}, 1e-8, 1 − 1e-8)`, `Ω = |A/clamp(e^{old}, 1e-8, 1) · p(1−p)(log p +
//! H)|` (non-finite → 0); `min`/`max` of Ω over all masked tokens of the call; linear:
//! `w = clamp(w_max − (Ω − min)(w_max − w_min)/(max − min), w_min, w_max)` (`(w_min + w_max)/2`
//! when `max = min`); exp: `k = −ln(w_min)/max(max Ω, 0.02)`, `w = clamp(e^{−kΩ}, w_min, 1)`.
//! Loss: `w ×` the dual-clip surrogate with δ clamped to `[−20, 20]`, aggregated by `loss_agg`;
//! gradient `w ×` the clip rule `× mask/den_i`.
//!
//! **The gradient is not the derivative of the value**: the weights depend on `logps` but are
//! detached (official code), so a finite-difference check of `logps` does not apply; the
//! goldens differentiate a reference with the weights under a stop-gradient instead.
//!
//! **Source**: *Rethinking Entropy Interventions in RLVR: An Entropy Change Perspective*
//! (official zz-haooo/STEER, verl `entropy_control` policy loss). The factor is `p(1−p)` as in
//! the official code (a variable name there suggests `p(1−p)²`); min/max are over the tensors
//! of one call (the official code: one micro-batch). Defaults from its linear script.
//!
//! **GPU path**: two passes in f32. Pass 1 (`steer_minmax.wgsl`) computes Ω of every token and
//! folds the min and max over the masked tokens with workgroup reductions and `atomicMin` /
//! `atomicMax` on the bit patterns (Ω ≥ 0, so the bits order like the values; min and max are
//! exact, so the result is deterministic); the two values are read back (8 bytes) and passed
//! as constants to pass 2, `steer.wgsl` under the per-sample kernel contract (one invocation
//! per row: Ω again through the same function, the weight, the clipped surrogate, a
//! blocked row sum, `lk_acc`). The mask check and the `loss_agg` denominator run on the host with
//! the CPU's functions. In f32, `1 − 1e-8` rounds to 1, so `1 − p` comes from `expm1`.

use super::ppo_clip::{mask_input, token_inputs};
use super::{agg_param, clipped_surrogate, max_len_param};
use crate::bail;
use crate::compute::Compute;
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::pairs::{required, run_tokens};
use crate::params::{
    ParamSpec,
    ParamValue::{Enum, F64},
    Params,
};
use crate::spec::{Domain, InputSpec, LossSpec};
use rayon::prelude::*;

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "steer",
        "rl",
        "STEER: entropy-change-aware token reweighting of the dual-clip PPO surrogate",
        "Rethinking Entropy Interventions in RLVR: An Entropy Change Perspective (official zz-haooo/STEER)",
    );
    let spec = token_inputs(spec)
        .input(
            InputSpec::f32("entropy", "N,T")
                .domain(Domain::NonNegative)
                .doc("per-token policy entropy (constant)"),
        )
        .input(mask_input())
        .param(ParamSpec::f64("clip_low", 0.2, 0.0, 1.0, "lower clip epsilon").open_max())
        .param(ParamSpec::f64(
            "clip_high",
            0.28,
            0.0,
            f64::INFINITY,
            "upper clip epsilon",
        ))
        .param(
            ParamSpec::f64_open_min(
                "clip_ratio_c",
                10.0,
                1.0,
                f64::INFINITY,
                "dual-clip bound for negative advantages",
            )
            .open_max(),
        )
        .param(ParamSpec::choice(
            "mapping",
            "linear",
            &["linear", "exp"],
            "map from the entropy-change score to the token weight",
        ))
        .param(ParamSpec::f64_open_min(
            "weight_min",
            0.8,
            0.0,
            1.0,
            "smallest token weight",
        ))
        .param(
            ParamSpec::f64_open_min(
                "weight_max",
                1.2,
                0.0,
                f64::INFINITY,
                "largest token weight (linear; >= weight_min)",
            )
            .open_max(),
        )
        .param(agg_param("token_mean"))
        .param(max_len_param());
    LossDef::new(spec, Steer)
        .gpu(crate::custom_gpu!(Steer))
        .surrogate_gradient(
            "the token weights depend on logps but are detached, as in the official code",
        )
        .test_params(&[("mapping", Enum(1))])
        .test_params(&[
            ("loss_agg", Enum(1)),
            ("weight_min", F64(0.5)),
            ("weight_max", F64(2.0)),
        ])
        .test_params(&[
            ("mapping", Enum(1)),
            ("weight_min", F64(0.3)),
            ("clip_ratio_c", F64(3.0)),
        ])
}

/// The implementation.
pub struct Steer;

/// How Ω maps to a weight: `exp` or linear, and the weight bounds.
#[derive(Clone, Copy, Debug)]
pub struct Mapping {
    /// Exponential mapping (else linear).
    pub exp: bool,
    /// Smallest weight.
    pub wmin: f64,
    /// Largest weight (linear).
    pub wmax: f64,
}

/// The detached per-token weights from `logps`, `old_logps`, `advantages`, `entropy`, `mask`
/// (computed in f64, in parallel; min and max are exact, so the order does not matter).
pub fn weights(
    lp: &[f32],
    old: &[f32],
    adv: &[f32],
    ent: &[f32],
    mask: &[f32],
    m: Mapping,
) -> Vec<f64> {
    let Mapping {
        exp: exp_map,
        wmin,
        wmax,
    } = m;
    let f = |x: f32| f64::from(x);
    let omega: Vec<f64> = (0..lp.len())
        .into_par_iter()
        .with_min_len(1 << 12)
        .map(|j| {
            let p = f(lp[j]).exp().clamp(1e-8, 1.0 - 1e-8);
            let o = (f(adv[j]) / f(old[j]).exp().clamp(1e-8, 1.0)
                * p
                * (1.0 - p)
                * (p.ln() + f(ent[j])))
            .abs();
            if o.is_finite() { o } else { 0.0 }
        })
        .collect();
    let (lo, hi) = omega
        .par_iter()
        .zip(mask)
        .with_min_len(1 << 12)
        .filter(|(_, m)| **m != 0.0)
        .map(|(o, _)| (*o, *o))
        .reduce(
            || (f64::INFINITY, f64::NEG_INFINITY),
            |a, b| (a.0.min(b.0), a.1.max(b.1)),
        );
    omega
        .par_iter()
        .with_min_len(1 << 12)
        .map(|&o| {
            if exp_map {
                let k = -wmin.ln() / hi.max(0.02);
                (-k * o).exp().clamp(wmin, 1.0)
            } else if hi > lo {
                (wmax - (o - lo) * (wmax - wmin) / (hi - lo)).clamp(wmin, wmax)
            } else {
                0.5 * (wmin + wmax)
            }
        })
        .collect()
}

/// Pass 1 on the GPU: min and max of Ω over the masked tokens, in row chunks that fit a
/// binding.
#[cfg(feature = "wgpu")]
fn omega_range(dev: &crate::backend::wgpu::GpuDevice, c: &Compute<'_>) -> Result<(f32, f32)> {
    use crate::backend::wgpu::per_sample::input_chunk;
    use crate::backend::wgpu::{BindKind, PRELUDE, PipelineKey, buffers, buffers::Window, launch};
    let id = "steer";
    let (n, t) = (c.dim("N"), c.dim("T"));
    let src = format!(
        "{PRELUDE}\n{}\n{}",
        include_str!("steer_omega.wgsl"),
        include_str!("steer_minmax.wgsl")
    );
    let mut kinds = vec![BindKind::Uniform];
    kinds.extend([BindKind::Read; 5]);
    kinds.push(BindKind::ReadWrite);
    let (bgl, pl) = dev.layout("steer/minmax", &kinds);
    let pipe = dev.pipelines.get_with_layout(
        dev,
        &PipelineKey::new("steer/minmax", &src, "main", 256, &[]),
        &src,
        Some(&pl),
    )?;
    let chunk = if t == 0 {
        n.max(1)
    } else {
        launch::rows_per_chunk(dev.max_binding_bytes(), t, t, 4, 0, id)?.max(1)
    };
    let m = buffers::upload(dev, bytemuck::cast_slice(&[0x7f7f_ffffu32, 0u32]))?;
    let mut out = [0u8; 8];
    dev.scoped(id, || {
        let mut r0 = 0usize;
        loop {
            let r1 = (r0 + chunk).min(n);
            let mut enc = dev
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(id) });
            if r1 > r0 && t > 0 {
                let mut ins = Vec::new();
                for k in 0..5 {
                    let tk = c
                        .get(k)
                        .ok_or_else(|| crate::err!(Internal, "{id}: input #{k} missing"))?;
                    ins.push(input_chunk(dev, &mut enc, id, "", tk, Some((r0, r1)))?);
                }
                let count = ((r1 - r0) * t) as u32;
                let ubuf = buffers::uniform(dev, bytemuck::cast_slice(&[count, 0u32, 0, 0]));
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: Window::whole(&ubuf).resource(),
                }];
                for (k, p) in ins.iter().enumerate() {
                    entries.push(wgpu::BindGroupEntry {
                        binding: 1 + k as u32,
                        resource: Window::whole(p.buf()).resource(),
                    });
                }
                entries.push(wgpu::BindGroupEntry {
                    binding: 6,
                    resource: Window::whole(m.buf()).resource(),
                });
                let bg = dev.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(id),
                    layout: &bgl,
                    entries: &entries,
                });
                let (gx, gy) = launch::grid(
                    (count as u64).div_ceil(256),
                    dev.limits.max_compute_workgroups_per_dimension,
                )?;
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(id),
                        timestamp_writes: None,
                    });
                    pass.set_pipeline(&pipe);
                    pass.set_bind_group(0, &bg, &[]);
                    pass.dispatch_workgroups(gx, gy, 1);
                }
                if r1 < n {
                    dev.submit_wait(vec![enc.finish()])?;
                    r0 = r1;
                    continue;
                }
            }
            return buffers::submit_and_read(dev, enc, &mut [(m.buf(), 0, &mut out)]);
        }
    })?;
    let v: &[u32] = bytemuck::cast_slice(&out);
    Ok((f32::from_bits(v[0]), f32::from_bits(v[1])))
}

/// The host constants of the GPU kernel (`LK_C_*`, after the parameters): `den`, the
/// `loss_agg` row denominator of the modes that use one value for every row, and
/// `omega_min`, `omega_max`, the range of Omega over the masked tokens (the first pass).
pub const GPU_HOST_CONSTS: &[&str] = &["den", "omega_min", "omega_max"];

#[cfg(feature = "wgpu")]
impl crate::exec::gpu::GpuLoss for Steer {
    fn compute_gpu(
        &self,
        dev: &crate::backend::wgpu::GpuDevice,
        spec: &LossSpec,
        p: &Params,
        c: &mut Compute<'_>,
    ) -> Result<()> {
        use crate::backend::wgpu::PerSampleOpts;
        use crate::backend::wgpu::per_sample::LazyKernel;
        static KERNEL: LazyKernel = LazyKernel::with_host_consts(
            &[
                crate::backend::wgpu::PRELUDE,
                super::gpu::FAMILY,
                include_str!("steer_omega.wgsl"),
            ],
            include_str!("steer.wgsl"),
            crate::backend::wgpu::PerSampleWgsl::new,
            GPU_HOST_CONSTS,
        );
        let den = super::gpu::host_den("steer", p, c, 4)?;
        let t = c.dim("T") as u64;
        crate::backend::wgpu::per_sample::check_loop_iterations(dev, "steer", 2 * t)?;
        let (lo, hi) = omega_range(dev, c)?;
        let consts = [("den", den), ("omega_min", lo), ("omega_max", hi)];
        KERNEL.run_with_consts(dev, spec, p, c, PerSampleOpts::default(), &consts)
    }
}

impl LossImpl for Steer {
    fn check_params(&self, _spec: &LossSpec, p: &Params) -> Result<()> {
        let (a, b) = (p.f64("weight_min"), p.f64("weight_max"));
        if b < a {
            bail!(
                InvalidParam,
                "steer: weight_max = {b} is below weight_min = {a}"
            );
        }
        Ok(())
    }

    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let id = "steer";
        let lp = required(id, c, 0)?;
        let old = required(id, c, 1)?;
        let adv = required(id, c, 2)?;
        let ent = required(id, c, 3)?;
        let mask = required(id, c, 4)?;
        let w = weights(
            lp.as_f32(),
            old.as_f32(),
            adv.as_f32(),
            ent.as_f32(),
            mask.as_f32(),
            Mapping {
                exp: p.choice("mapping") == "exp",
                wmin: p.f64("weight_min"),
                wmax: p.f64("weight_max"),
            },
        );
        let (lo, hi, cc) = (p.f64("clip_low"), p.f64("clip_high"), p.f64("clip_ratio_c"));
        let t = c.dim("T");
        run_tokens(spec, p, c, mask.as_f32(), |i, tt| {
            let j = i * t + tt;
            let (l, d) = clipped_surrogate(lp.at(j) - old.at(j), adv.at(j), lo, hi, Some(cc), true);
            (w[j] * l, w[j] * d)
        })
    }
}
