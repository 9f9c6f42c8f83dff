//! Preference-optimisation family: sequence log-probabilities of chosen / rejected responses
//! (`[B]` pairs, `[N]` unpaired, `[N,K]` lists) in, one loss per pair or row out.
//!
//! - [`token_logprobs`] is the primitive: it turns logits `[N,T,V]` into the per-token and
//!   per-sequence log-probabilities (and entropy, KL to a reference) the other losses consume,
//!   and carries their gradients back to the logits. It is where almost all of the cost is.
//! - The family driver does, once for all of them: reading and checking the inputs (lengths
//!   `L = max(len, 1)`, negative lengths refused, reference inputs both present or both
//!   absent), the reduction over the rows (`mean` divides by the number of rows), the
//!   upstream gradient (`grad_output`), and writing the gradients only after every row was
//!   computed (an error leaves the outputs untouched). [`run_pairwise`] serves the pairwise
//!   losses: each supplies a scalar function of one pair returning its loss and the two
//!   derivatives (the `preference_loss_fn` pattern of Liger's fused preference losses);
//!   [`run_rows`] serves the losses whose rows hold several values (`[N,K]`, `[N,T]`).
//!   An input may put fixed-size axes before the per-sample letter (`sparsepo`'s `[2, B, T]`,
//!   the chosen and rejected halves of TRL's concatenated `[2B, T]` batch): [`run_rows`] then
//!   hands each row its slice of every block. [`finish_batch`] reduces and writes the
//!   gradients of batch-level losses whose terms couple rows (`aot`'s sorted pairs).
//! - `dpo`'s twelve loss types are twelve small functions in one table (see `dpo.rs`).
//!
//! # GPU path
//!
//! The per-sample losses of the family (`dpo`, `orpo`, `simpo`, `cpo`, `kto`, `rpo`,
//! `osp_spce`, `mapl`, `inpo`, `solireward_btwt`, `dpa_semantic`, `seppo`, `hypo`,
//! `yojo_nway`, `spo_degree`) run on wgpu under the per-sample kernel contract v1
//! ([`crate::backend::wgpu::per_sample`]): one invocation per pair or row, which writes the
//! unscaled loss and its derivatives; the contract's host side applies the reduction, the
//! upstream gradient and the chunking. What is shared:
//! - `family.wgsl` ([`FAMILY_WGSL`]), placed after the losskit prelude in front of every
//!   kernel: the margin loss and the AlphaPO reward of `simpo`/`cpo` (the shared math,
//!   softplus, σ, log σ, `log1p`, `log(1 − e^a)`, is the losskit prelude's; parameters,
//!   inputs and letters are read through the names generated from the spec,
//!   [`crate::kernel_names`]);
//! - `pref_gpu_loss!` and `gpu_hooks!`: the `GpuLoss` implementation (the kernel built once
//!   as a `LazyKernel` of the per-sample contract) and the two `LossImpl` hooks. Each loss passes its
//!   kernel file and its check function, which is the one its CPU path calls
//!   ([`check_pairs`], [`read_pairs`] and the losses' own value checks), so both backends
//!   refuse the same inputs with the same error before anything is launched or written;
//!   values on the device are read back for these checks (inputs are `[B]` or `[N, K]`).
//! - the `mean` denominator: a check function may return it (`yojo_nway`: the rows not
//!   ignored, computed by the function its CPU path uses) for the contract's host side.
//!
//! Left on the CPU (no kernel, they run their CPU path on a WGPU context): `aot` (batch-level,
//! its terms couple rows through a sort), `sparsepo`, `sparsepo_mask`, `token_logprobs`,
//! `grad_entanglement`. `rso_accept` has its own GPU path (exact picks: prompts with a
//! comparison too close to call in f32 are redone on the host, see its module doc).
//!
//! Conventions shared by the family: `pc, pr` = policy log-probs of chosen / rejected, `rc,
//! rr` = reference log-probs, `lr_w = pc − rc`, `lr_l = pr − rr`; only policy-side inputs are
//! differentiable; `σ`, `softplus`, `log σ` and `log(1 − e^a)` are evaluated in their stable
//! forms in f64; NaN / ±inf inputs are not checked and propagate.
//!
//! # Switching from the Python trainers
//!
//! `dpo` `loss_type` and the equivalent settings of the common trainers (TRL `DPOTrainer`
//! `loss_type`, `beta`, `label_smoothing`, `f_divergence_type`, `f_alpha_divergence_coef`,
//! `use_weighting`):
//!
//! | losskit `dpo` | TRL `DPOTrainer` | notes |
//! |---|---|---|
//! | `sigmoid` | `sigmoid` | `label_smoothing` = cDPO (TRL ≤ 0.2x; TRL main dropped it, ε = 0 is identical); RSO "sigmoid-norm" |
//! | `hinge` | `hinge` | RSO "hinge-norm" with reference inputs, SLiC hinge without them |
//! | `ipo` | `ipo` | TRL main divides by the completion lengths: pass `chosen_len`/`rejected_len`; the IPO paper does not: omit them |
//! | `exo_pair` | `exo_pair` | needs `label_smoothing > 0` (old TRL silently used 1e-3) |
//! | `nca_pair` | `nca_pair` | |
//! | `robust` | `robust` | `label_smoothing` = flip rate ε < 0.5 |
//! | `bco_pair` | `bco_pair` | TRL ≤ 0.2x running reward mean = `bco_delta` (TRL main: 0) |
//! | `sppo_hard` | `sppo_hard` | |
//! | `apo_zero`, `apo_down` | `apo_zero`, `apo_down` | |
//! | `discopop` | `discopop` | `discopop_tau` |
//! | `sigmoid_norm` | `sigmoid_norm` | Tülu 3 length-normalised DPO |
//! | `f_divergence` | `f_divergence_type` | `f_alpha` = α; TRL main's `f_alpha_divergence_coef` a = 1 − α (both 0.5 by default), TRL ≤ 0.2x used α |
//! | `pair_weight` input | `use_weighting=True` (WPO) | weights from `token_logprobs` (`token_logps`, `log_collision`); `mean` divides by B |
//! | `aot` id, `variant` | `aot` (paired), `aot_unpaired` | |
//! | `rpo` id | `rpo_alpha` / `loss_type=["sigmoid","sft"]` | `sft_norm=token_mean` matches TRL's token-mean NLL when chosen lengths are equal |
//! | `token_logprobs` + `rpo` | `sft` | |
//!
//! Other trainers: `orpo` = TRL `ORPOTrainer` (`lam` = its `beta`, official code's `alpha`);
//! `simpo` = TRL `CPOTrainer(loss_type="simpo")` / princeton-nlp SimPO (`gamma_beta_ratio`,
//! `alpha` = AlphaPO); `cpo` = TRL `CPOTrainer` `sigmoid|hinge|ipo` with `cpo_alpha`; `kto` = TRL
//! `KTOTrainer` `kto|apo_zero_unpaired` (KL estimate from `kl_logps`/`kl_ref_logps`);
//! `sparsepo` = the SparsePO code's `sparse` trainer (`mask_mode`; its `mapo` trainer is
//! `sparsepo_mask` + `sparsepo` with `mask_mode=common`; `token_kl` comes from
//! `token_logprobs` with `ref_logits`); `solireward_btwt` = the SoliReward training script
//! (`margin` 3, its BCE scalar spread over the rows); `hypo` = DPO plus an RLOO-trained KL
//! term (`lam`, K online samples per prompt); `rso_accept` = RSO's sampling step, followed by
//! `dpo` (`sigmoid`, or `hinge` with/without the reference inputs).
//!
//! RL aggregation (`ppo_clip`, `grpo`, `steer`, family `rl`):
//!
//! | losskit `loss_agg` (with `mean`) | TRL `GRPOTrainer` `loss_type` | verl `loss_agg_mode` |
//! |---|---|---|
//! | `token_mean` | `bnpo` / `dapo` | `token-mean` |
//! | `seq_mean_token_mean` | `grpo` | `seq-mean-token-mean` |
//! | `seq_mean_token_sum` | — | `seq-mean-token-sum` |
//! | `seq_mean_token_sum_norm` (`max_len`) | `dr_grpo` (`max_completion_length`) | `seq-mean-token-sum-norm` |
//!
//! TRL main defaults to `dapo` and `beta = 0`; losskit's `grpo` defaults are the paper's
//! (`seq_mean_token_mean`, β = 0.04). TRL's `scale_rewards` (`group|batch|none`) and
//! `epsilon`/`epsilon_high` map to `scale_rewards`, `epsilon_low`, `epsilon_high`.

pub mod aot;
pub mod cpo;
pub mod dpa_semantic;
pub mod dpo;
pub mod grad_entanglement;
pub mod hypo;
pub mod inpo;
pub mod kto;
pub mod mapl;
pub mod orpo;
pub mod osp_spce;
pub mod rpo;
pub mod rso_accept;
pub mod seppo;
pub mod simpo;
pub mod solireward_btwt;
pub mod sparsepo;
pub mod sparsepo_mask;
pub mod spo_degree;
pub mod token_logprobs;
pub mod yojo_nway;

use crate::compute::Compute;
use crate::error::Result;
use crate::reduction::RowReducer;
use crate::registry::{Domain, InputSpec, LossSpec};
use crate::tensor::Grad;
use crate::{bail, err};

/// The family's WGSL helpers (`pf_margin_loss`, `pf_alpha_reward`, `pf_len`, `pf_step`),
/// placed in front of every preference kernel after the losskit prelude.
#[cfg(feature = "wgpu")]
pub const FAMILY_WGSL: &str = include_str!("family.wgsl");

/// The GPU hook of a preference loss: its kernel `$file` (next to the loss, per-sample
/// contract v1, after the losskit prelude and [`FAMILY_WGSL`], built on first use) run once
/// `$check(spec, params, compute)` (the checks the CPU path makes, shared with it) passed.
/// `$check` returns `()`, or with `den = $check` the `mean` denominator (`f64`, the same value the
/// CPU path divides by) for a loss whose mean is not over all rows.
macro_rules! pref_gpu_loss {
    ($ty:ty, $file:literal, den = $check:expr) => {
        $crate::losses::preference::pref_gpu_loss!(@impl $ty, $file, f64, $check, Some);
    };
    ($ty:ty, $file:literal, $check:expr) => {
        $crate::losses::preference::pref_gpu_loss!(@impl $ty, $file, (), $check, |()| None);
    };
    (@impl $ty:ty, $file:literal, $ret:ty, $check:expr, $den:expr) => {
        #[cfg(feature = "wgpu")]
        impl $crate::backend::wgpu::GpuLoss for $ty {
            fn compute_gpu(
                &self,
                dev: &$crate::backend::wgpu::GpuDevice,
                spec: &$crate::registry::LossSpec,
                p: &$crate::params::Params,
                c: &mut $crate::compute::Compute<'_>,
            ) -> $crate::error::Result<()> {
                static KERNEL: $crate::backend::wgpu::per_sample::LazyKernel =
                    $crate::backend::wgpu::per_sample::LazyKernel::new(
                        &[
                            $crate::backend::wgpu::PRELUDE,
                            $crate::losses::preference::FAMILY_WGSL,
                        ],
                        include_str!($file),
                    );
                let check: fn(
                    &$crate::registry::LossSpec,
                    &$crate::params::Params,
                    &$crate::compute::Compute<'_>,
                ) -> $crate::error::Result<$ret> = $check;
                let den: Option<f64> = ($den)(check(spec, p, c)?);
                KERNEL.run(
                    dev,
                    spec,
                    p,
                    c,
                    $crate::backend::wgpu::per_sample::PerSampleOpts { den },
                )
            }
        }
    };
}
pub(crate) use pref_gpu_loss;

/// The two `LossImpl` methods of a loss with a GPU hook (inside its `impl LossImpl`).
macro_rules! gpu_hooks {
    () => {
        fn has_gpu(&self) -> bool {
            true
        }
        #[cfg(feature = "wgpu")]
        fn gpu(&self) -> Option<&dyn $crate::backend::wgpu::GpuLoss> {
            Some(self)
        }
    };
}
pub(crate) use gpu_hooks;

/// Stable `softplus(x) = max(x, 0) + log1p(e^{−|x|})`.
#[inline]
pub fn softplus(x: f64) -> f64 {
    crate::backend::cpu::softplus(x)
}

/// Stable logistic `σ(x)`.
#[inline]
pub fn sigmoid(x: f64) -> f64 {
    crate::backend::cpu::sigmoid(x)
}

/// `log σ(x) = −softplus(−x)`.
#[inline]
pub fn log_sigmoid(x: f64) -> f64 {
    -softplus(-x)
}

/// `log(1 − e^a)` for `a < 0`.
#[inline]
pub fn log1mexp(a: f64) -> f64 {
    crate::backend::cpu::log1mexp(a)
}

/// Max-shifted `log Σ_k e^{z_k}`; entries may be −∞ (left out); −∞ for an empty set.
pub fn lse(z: &[f64]) -> f64 {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + z.iter().map(|&v| (v - m).exp()).sum::<f64>().ln()
}

/// `relu'(x) = 1[x > 0]`.
#[inline]
pub fn step(x: f64) -> f64 {
    if x > 0.0 { 1.0 } else { 0.0 }
}

/// Input `k` as contiguous f64 values, if present.
pub fn input_f64(c: &Compute<'_>, k: usize) -> Option<Vec<f64>> {
    c.get(k)
        .map(|t| t.to_f32_vec().into_iter().map(f64::from).collect())
}

/// Input `k` as contiguous f64 values, if present, downloading device data (for checks that
/// both backends make).
pub fn read_f64(c: &Compute<'_>, k: usize) -> Result<Option<Vec<f64>>> {
    match c.get(k) {
        None => Ok(None),
        Some(t) => Ok(Some(t.read_f32()?.into_iter().map(f64::from).collect())),
    }
}

/// Input `k` (required by the spec) as contiguous f64 values.
pub fn required_f64(id: &str, c: &Compute<'_>, k: usize) -> Result<Vec<f64>> {
    input_f64(c, k).ok_or_else(|| err!(Internal, "{id}: required input #{k} missing"))
}

/// Lengths `L = max(len, 1)` of input `k` (all 1 when absent); a negative length is an
/// invalid input.
pub fn lengths(
    id: &str,
    name: &str,
    c: &Compute<'_>,
    k: Option<usize>,
    rows: usize,
) -> Result<Vec<f64>> {
    match k.map(|k| read_f64(c, k)).transpose()?.flatten() {
        None => Ok(vec![1.0; rows]),
        Some(v) => {
            if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| **x < 0.0) {
                bail!(InvalidInput, "{id}: {name}[{i}] = {x} is a negative length");
            }
            Ok(v.into_iter().map(|x| x.max(1.0)).collect())
        }
    }
}

/// Refuse values outside a predicate, naming the input and the index.
pub fn check_values(
    id: &str,
    name: &str,
    v: &[f64],
    ok: impl Fn(f64) -> bool,
    what: &str,
) -> Result<()> {
    if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !ok(**x)) {
        bail!(InvalidInput, "{id}: {name}[{i}] = {x} {what}");
    }
    Ok(())
}

/// Two optional inputs that must be both present or both absent.
pub fn both_or_neither(id: &str, c: &Compute<'_>, a: usize, b: usize, what: &str) -> Result<bool> {
    match (c.get(a).is_some(), c.get(b).is_some()) {
        (true, true) => Ok(true),
        (false, false) => Ok(false),
        _ => bail!(InvalidArg, "{id}: give both {what} or neither"),
    }
}

/// The derivatives of one row's loss with respect to each differentiable input's row.
///
/// An input of shape `[rows, ...]` has a derivative row of its row length. An input whose
/// shape starts with fixed axes before the per-sample letter (e.g. `[2, B, T]`: chosen and
/// rejected halves, the TRL concatenated layout) has one derivative row per leading index,
/// stored one after the other: `at(k)[p·w + j]` is `∂l_i/∂input_k[p, i, j]`.
pub struct RowGrad {
    bufs: Vec<Vec<f64>>,
}

impl RowGrad {
    /// The derivative row of input `k` (empty when `k` is absent or not differentiable).
    #[inline]
    pub fn at(&mut self, k: usize) -> &mut [f64] {
        &mut self.bufs[k]
    }
    /// Set `∂l_i/∂input_k[i, j]` (or `[p, i, j']` with `j = p·w + j'`, see [`RowGrad`]).
    #[inline]
    pub fn set(&mut self, k: usize, j: usize, v: f64) {
        self.bufs[k][j] = v;
    }
}

/// Where the rows of an input lie: `lead` leading fixed-axis blocks, each holding `rows`
/// rows of `w` elements.
#[derive(Clone, Copy, Debug, Default)]
struct RowLayout {
    lead: usize,
    w: usize,
}

fn row_layout(spec: &LossSpec, k: usize, shape: &[usize]) -> RowLayout {
    let pos = spec.inputs[k]
        .dims()
        .iter()
        .position(|d| *d == spec.rows.as_str())
        .unwrap_or(0);
    RowLayout {
        lead: shape[..pos.min(shape.len())].iter().product(),
        w: shape.get(pos + 1..).map_or(1, |s| s.iter().product()),
    }
}

/// Run a row-wise loss over `rows` rows: `f(i, g)` returns the row's loss `l_i` and writes
/// `∂l_i/∂x` for the differentiable inputs into `g` (zeroed for every row). The driver
/// applies the reduction (`mean` divides by `den`; `den = 0` gives 0 and zero gradient), the
/// upstream gradient, and writes the requested gradients once every row succeeded.
pub fn run_rows<F>(
    spec: &LossSpec,
    c: &mut Compute<'_>,
    rows: usize,
    den: f64,
    mut f: F,
) -> Result<()>
where
    F: FnMut(usize, &mut RowGrad) -> Result<f64>,
{
    let nin = spec.inputs.len();
    let mut lay = vec![RowLayout::default(); nin];
    let mut full: Vec<Option<Vec<f64>>> = vec![None; nin];
    for k in 0..nin {
        if let (true, Some(t)) = (spec.inputs[k].differentiable, c.get(k)) {
            lay[k] = row_layout(spec, k, &t.shape);
            if c.wants_grad(k) {
                full[k] = Some(vec![0.0; t.numel()]);
            }
        }
    }
    let reducer = RowReducer::new(c.reduction, c.grad_output, den);
    let mut g = RowGrad {
        bufs: lay.iter().map(|l| vec![0.0; l.lead * l.w]).collect(),
    };
    let mut per_row = Vec::with_capacity(rows);
    for i in 0..rows {
        for b in &mut g.bufs {
            b.fill(0.0);
        }
        per_row.push(f(i, &mut g)?);
        let s = reducer.grad_scale(i);
        for (k, dst) in full.iter_mut().enumerate() {
            if let Some(dst) = dst {
                let RowLayout { lead, w } = lay[k];
                for p in 0..lead {
                    let o = (p * rows + i) * w;
                    for (o, v) in dst[o..o + w].iter_mut().zip(&g.bufs[k][p * w..(p + 1) * w]) {
                        *o = s * v;
                    }
                }
            }
        }
    }
    reducer.write_loss(&per_row, c.loss);
    write_grads(c, &full)
}

/// Finish a batch-level loss whose terms couple rows (e.g. through a sort): reduce the
/// per-term losses (`mean` divides by `den`), scale the unreduced gradients `full` (one per
/// input, contiguous in the input's layout, `None` where not asked) by the reduction and the
/// upstream gradient, and write them.
pub fn finish_batch(
    c: &mut Compute<'_>,
    den: f64,
    per_term: &[f64],
    mut full: Vec<Option<Vec<f64>>>,
) -> Result<()> {
    let reducer = RowReducer::new(c.reduction, c.grad_output, den);
    let s = reducer.grad_scale(0);
    for v in full.iter_mut().flatten() {
        v.iter_mut().for_each(|x| *x *= s);
    }
    reducer.write_loss(per_term, c.loss);
    write_grads(c, &full)
}

/// Write gradients computed in f64 (contiguous, in each input's own layout) into the
/// caller's buffers.
pub fn write_grads(c: &mut Compute<'_>, full: &[Option<Vec<f64>>]) -> Result<()> {
    for (k, src) in full.iter().enumerate() {
        let Some(src) = src else { continue };
        match &mut c.grads[k] {
            Grad::Out(o) => {
                let (rows, l) = (
                    crate::tensor::rows(&o.shape),
                    crate::tensor::row_len(&o.shape),
                );
                for i in 0..rows {
                    for j in 0..l {
                        o.data[i * o.row_stride + j] = src[i * l + j] as f32;
                    }
                }
            }
            Grad::InPlace => bail!(Internal, "in-place gradient of a preference loss"),
            Grad::Device(_) => bail!(Internal, "device gradient on the CPU path"),
            Grad::None => {}
        }
    }
    Ok(())
}

/// Input positions of a pairwise loss.
#[derive(Clone, Copy, Debug, Default)]
pub struct PairIdx {
    /// `policy_chosen_logps [B]`.
    pub pc: usize,
    /// `policy_rejected_logps [B]`.
    pub pr: usize,
    /// Reference log-probs `(chosen, rejected)`, optional or required by the spec.
    pub refs: Option<(usize, usize)>,
    /// Chosen length input.
    pub lw: Option<usize>,
    /// Rejected length input.
    pub ll: Option<usize>,
    /// `pair_weight [B]`.
    pub weight: Option<usize>,
}

/// One pair, as a loss function sees it.
#[derive(Clone, Copy, Debug)]
pub struct Pair {
    /// Row index.
    pub i: usize,
    /// Policy chosen log-prob.
    pub pc: f64,
    /// Policy rejected log-prob.
    pub pr: f64,
    /// Reference chosen log-prob (0 when absent).
    pub rc: f64,
    /// Reference rejected log-prob (0 when absent).
    pub rr: f64,
    /// Chosen length `max(len, 1)` (1 when absent).
    pub lw: f64,
    /// Rejected length `max(len, 1)` (1 when absent).
    pub ll: f64,
}

impl PairIdx {
    /// Policy chosen / rejected at `pc`, `pr`; nothing else.
    pub const fn new(pc: usize, pr: usize) -> Self {
        PairIdx {
            pc,
            pr,
            refs: None,
            lw: None,
            ll: None,
            weight: None,
        }
    }
    /// With reference inputs at `(chosen, rejected)`.
    pub const fn refs(mut self, chosen: usize, rejected: usize) -> Self {
        self.refs = Some((chosen, rejected));
        self
    }
    /// With length inputs (`None` where the loss has none).
    pub const fn lens(mut self, chosen: Option<usize>, rejected: Option<usize>) -> Self {
        self.lw = chosen;
        self.ll = rejected;
        self
    }
    /// With a `pair_weight` input.
    pub const fn weight(mut self, k: usize) -> Self {
        self.weight = Some(k);
        self
    }
}

impl Pair {
    /// `pc − rc`.
    pub fn lr_w(&self) -> f64 {
        self.pc - self.rc
    }
    /// `pr − rr`.
    pub fn lr_l(&self) -> f64 {
        self.pr - self.rr
    }
}

/// A pair's loss and its derivatives with respect to `pc` and `pr`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PairOut {
    /// `ℓ`.
    pub loss: f64,
    /// `∂ℓ/∂pc`.
    pub d_pc: f64,
    /// `∂ℓ/∂pr`.
    pub d_pr: f64,
}

/// What the pairwise driver read, for losses that need more than [`Pair`].
#[derive(Clone, Copy, Debug)]
pub struct PairData {
    /// Number of pairs.
    pub rows: usize,
    /// True when the reference inputs were given.
    pub has_ref: bool,
    /// True when the length inputs were given.
    pub has_len: bool,
}

/// The inputs of a pairwise loss, read (device data downloaded) and checked by
/// [`read_pairs`].
pub struct PairInputs {
    /// Policy chosen log-probs.
    pub pc: Vec<f64>,
    /// Policy rejected log-probs.
    pub pr: Vec<f64>,
    /// Reference chosen log-probs (0 when absent).
    pub rc: Vec<f64>,
    /// Reference rejected log-probs (0 when absent).
    pub rr: Vec<f64>,
    /// Chosen lengths `max(len, 1)` (1 when absent).
    pub lw: Vec<f64>,
    /// Rejected lengths `max(len, 1)` (1 when absent).
    pub ll: Vec<f64>,
    /// `pair_weight`, when given.
    pub w: Option<Vec<f64>>,
    /// Facts about the call.
    pub data: PairData,
}

impl PairInputs {
    /// Pair `i`.
    pub fn pair(&self, i: usize) -> Pair {
        Pair {
            i,
            pc: self.pc[i],
            pr: self.pr[i],
            rc: self.rc[i],
            rr: self.rr[i],
            lw: self.lw[i],
            ll: self.ll[i],
        }
    }
}

/// The checks every pairwise loss makes, on either backend: reference inputs both present
/// or both absent, no negative length. Returns whether the references and the lengths were
/// given, and the lengths `max(len, 1)`.
pub fn check_pairs(
    spec: &LossSpec,
    c: &Compute<'_>,
    idx: PairIdx,
) -> Result<(PairData, Vec<f64>, Vec<f64>)> {
    let id = spec.id.as_str();
    let b = c.dim(spec.rows.as_str());
    let has_ref = match idx.refs {
        Some((a, r)) => both_or_neither(id, c, a, r, "reference log-probs")?,
        None => false,
    };
    let has_len = [idx.lw, idx.ll]
        .iter()
        .any(|k| k.is_some_and(|k| c.get(k).is_some()));
    let lname = |k: Option<usize>| k.map_or(String::new(), |k| spec.inputs[k].name.to_string());
    let (kw, kl) = (idx.lw, idx.ll);
    let lw = lengths(id, &lname(kw), c, kw, b)?;
    let ll = lengths(id, &lname(kl), c, kl, b)?;
    let data = PairData {
        rows: b,
        has_ref,
        has_len,
    };
    Ok((data, lw, ll))
}

/// Read and check the inputs of a pairwise loss ([`check_pairs`], then the values).
pub fn read_pairs(spec: &LossSpec, c: &Compute<'_>, idx: PairIdx) -> Result<PairInputs> {
    let id = spec.id.as_str();
    let (data, lw, ll) = check_pairs(spec, c, idx)?;
    let b = data.rows;
    let req = |k: usize| {
        read_f64(c, k)?.ok_or_else(|| err!(Internal, "{id}: required input #{k} missing"))
    };
    let (rc, rr) = match idx.refs {
        Some((a, r)) if data.has_ref => (req(a)?, req(r)?),
        _ => (vec![0.0; b], vec![0.0; b]),
    };
    Ok(PairInputs {
        pc: req(idx.pc)?,
        pr: req(idx.pr)?,
        rc,
        rr,
        lw,
        ll,
        w: match idx.weight {
            Some(k) => read_f64(c, k)?,
            None => None,
        },
        data,
    })
}

/// Run a pairwise loss: `f(pair)` gives `ℓ`, `∂ℓ/∂pc`, `∂ℓ/∂pr`; the driver multiplies by
/// `pair_weight`, reduces over the `B` pairs (`mean` divides by `B`) and writes the gradients.
pub fn run_pairwise<F>(spec: &LossSpec, c: &mut Compute<'_>, idx: PairIdx, f: F) -> Result<PairData>
where
    F: Fn(&Pair) -> Result<PairOut>,
{
    let v = read_pairs(spec, c, idx)?;
    let b = v.data.rows;
    let (kc, kr) = (idx.pc, idx.pr);
    run_rows(spec, c, b, b as f64, |i, g| {
        let o = f(&v.pair(i))?;
        let wi = v.w.as_ref().map_or(1.0, |w| w[i]);
        if !g.at(kc).is_empty() {
            g.set(kc, 0, wi * o.d_pc);
        }
        if !g.at(kr).is_empty() {
            g.set(kr, 0, wi * o.d_pr);
        }
        Ok(wi * o.loss)
    })?;
    Ok(v.data)
}

/// `policy_chosen_logps`, `policy_rejected_logps` `[B]`, differentiable log-probs.
pub fn policy_inputs(spec: LossSpec) -> LossSpec {
    spec.input(
        InputSpec::f32("policy_chosen_logps", "B")
            .grad()
            .domain(Domain::LogProb)
            .doc("policy log-prob of the chosen response (summed over its tokens)"),
    )
    .input(
        InputSpec::f32("policy_rejected_logps", "B")
            .grad()
            .domain(Domain::LogProb)
            .doc("policy log-prob of the rejected response (summed over its tokens)"),
    )
}

/// `ref_chosen_logps`, `ref_rejected_logps` `[B]` (constants).
pub fn ref_inputs(spec: LossSpec, optional: bool) -> LossSpec {
    let mk = |name: &str, doc: &str| {
        let i = InputSpec::f32(name, "B").domain(Domain::LogProb).doc(doc);
        if optional { i.optional() } else { i }
    };
    spec.input(mk(
        "ref_chosen_logps",
        if optional {
            "reference log-prob of the chosen response (absent = 0, reference-free)"
        } else {
            "reference log-prob of the chosen response"
        },
    ))
    .input(mk(
        "ref_rejected_logps",
        if optional {
            "reference log-prob of the rejected response (absent = 0, reference-free)"
        } else {
            "reference log-prob of the rejected response"
        },
    ))
}

/// `chosen_len`, `rejected_len` `[B]` token counts (f32; `max(len, 1)` is used).
pub fn len_inputs(spec: LossSpec, optional: bool) -> LossSpec {
    let mk = |name: &str, doc: &str| {
        let i = InputSpec::f32(name, "B").domain(Domain::Positive).doc(doc);
        if optional { i.optional() } else { i }
    };
    spec.input(mk(
        "chosen_len",
        "token count of the chosen response (>= 0; max(len, 1) is used)",
    ))
    .input(mk(
        "rejected_len",
        "token count of the rejected response (>= 0; max(len, 1) is used)",
    ))
}
