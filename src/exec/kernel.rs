//! GPU kernels as data: what a loss declares on its definition ([`GpuKernel`],
//! `LossDef::gpu`), in every build. Whether a loss has a GPU path is read from this
//! declaration; the executors of [`crate::exec::gpu`] (behind the `wgpu` feature) run it,
//! owning the kernel caches, the prelude order and the loop guards.
//!
//! - [`GpuKernel::Row`]: a row function for the row-wise skeleton: logits `[N, C]` with one
//!   integer target per row, a loss that depends on a row through its softmax statistics
//!   (a WGSL snippet of about 16 lines, see `exec/gpu/rowwise.rs`).
//! - [`GpuKernel::Sample`]: a kernel of the per-sample contract (one invocation per row or
//!   pair writes the unscaled loss and its derivatives; the host reduces).
//! - [`GpuKernel::Custom`]: a loss with passes of its own (tiled pairwise products, sorts,
//!   fused vocabulary tiles), declared with [`custom_gpu!`](crate::custom_gpu).

use std::borrow::Cow;

use crate::exec::rowwise::RowwiseSetup;
use crate::params::Params;

/// How a loss computes on a GPU.
pub enum GpuKernel {
    /// No GPU path: a WGPU context computes host tensors on the CPU.
    None,
    /// The row-wise skeleton with the loss's row function.
    Row(RowKernel),
    /// A per-sample-contract kernel.
    Sample(SampleKernel),
    /// The loss's own passes.
    Custom(CustomGpu),
}

impl GpuKernel {
    /// Whether the declaration is a GPU path.
    pub fn exists(&self) -> bool {
        !matches!(self, GpuKernel::None)
    }
}

impl std::fmt::Debug for GpuKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GpuKernel::None => "None",
            GpuKernel::Row(_) => "Row",
            GpuKernel::Sample(_) => "Sample",
            GpuKernel::Custom(_) => "Custom",
        })
    }
}

/// The GPU implementation of a loss with passes of its own.
#[cfg(feature = "wgpu")]
pub type CustomGpu = Box<dyn crate::exec::gpu::GpuLoss>;
/// The GPU implementation of a loss with passes of its own (absent without `wgpu`).
#[cfg(not(feature = "wgpu"))]
pub type CustomGpu = ();

/// Declare a loss's own GPU implementation, `GpuKernel::Custom(Box::new(value))` where `value`
/// implements `exec::gpu::GpuLoss`; in a build without the `wgpu` feature the declaration
/// remains (so the loss still reports a GPU path) and `value` is not compiled.
#[macro_export]
macro_rules! custom_gpu {
    ($value:expr) => {{
        #[cfg(feature = "wgpu")]
        let k = $crate::exec::kernel::GpuKernel::Custom(Box::new($value));
        #[cfg(not(feature = "wgpu"))]
        let k = $crate::exec::kernel::GpuKernel::Custom(());
        k
    }};
}

/// A row function for the row-wise skeleton.
pub struct RowKernel {
    /// Kernel id (part of the pipeline key), e.g. `cross_entropy`.
    pub id: &'static str,
    /// WGSL defining `fn lk_row_loss(st: LkRowStats) -> LkRowCoef`, reading its values with
    /// `lk_param(k)` in the order [`RowCall::params`] gives them.
    pub snippet: &'static str,
    /// The skeleton's options and the snippet's values for a configuration.
    pub call: fn(&Params) -> RowCall,
}

/// Values of one call of the row-wise skeleton besides the tensors.
#[derive(Clone, Debug)]
pub struct RowCall {
    /// Input positions and the options the CPU driver also takes.
    pub setup: RowwiseSetup,
    /// Soft-cap (0 = off), applied by the skeleton before the statistics.
    pub softcap: f32,
    /// Up to 16 values for the snippet (`lk_param(k)`).
    pub params: Vec<f32>,
    /// The snippet reads `swz` (and its `b` coefficient is used); when false the skeleton
    /// skips `sum_c w_c z'_c` and the `b·w_c` gradient term.
    pub needs_swz: bool,
}

/// A per-sample-contract kernel: family preludes and the kernel source, joined after the
/// losskit prelude, parsed and validated against the loss's spec on first use.
pub struct SampleKernel {
    /// The losskit prelude comes first (builtins); plugins' kernels see only the contract.
    pub losskit_prelude: bool,
    /// WGSL placed after the losskit prelude, in order (family helpers).
    pub preludes: &'static [&'static str],
    /// The kernel source.
    pub source: Cow<'static, str>,
    /// Most passes an invocation makes over its row (fixed-size scans counted as passes),
    /// for the loop guard of llvmpipe; 0 when the kernel's loops are bounded otherwise.
    pub passes: usize,
    /// Inputs may put one fixed axis before the per-sample letter (`[2, B, T]`); they are
    /// chunked per block.
    pub leading_axis: bool,
    /// Inputs (by position) bound whole instead of chunk-local.
    pub whole_inputs: &'static [usize],
    /// Names of the host constants the plan computes (`Plan::consts`), read by the kernel as
    /// `lk_param(LK_C_<NAME>)` after the parameters.
    pub host_consts: &'static [&'static str],
    /// Loop iterations one invocation runs for a call, when [`SampleKernel::passes`] over the
    /// row does not describe it (for the loop guard of llvmpipe).
    pub iterations: Option<fn(&Params, &crate::compute::Compute<'_>) -> u64>,
    /// The built kernel, kept for the process.
    #[cfg(feature = "wgpu")]
    pub(crate) built: std::sync::OnceLock<crate::backend::wgpu::PerSampleWgsl>,
}

impl SampleKernel {
    /// A kernel from its family preludes and its source, every input chunk-local.
    pub fn new(preludes: &'static [&'static str], source: &'static str) -> Self {
        SampleKernel {
            losskit_prelude: true,
            preludes,
            source: Cow::Borrowed(source),
            passes: 0,
            leading_axis: false,
            whole_inputs: &[],
            host_consts: &[],
            iterations: None,
            #[cfg(feature = "wgpu")]
            built: std::sync::OnceLock::new(),
        }
    }
    /// A kernel whose source is only known at run time (a plugin's `wgsl_source`).
    pub fn owned(source: String) -> Self {
        SampleKernel {
            losskit_prelude: false,
            source: Cow::Owned(source),
            ..SampleKernel::new(&[], "")
        }
    }
    /// At most `passes` passes over a row (see [`SampleKernel::passes`]).
    pub fn passes(mut self, passes: usize) -> Self {
        self.passes = passes;
        self
    }
    /// Inputs with one fixed axis before the per-sample letter (see
    /// [`SampleKernel::leading_axis`]).
    pub fn leading_axis(mut self) -> Self {
        self.leading_axis = true;
        self
    }
    /// The kernel reads these host constants (see [`SampleKernel::host_consts`]).
    pub fn host_consts(mut self, names: &'static [&'static str]) -> Self {
        self.host_consts = names;
        self
    }
    /// The loop iterations of one invocation (see [`SampleKernel::iterations`]).
    pub fn iterations(mut self, f: fn(&Params, &crate::compute::Compute<'_>) -> u64) -> Self {
        self.iterations = Some(f);
        self
    }
    /// Bind these inputs whole (see [`SampleKernel::whole_inputs`]).
    pub fn whole_inputs(mut self, inputs: &'static [usize]) -> Self {
        self.whole_inputs = inputs;
        self
    }
}
