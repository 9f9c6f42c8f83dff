//! GPU glue of the classification losses that run on the per-sample kernel contract
//! ([`crate::backend::wgpu::per_sample`]) with a kernel of their own: `symmetric_ce`,
//! `dco`, `spherical_z_loss`, `ldr_kl`, `aldr_kl`, `smooth_adv_comp_sum`,
//! `noisefit_hybrid`, `reward_shaped_ntp`, `categorical_value`.
//!
//! Each kernel is one `.wgsl` file next to its loss, compiled after the losskit prelude and
//! the family helpers of `sample_prelude.wgsl` (online log-sum-exp with a blocked sum,
//! blocked sums (both on the prelude's `lk_acc`), `erf`, the target/`ignore_index` test,
//! the total-order key of a float). The kernels run ONE THREAD PER ROW and stream the
//! row a few times: correct for every `C`, but not tuned for very large `C` (a row of
//! 100k classes is one invocation's serial loop).
//!
//! Mesa's llvmpipe (lavapipe, the software adapter of the tests) stops the loops of one
//! invocation after about 65535 iterations in all (measured with Mesa 22.3: a 4-pass kernel
//! goes wrong from `C = 16384`, a 6-pass one between 9000 and 16384), and the results are
//! then silently wrong. On an llvmpipe adapter [`Kernel::run`] therefore refuses (with
//! `Unsupported`) rows whose length times the kernel's pass count exceeds
//! the limit of the shared guard [`check_loop_iterations`]; hardware adapters have no such
//! limit.
//!
//! The host side validates exactly like the CPU path (the same functions), computes the
//! `mean` denominator with [`super::mean_denominator`] where rows can be ignored, and hands
//! the rest to the contract (a [`LazyKernel`]). Ignored rows (a target equal to
//! `ignore_index`) get zero loss and zero gradients from the kernel; a kernel recognises
//! them as a target outside `[0, C)` (validated targets outside it can only be
//! `ignore_index`) or equal to the `ignore_index` parameter.

use crate::backend::wgpu::per_sample::{LazyKernel, check_loop_iterations};
use crate::backend::wgpu::{GpuDevice, PRELUDE, PerSampleOpts};
use crate::compute::Compute;
use crate::err;
use crate::error::Result;
use crate::params::Params;
use crate::registry::LossSpec;

/// The family helpers prepended (after the losskit prelude) to every kernel of this module.
pub const SAMPLE_PRELUDE: &str = include_str!("sample_prelude.wgsl");

/// A per-sample-contract kernel of the family, built (parsed and validated) on first use.
pub struct Kernel {
    kernel: LazyKernel,
    passes: usize,
}

impl Kernel {
    /// A kernel from its source (without the preludes) that makes at most `passes` passes
    /// over a row (counting fixed-size work, such as histogram scans, as passes).
    pub const fn new(source: &'static str, passes: usize) -> Self {
        Kernel {
            kernel: LazyKernel::new(&[PRELUDE, SAMPLE_PRELUDE], source),
            passes,
        }
    }

    /// Run the kernel on `dev`; `den` is the `mean` denominator (`None` = the rows).
    pub fn run(
        &self,
        dev: &GpuDevice,
        spec: &LossSpec,
        p: &Params,
        c: &mut Compute<'_>,
        den: Option<f64>,
    ) -> Result<()> {
        let len = c
            .inputs
            .iter()
            .flatten()
            .map(|t| t.row_len())
            .max()
            .unwrap_or(0);
        check_loop_iterations(
            dev,
            spec.id.as_str(),
            len.saturating_mul(self.passes) as u64,
        )?;
        self.kernel.run(dev, spec, p, c, PerSampleOpts { den })
    }
}

/// Validate the `[N]` integer targets of input `k` against `C` and `ignore_index` as the
/// CPU drivers do (reading device data back), and return the `mean` denominator: the rows
/// not ignored.
pub fn target_den(id: &str, c: &Compute<'_>, k: usize, ignore_index: i64) -> Result<f64> {
    let t = c
        .get(k)
        .ok_or_else(|| err!(Internal, "{id}: target missing"))?;
    let targets = super::checked_targets(id, t, c.dim("C"), ignore_index)?;
    Ok(super::mean_denominator(&targets, ignore_index, None, None))
}
