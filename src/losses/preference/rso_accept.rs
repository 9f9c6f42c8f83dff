//! `rso_accept`: the statistical rejection sampling of RSO, choosing m of K candidates per
//! prompt so that they follow `π* ∝ π_sft·exp(r/β)` (a selection, no gradient).
//!
//! **Inputs**: `rewards [N,K]` (K candidates sampled from π_sft per prompt), `uniforms
//! [N,K,K]` (uniform draws in `[0, 1)`, indexed round × candidate), `valid [N,K]` (optional
//! 0/1: padding for prompts with fewer candidates; absent = all valid). Nothing is
//! differentiable.
//!
//! **Parameters**: `beta` β (0.5, `(0, ∞)`: the target is `π_sft·exp(r/β)`), `num_samples` m
//! (8, `[1, K]`; K is known at compute, a larger m is then an invalid parameter).
//!
//! **Procedure**: rounds j = 0, 1, …: M = the largest reward among the remaining candidates;
//! visit the remaining candidates in index order and accept k iff `uniforms[n,j,k] <
//! exp((r_k − M)/β)`; remove the accepted ones; stop as soon as m are accepted. The arg-max
//! candidate is always accepted, so at most K rounds are needed.
//!
//! **Outputs**: the auxiliary output `accepted [N,K]` holds the accepted candidate indices in
//! acceptance order in its first m columns and −1 in the others (the spec's `[N,m]` i64
//! output, carried in the registry's f32 auxiliary form, whose sizes come from the input
//! letters); `rso_accept_prob [N,K]` is `exp((r − M)/β)` with M over the valid candidates
//! (0 for invalid ones). The per-prompt value (the `none` output, reduced by `mean`/`sum`
//! over N) is the mean reward of the accepted candidates. Fewer than m valid candidates, a
//! uniform outside `[0, 1)` or a `valid` value other than 0/1 is an invalid input.
//!
//! **Source**: *Statistical Rejection Sampling Improves Preference Optimization* (its
//! rejection-sampling procedure): follows the paper's Python listing (the maximum is
//! recomputed over the remaining candidates in every round; candidates are visited in
//! insertion order). The paper's losses are `dpo` (`sigmoid`, `hinge` with or without the
//! reference).
//!
//! **GPU path** (`rso_accept.wgsl`, per-sample kernel contract, one invocation per prompt,
//! in f32): it gives exactly the CPU's picks. The CPU decides `u < exp(x)`, `x = (r − M)/β`,
//! in f64; WGSL has only f32, whose `exp` may be off by a few ulp (Vulkan allows `3 + 2|x|`
//! ulp) on an `x` already rounded three times (`r/2 − M/2`, `β` narrowed to f32, the
//! division). The kernel therefore decides a comparison only when `u` is clear of its f32
//! threshold `e = exp(x)`: accept when `u < e − τ`, reject when `u ≥ e + τ`, with `τ = e·(1e-5
//! + 2e-6·|x|) + 1e-30`, at least four times the worst f32 error (relative `5e-7 + 4.2e-7·|x|`,
//! absolute 1.2e-38 for flushed denormals). The arg-max (`r = M`, `x = 0`) is always accepted;
//! below `x = −120` the f64 threshold lies under the smallest positive f32, so only `u = 0`
//! would be accepted and `u > 0` is a clear reject. A prompt with any comparison inside the
//! band, with `u = 0` far below the maximum, with a non-finite valid reward, or a `β` outside
//! `[1e-30, 1e30]` (where f32 `β` loses range) is marked (−2 in its first `accepted` column)
//! and redone on the host by [`prompt`], the CPU path's own function, in f64, which overwrites
//! its loss value, `accepted` and `rso_accept_prob`. So the picks match the CPU bit for bit.
//! It is rare: for a uniform `u` a comparison falls in the band with probability `2τ ≤ 2e-5`
//! (`e·(1e-5 + 2e-6·|x|)` is largest at `x = 0`), so a prompt is redone with probability at
//! most `2e-5` times its number of comparisons (at most R·K over R rounds). Decided prompts
//! take their per-prompt value (the accepted rewards summed with Neumaier compensation,
//! divided by m) and `rso_accept_prob` from the kernel, in f32 (within `2e-5 + 2e-4·|cpu|` of
//! the CPU).
//! The checks (m ≤ K, uniforms in `[0, 1)`, `valid` 0/1, enough valid candidates) are the
//! CPU's, made first on the host (device inputs are read back for them). One invocation
//! loops up to `2K² + 5K` times, so on llvmpipe, which stops loops after 65535 iterations,
//! K ≤ 179 (a larger K is refused there as `Unsupported`).

use crate::compute::Compute;
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::pairs::{check_values, read_f64, run_rows};
use crate::params::{
    ParamSpec,
    ParamValue::{F64, I64},
    Params,
};
use crate::spec::{AuxSpec, Domain, InputSpec, LossSpec};
use crate::{bail, err};
use rayon::prelude::*;

const ID: &str = "rso_accept";

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        ID,
        "preference",
        "RSO statistical rejection sampling: pick m of K candidates per prompt to follow pi_sft exp(r / beta) (no gradient)",
        "Statistical Rejection Sampling Improves Preference Optimization",
    )
    .rows("N")
    .input(InputSpec::f32("rewards", "N,K").doc("reward of each candidate response"))
    .input(
        InputSpec::f32("uniforms", "N,K,K")
            .domain(Domain::Unit)
            .doc("uniform draws in [0, 1), indexed [prompt, round, candidate]"),
    )
    .input(
        InputSpec::f32("valid", "N,K")
            .optional()
            .domain(Domain::Binary)
            .doc("1 for a real candidate, 0 for padding (default all 1)"),
    )
    .param(
        ParamSpec::f64_open_min(
            "beta",
            0.5,
            0.0,
            f64::INFINITY,
            "temperature of the target pi_sft exp(r / beta)",
        )
        .open_max(),
    )
    .param(ParamSpec::i64(
        "num_samples",
        8,
        1,
        i64::MAX,
        "m: candidates to accept per prompt (at most K)",
    ))
    .aux(AuxSpec::new(
        "accepted",
        "N,K",
        "accepted candidate indices in acceptance order (first m columns), -1 after",
    ))
    .aux(AuxSpec::new(
        "rso_accept_prob",
        "N,K",
        "acceptance probability exp((r - max r) / beta) over the valid candidates, 0 if invalid",
    ));
    LossDef::new(spec, RsoAccept)
        .gpu(crate::custom_gpu!(RsoAccept))
        .test_dims(&[("K", 10)])
        .test_omit(&["valid"])
        .test_params(&[("beta", F64(0.1)), ("num_samples", I64(3))])
        .test_params(&[("beta", F64(5.0)), ("num_samples", I64(10))])
}

/// The implementation.
pub struct RsoAccept;

/// Run the procedure on one prompt: accepted indices in order.
pub fn select(r: &[f64], u: &[f64], valid: &[bool], beta: f64, m: usize) -> Vec<usize> {
    let k = r.len();
    let mut left: Vec<usize> = (0..k).filter(|&j| valid[j]).collect();
    let mut out = Vec::with_capacity(m);
    for round in 0..k {
        if out.len() >= m || left.is_empty() {
            break;
        }
        let top = left.iter().map(|&j| r[j]).fold(f64::NEG_INFINITY, f64::max);
        let mut keep = Vec::with_capacity(left.len());
        for &j in &left {
            if out.len() < m && u[round * k + j] < ((r[j] - top) / beta).exp() {
                out.push(j);
            } else {
                keep.push(j);
            }
        }
        left = keep;
    }
    out
}

/// One prompt as both backends finish it on the host: writes `accepted` (indices in
/// acceptance order, −1 after) and `rso_accept_prob` (0 for invalid candidates) into `acc`
/// and `prob` (`K` each) and returns the mean reward of the accepted candidates.
pub fn prompt(
    r: &[f64],
    u: &[f64],
    valid: &[bool],
    beta: f64,
    m: usize,
    acc: &mut [f64],
    prob: &mut [f64],
) -> f64 {
    let k = r.len();
    let top = (0..k)
        .filter(|&j| valid[j])
        .map(|j| r[j])
        .fold(f64::NEG_INFINITY, f64::max);
    for j in 0..k {
        prob[j] = if valid[j] {
            ((r[j] - top) / beta).exp()
        } else {
            0.0
        };
    }
    acc.fill(-1.0);
    let sel = select(r, u, valid, beta, m);
    for (slot, &j) in sel.iter().enumerate() {
        acc[slot] = j as f64;
    }
    sel.iter().map(|&j| r[j]).sum::<f64>() / m as f64
}

/// The checked inputs of a call.
struct Checked {
    n: usize,
    k: usize,
    m: usize,
    beta: f64,
    r: Vec<f64>,
    u: Vec<f64>,
    valid: Vec<bool>,
}

impl Checked {
    /// Prompt `i` through [`prompt`] into `acc` and `prob` (its rows of the `[N, K]`
    /// outputs, `K` each).
    fn prompt(&self, i: usize, acc: &mut [f64], prob: &mut [f64]) -> f64 {
        let k = self.k;
        let row = i * k..(i + 1) * k;
        prompt(
            &self.r[row.clone()],
            &self.u[i * k * k..(i + 1) * k * k],
            &self.valid[row],
            self.beta,
            self.m,
            acc,
            prob,
        )
    }
}

/// The checks of a call, on either backend (device data is read back): `m ≤ K`, uniforms
/// in `[0, 1)`, `valid` 0/1, at least m valid candidates per prompt.
fn check(p: &Params, c: &Compute<'_>) -> Result<Checked> {
    let (n, k) = (c.dim("N"), c.dim("K"));
    let beta = p.f64("beta");
    let m = p.i64("num_samples");
    if m as u64 > k as u64 {
        bail!(InvalidParam, "{ID}: num_samples = {m} outside [1, K = {k}]");
    }
    let m = m as usize;
    let req = |j: usize| read_f64(c, j)?.ok_or_else(|| err!(Internal, "{ID}: input #{j} missing"));
    let r = req(0)?;
    let u = req(1)?;
    check_values(
        ID,
        "uniforms",
        &u,
        |x| (0.0..1.0).contains(&x),
        "is outside [0, 1)",
    )?;
    let valid: Vec<bool> = match read_f64(c, 2)? {
        Some(v) => {
            check_values(ID, "valid", &v, |x| x == 0.0 || x == 1.0, "is not 0 or 1")?;
            v.iter().map(|&x| x == 1.0).collect()
        }
        None => vec![true; n * k],
    };
    for i in 0..n {
        let have = valid[i * k..(i + 1) * k].iter().filter(|&&v| v).count();
        if have < m {
            bail!(
                InvalidInput,
                "{ID}: prompt {i} has {have} valid candidates, fewer than num_samples = {m}"
            );
        }
    }
    Ok(Checked {
        n,
        k,
        m,
        beta,
        r,
        u,
        valid,
    })
}

/// Write the requested auxiliary outputs from `[N, K]` values.
fn write_aux(c: &mut Compute<'_>, k: usize, acc: &[f64], prob: &[f64]) {
    for (name, src) in [("accepted", acc), ("rso_accept_prob", prob)] {
        if let Some(dst) = c.take_aux(name).as_mut() {
            for i in 0..c.dim("N") {
                for j in 0..k {
                    dst.data[i * dst.row_stride + j] = src[i * k + j] as f32;
                }
            }
        }
    }
}

/// `β` range within which the kernel decides (outside it, f32 `β` loses range or precision
/// and every prompt is redone on the host).
#[cfg(feature = "wgpu")]
const GPU_BETA_RANGE: (f64, f64) = (1e-30, 1e30);

/// The kernel's mark of a prompt it left to the host (its first `accepted` column).
#[cfg(feature = "wgpu")]
const UNDECIDED: f64 = -2.0;

/// Loop iterations of one kernel invocation (a prompt of K candidates): initialisation,
/// up to K rounds of a maximum and a test pass, the probabilities (a maximum and a pass) and
/// the sum over the accepted.
#[cfg(feature = "wgpu")]
fn kernel_iterations(k: u64) -> u64 {
    2 * k * k + 5 * k
}

/// View of an input borrowed from a call (read-only).
#[cfg(feature = "wgpu")]
fn view<'b>(t: &'b crate::tensor::Tensor<'_>) -> crate::tensor::Tensor<'b> {
    use crate::tensor::{Data, Tensor};
    let data = match &t.data {
        Data::F32(d) => Data::F32(d),
        Data::I64(d) => Data::I64(d),
        Data::F32InPlace(d) => Data::F32(d),
        Data::Device(d) => Data::Device(d.clone()),
    };
    Tensor {
        data,
        shape: t.shape.clone(),
        row_stride: t.row_stride,
    }
}

/// The host constants of the GPU kernel (`LK_C_*`, after the parameters): `beta_in_range`,
/// 1 when beta is inside the range where the kernel decides comparisons itself.
pub const GPU_HOST_CONSTS: &[&str] = &["beta_in_range"];

#[cfg(feature = "wgpu")]
impl crate::exec::gpu::GpuLoss for RsoAccept {
    fn compute_gpu(
        &self,
        dev: &crate::backend::wgpu::GpuDevice,
        spec: &LossSpec,
        p: &Params,
        c: &mut Compute<'_>,
    ) -> Result<()> {
        use crate::backend::wgpu::PRELUDE;
        use crate::backend::wgpu::per_sample::{LazyKernel, PerSampleOpts, check_loop_iterations};
        use crate::reduction::{Reduction, RowReducer};
        use crate::tensor::{Grad, TensorMut};
        static KERNEL: LazyKernel = LazyKernel::with_host_consts(
            &[PRELUDE, super::FAMILY_WGSL],
            include_str!("rso_accept.wgsl"),
            crate::backend::wgpu::PerSampleWgsl::new,
            GPU_HOST_CONSTS,
        );
        let x = check(p, c)?;
        let (n, k) = (x.n, x.k);
        check_loop_iterations(dev, ID, kernel_iterations(k as u64))?;
        // The kernel's per-prompt outputs, always all three (unreduced), into host memory.
        let mut loss = vec![0f32; n];
        let mut acc32 = vec![0f32; n * k];
        let mut prob32 = vec![0f32; n * k];
        {
            let mut inner = Compute::new(Reduction::None, &mut loss);
            inner.inputs = c.inputs.iter().map(|t| t.as_ref().map(view)).collect();
            inner.grads = (0..spec.inputs.len()).map(|_| Grad::None).collect();
            inner.dims = c.dims.clone();
            inner = inner
                .aux("accepted", TensorMut::new(&mut acc32, &[n, k]))
                .aux("rso_accept_prob", TensorMut::new(&mut prob32, &[n, k]));
            let beta_ok = (GPU_BETA_RANGE.0..=GPU_BETA_RANGE.1).contains(&x.beta);
            let consts = [("beta_in_range", if beta_ok { 1.0 } else { 0.0 })];
            KERNEL.run_with_consts(dev, spec, p, &mut inner, PerSampleOpts::default(), &consts)?;
        }
        let mut per_row: Vec<f64> = loss.iter().map(|&v| f64::from(v)).collect();
        let mut acc: Vec<f64> = acc32.iter().map(|&v| f64::from(v)).collect();
        let mut prob: Vec<f64> = prob32.iter().map(|&v| f64::from(v)).collect();
        // Prompts with an undecided comparison (sentinel −2 in their first `accepted`
        // column): redone on the host by the CPU path's own function.
        for i in 0..n {
            if acc[i * k] == UNDECIDED {
                let row = i * k..(i + 1) * k;
                per_row[i] = x.prompt(i, &mut acc[row.clone()], &mut prob[row]);
            }
        }
        RowReducer::new(c.reduction, c.grad_output, n as f64).write_loss(&per_row, c.loss);
        write_aux(c, k, &acc, &prob);
        Ok(())
    }
}

impl LossImpl for RsoAccept {
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let x = check(p, c)?;
        let (n, k) = (x.n, x.k);
        let mut acc = vec![-1.0f64; n * k];
        let mut prob = vec![0.0f64; n * k];
        let means: Vec<f64> = acc
            .par_chunks_mut(k.max(1))
            .zip(prob.par_chunks_mut(k.max(1)))
            .enumerate()
            .map(|(i, (a, pr))| x.prompt(i, a, pr))
            .collect();
        run_rows(spec, c, n, n as f64, |i, _| Ok(means[i]))?;
        write_aux(c, k, &acc, &prob);
        Ok(())
    }
}
