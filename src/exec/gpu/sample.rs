//! The per-sample contract executor: builds a [`SampleKernel`] once (the losskit prelude for
//! builtins, the family preludes, the kernel; parsed and validated against the spec), guards
//! llvmpipe's loop limit, and runs it with the call's plan (`mean` denominator, host
//! constants).
//!
//! Mesa's llvmpipe (lavapipe, the software adapter of the tests) stops the loops of one
//! invocation after about 65535 iterations in all, and the results are then silently wrong.
//! A kernel that declares its passes over a row ([`SampleKernel::passes`]) is therefore
//! refused (`Unsupported`) on llvmpipe for rows whose length times the passes exceeds the
//! limit of [`check_loop_iterations`]; hardware adapters have no such limit.

use crate::backend::wgpu::per_sample::check_loop_iterations;
use crate::backend::wgpu::{GpuDevice, PRELUDE, PerSampleOpts, PerSampleWgsl};
use crate::compute::Compute;
use crate::error::Result;
use crate::exec::kernel::SampleKernel;
use crate::params::Params;
use crate::spec::LossSpec;

/// The kernel, built (joined, parsed and validated against `spec`) on first use.
pub fn built<'k>(spec: &LossSpec, k: &'k SampleKernel) -> Result<&'k PerSampleWgsl> {
    if let Some(b) = k.built.get() {
        return Ok(b);
    }
    let mut src = String::new();
    if k.losskit_prelude {
        src.push_str(PRELUDE);
        src.push('\n');
    }
    for p in k.preludes {
        src.push_str(p);
        src.push('\n');
    }
    src.push_str(&crate::kernel_names::host_constants(spec, k.host_consts)?);
    src.push_str(&k.source);
    let b = if k.leading_axis {
        PerSampleWgsl::with_leading_axis(spec, &src)?
    } else {
        PerSampleWgsl::new(spec, &src)?
    }
    .with_whole_inputs(k.whole_inputs);
    Ok(k.built.get_or_init(|| b))
}

/// Run the kernel on `dev` with the call's plan.
pub fn run(
    dev: &GpuDevice,
    spec: &LossSpec,
    params: &Params,
    k: &SampleKernel,
    c: &mut Compute<'_>,
) -> Result<()> {
    let id = spec.id.as_str();
    let kern = built(spec, k)?;
    if let Some(f) = k.iterations {
        check_loop_iterations(dev, id, f(params, c))?;
    } else if k.passes > 0 {
        let len = c
            .inputs
            .iter()
            .flatten()
            .map(|t| t.row_len())
            .max()
            .unwrap_or(0);
        check_loop_iterations(dev, id, len.saturating_mul(k.passes) as u64)?;
    }
    let opts = PerSampleOpts { den: c.plan.den };
    let named = std::mem::take(&mut c.plan.consts);
    let consts = crate::kernel_names::host_values(id, k.host_consts, &named)?;
    kern.compute_with_consts(dev, spec, params, c, opts, &consts)
}
