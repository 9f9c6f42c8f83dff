//! The GPU executors (behind the `wgpu` feature): they run a loss's kernel declaration
//! ([`crate::exec::kernel::GpuKernel`]) on a wgpu device, after the same plan step the CPU
//! path runs.
//!
//! - [`rowwise`]: the row-wise skeleton and a loss's row function.
//! - [`sample`]: the per-sample contract (builtins' kernels and plugins' `wgsl_source`).
//! - [`GpuLoss`]: the hook of a loss with passes of its own (`GpuKernel::Custom`).

pub mod rowwise;
pub mod sample;

use crate::backend::wgpu::GpuDevice;
use crate::compute::Compute;
use crate::err;
use crate::error::Result;
use crate::exec::def::LossDef;
use crate::exec::kernel::GpuKernel;
use crate::params::Params;
use crate::spec::LossSpec;

/// The GPU implementation of a loss with passes of its own.
///
/// Called with arguments already validated against the spec and with `c.plan` built (as for
/// [`crate::exec::def::LossImpl::compute_cpu`]); inputs and outputs may be host memory or
/// device buffers ([`crate::tensor::Data::Device`], [`crate::tensor::Grad::Device`]).
pub trait GpuLoss: Send + Sync {
    /// Compute on `dev`.
    fn compute_gpu(
        &self,
        dev: &GpuDevice,
        spec: &LossSpec,
        params: &Params,
        c: &mut Compute<'_>,
    ) -> Result<()>;
}

/// Run a loss's GPU kernel on `dev` (the call validated and planned).
pub fn run(def: &LossDef, dev: &GpuDevice, params: &Params, c: &mut Compute<'_>) -> Result<()> {
    let spec = &def.spec;
    match &def.gpu {
        GpuKernel::None => Err(err!(
            Internal,
            "{}: no GPU kernel is declared",
            spec.id.as_str()
        )),
        GpuKernel::Row(k) => rowwise::run(dev, k, &(k.call)(params), c),
        GpuKernel::Sample(k) => sample::run(dev, spec, params, k, c),
        GpuKernel::Custom(g) => g.compute_gpu(dev, spec, params, c),
    }
}
