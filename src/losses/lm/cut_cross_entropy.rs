//! `cut_cross_entropy`: cross-entropy of the logits `E Cᵀ + b` over a large vocabulary,
//! computed block by block so that the `N x V` logit matrix is never stored.
//!
//! **Inputs**
//! - `e [N, D]` f32, differentiable: the hidden states (embeddings) of the `N` tokens.
//! - `c [V, D]` f32, differentiable: the classifier (un-embedding) matrix, one row per
//!   vocabulary entry.
//! - `targets [N]` i64: a vocabulary index in `[0, V)` or `ignore_index`.
//! - `bias [V]` f32, optional (absent = 0), differentiable.
//! - `sample_weight [N]` f32, optional (all ones): finite and `>= 0`; multiplies each row's
//!   loss and gradient and enters the `mean` denominator, exactly as for `cross_entropy`.
//!
//! **Parameters**: `ignore_index` (i64, -100); `softcap` (f64, 0 = off, `>= 0`);
//! `z_loss_coef` λ (f64, 0, `>= 0`); `normalizer` (f64, 0 = off: when positive, `mean`
//! divides by it instead of the weighted count of contributing rows); `filter_eps` ε (f64, 0,
//! `[0, 1)`: gradient filtering, off by default); `filter_e_grad`, `filter_c_grad` (bool,
//! true: which gradients filtering may drop); `sort_vocab` (bool, true: order the vocabulary
//! by ascending average logit before filtering); `block_rows`, `block_vocab` (i64, 0 =
//! automatic: the tile sizes, which decide the granularity of filtering).
//!
//! **Math** (row `i` with target `t_i`, `i` contributes iff `t_i != ignore_index`):
//! `a_iv = e_i·c_v + b_v`, `z_iv = cap·tanh(a_iv/cap)` when `cap > 0` else `a_iv`,
//! `lse_i = LSE_v z_iv`, `l_i = lse_i - z_{i,t_i} + λ·lse_i²`. With the upstream factor
//! `w_i` (reduction, `grad_output`, sample weight) and `p_iv = exp(z_iv - lse_i)`:
//! `G_iv = w_i·(p_iv·(1 + 2λ·lse_i) - [v = t_i])·(1 - (z_iv/cap)²)`,
//! `dE = G C`, `dC = Gᵀ E`, `dbias = Σ_i G_iv`. This is, to rounding, exactly
//! "logits = E Cᵀ + bias, then `cross_entropy` with the same `ignore_index`, `softcap`,
//! `z_loss_coef`, `sample_weight`, `normalizer`", and the tests check it that way.
//!
//! **Auxiliary output**: `lse [N]`, the row's log-sum-exp (0 on ignored rows).
//!
//! **Gradient filtering** (`filter_eps = ε > 0`, from the paper). The work is split into
//! tiles of `block_rows` contributing rows by `block_vocab` vocabulary entries. A tile whose
//! every entry has `|p_iv - [v = t_i]| < ε` (the test is made before any upstream factor,
//! soft-cap derivative or z-loss factor) is *small*: its product into `dE` is skipped when
//! `filter_e_grad`, its product into `dC` when `filter_c_grad`, and when both are skipped it
//! adds nothing to `dbias` either. Every dropped entry of `G` is below `ε·|w_i|` without
//! z-loss, so with `λ = 0` the error bound is, element by element,
//! `|ΔdE_{i,d}| ≤ ε·|w_i|·Σ_v |c_{v,d}|`, `|ΔdC_{v,d}| ≤ ε·Σ_i |w_i|·|e_{i,d}|`,
//! `|Δdbias_v| ≤ ε·Σ_i |w_i|` (the soft-cap derivative is at most 1); with `λ > 0` a dropped
//! entry contributes at most `ε·|w_i|·|1 + 2λ·lse_i|` (non-target) or
//! `|w_i|·(ε + 2λ·|lse_i|)` (target). The loss value is never affected. The recommended value
//! for f32 is the official "auto" rule, machine epsilon / 32 = 2⁻²⁸ ≈ 3.7e-9. With
//! `sort_vocab`, a first pass computes every entry's average logit over the contributing rows,
//! `A_v = Σ_i z_iv / N_valid`, and the vocabulary tiles are runs of the stable ascending
//! order of `A_v`, which gathers the rarely likely entries into the same tiles. Filtering is
//! off by default: the official code's filtered classifier gradients were reported to drift
//! from the exact ones, so losskit is exact unless asked.
//!
//! **Tiles** (`block_rows` BN x `block_vocab` BV). Automatic sizes: with filtering, 128 x 128,
//! the canonical tiles of the official kernels, so that the same entries are dropped; without
//! filtering (where tiles only change rounding), BV = 512 and BN = 512 rows, fewer when
//! `BN·V` f32 would exceed 256 MiB (BN = 512 up to V = 131072). The row tile sets the inner
//! dimension of the `dC` products and how often `C` is streamed, so it is the size that
//! matters for speed (measured on 2 cores with D = 2048, V = 32000, N = 1024-2048: BN = 128,
//! 256, 512 took about 1.4x, 1.15-1.2x, 1.05x the CPU time of the dense path's GEMMs alone).
//!
//! **CPU path.** The contributing rows are compacted and taken BN at a time. For a row
//! tile `R` the logits of every vocabulary tile `Q` are computed with a packed GEMM
//! (`gemm` crate, one tile per task, tasks in parallel) into a row-tile panel of `BN x V`
//! floats, with each tile's running maximum and sum of exponentials; the per-tile `(m, s)`
//! pairs are merged in tile order into `lse_R`. When a gradient is asked, the panel is then
//! turned into `G` tile by tile (in parallel), each tile adds its column sums to `dbias_Q`
//! and `G_RQᵀ E_R` to `dC_Q` (a tile owns its rows of `dC`; row tiles run one after the
//! other), and `dE_R = Σ_Q G_RQ C_Q` is formed in parallel over fixed column chunks of `D`.
//! So the forward and the backward share one computation of the logits: three GEMM-sized
//! products in all (`6·N·V·D` flops), the same as the dense path, while the extra memory is
//! the panel (`BN·V`), a few `BN x D` tiles and O(N + V) vectors. With filtering and
//! `sort_vocab`, the order must be known before the first backward tile, so a forward sweep
//! over every row tile runs first (logits computed twice, `8·N·V·D` flops before skipping).
//! The spec's normative structure for the GPU recomputes the logits in a separate dE pass and
//! dC pass; on the CPU the panel makes that recomputation unnecessary, and the results agree
//! to rounding. Every split of the work is fixed by the shapes and tile sizes, and every sum
//! runs in a fixed order, so the result has the same bits for any number of threads.
//!
//! **GPU path** (wgpu; `cut_cross_entropy_gpu.rs` and `cut_cross_entropy.wgsl`). The same
//! blocked algorithm in WGSL: every product runs on 64 x 64 output tiles of a 256-thread
//! workgroup (each thread 4 x 4 outputs), the inner dimension taken 16 at a time through
//! workgroup memory, edges bounds-checked. The contributing rows are compacted into row
//! chunks and the vocabulary is taken in chunks of a multiple of 64 entries, both sized so
//! that no bound range exceeds the device's largest binding (`C` is bound one vocabulary
//! chunk at a time, in place when it is a device buffer) and the scratch
//! (the row chunk's logit panel over the whole vocabulary) stays below 512 MiB. Forward: one
//! pass writes each (row, 64-entry block)'s partial `(max, sumexp)` and the target logit
//! (and keeps the logits in the panel when a gradient is asked), a second merges each row's
//! partials in block order into `lse` and the row loss. Backward, per row chunk: the panel
//! is turned into `G` in place, then per vocabulary chunk `dE_R (+)= G C_Q` (a workgroup owns
//! a tile of `dE` and loops over the chunk's entries; vocabulary chunks are added in order),
//! `dC_Q (+)= Gᵀ E_R` (a workgroup owns a tile of `dC` and loops over the chunk's rows; row
//! chunks are added in order) and the column sums of `G` into `dbias` — no float atomics, so
//! repeated runs give the same bits; `6·N·V·D` flops, as here. With filtering the logits
//! are recomputed per chunk pair instead (a 256 MiB scratch block; `8·N·V·D` flops and
//! more), and the GPU computes each tile's largest `|p - onehot|` (with `sort_vocab`, after
//! the column sums of the logits are read back and sorted on the host, the same stable
//! order as here) and reads `G` through that mask, so it drops exactly the CPU's tiles; it
//! saves no GPU work. Device-resident `e` is copied into compact row chunks (an `N_valid x D`
//! scratch); host tensors are uploaded. Validation reads the targets, weights and bias back
//! and checks them exactly as here before anything is launched.
//!
//! **Tensor cores.** wgpu 30.0.2 has `Features::EXPERIMENTAL_COOPERATIVE_MATRIX` (WGSL
//! `coop_mat8x8`/`coop_mat16x16` types with cooperative load, multiply-add and store; on
//! Vulkan through `VK_KHR_cooperative_matrix`, and only when the device also has the Vulkan
//! memory model at device scope; `Adapter::cooperative_matrix_properties` lists the
//! configurations). Its own documentation says the implementation targets 8x8 f32 matrices
//! and that NVIDIA and AMD Vulkan drivers mostly offer f16 inputs at 16x16 only; the tensor
//! cores of an H100 are reachable from it with f16 inputs, which would round `E` and `C` to
//! 11-bit mantissas and break the f32 agreement this loss promises (and the parity
//! tolerance), and Mesa's lavapipe, where the tests run, has no cooperative matrices at all,
//! so such a path could not be tested here. losskit therefore uses the plain f32 tiles on
//! every adapter; a cooperative-matrix variant would be an opt-in reduced-precision mode.
//!
//! **Precision.** Products accumulate in f32 inside the GEMM; the log-sum-exp merges, the
//! loss, the vocabulary averages and `dbias` accumulate in f64. `exp` is the library's
//! vectorised 2-ulp exponential; the soft-cap uses a `tanh` built on it (absolute error
//! below 3e-7·cap).
//!
//! **Source**: *Cut Your Losses in Large-Vocabulary Language Models* (Wijmans et al., 2024;
//! official code apple/ml-cross-entropy). The z-loss parameter is called `z_loss_coef`
//! (λ, the spec's `z_loss_weight`) so that it reads as in `cross_entropy`; `sample_weight`
//! and `normalizer` are added with `cross_entropy`'s semantics.

use rayon::prelude::*;

use super::matmul;
use crate::backend::cpu::{exp_f32, isa_name, max_sumexp};
use crate::compute::Compute;
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::targets::{check_weights, checked_targets};
use crate::params::{
    ParamSpec,
    ParamValue::{Bool, F64, I64},
    Params,
};
use crate::reduction::{Reduction, RowReducer};
use crate::spec::{AuxSpec, Domain, InputSpec, LossSpec};
use crate::tensor::Grad;
use crate::text::Text;
use crate::{bail, err};

const ID: &str = "cut_cross_entropy";
const IN_E: usize = 0;
const IN_C: usize = 1;
const IN_T: usize = 2;
const IN_B: usize = 3;
const IN_W: usize = 4;

/// Largest row-tile panel (`BN x V` f32) the automatic tile size allows, in bytes.
const PANEL_BUDGET: usize = 256 << 20;
/// Automatic row tile without filtering.
const AUTO_ROWS: usize = 512;
/// Automatic vocabulary tile without filtering.
const AUTO_VOCAB: usize = 512;
/// Canonical tile of the official kernels, used for both sides when filtering.
const FILTER_TILE: usize = 128;

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        ID,
        "lm",
        "Cut cross-entropy: softmax cross-entropy of E C^T + bias over a large vocabulary, computed tile by tile without storing the logits",
        "Cut Your Losses in Large-Vocabulary Language Models (Wijmans et al. 2024; apple/ml-cross-entropy)",
    )
    .input(InputSpec::f32("e", "N,D").grad().doc("hidden states (embeddings), one row per token"))
    .input(InputSpec::f32("c", "V,D").grad().doc("classifier matrix, one row per vocabulary entry"))
    .input(
        InputSpec::i64("targets", "N")
            .doc("vocabulary index in [0, V) or ignore_index")
            .domain(Domain::Class(Text::new("V"))),
    )
    .input(
        InputSpec::f32("bias", "V")
            .grad()
            .optional()
            .doc("classifier bias (default 0)"),
    )
    .input(
        InputSpec::f32("sample_weight", "N")
            .optional()
            .doc("per-row weight, finite and >= 0 (default 1)")
            .domain(Domain::NonNegative),
    )
    .param(ParamSpec::ignore_index())
    .param(ParamSpec::f64(
        "softcap",
        0.0,
        0.0,
        f64::INFINITY,
        "soft-cap logits to cap*tanh(z/cap) first; 0 = off",
    ))
    .param(ParamSpec::f64(
        "z_loss_coef",
        0.0,
        0.0,
        f64::INFINITY,
        "coefficient of the z-loss lambda * LSE^2",
    ))
    .param(ParamSpec::f64(
        "normalizer",
        0.0,
        0.0,
        f64::INFINITY,
        "when > 0, mean divides by this instead of the weighted count of contributing rows",
    ))
    .param(
        ParamSpec::f64(
            "filter_eps",
            0.0,
            0.0,
            1.0,
            "gradient filtering: skip tiles whose |softmax - onehot| < eps everywhere; 0 = off (exact); 2^-28 is the recommended f32 value",
        )
        .open_max(),
    )
    .param(ParamSpec::bool(
        "filter_e_grad",
        true,
        "filtering may skip small tiles in the gradient of e",
    ))
    .param(ParamSpec::bool(
        "filter_c_grad",
        true,
        "filtering may skip small tiles in the gradient of c",
    ))
    .param(ParamSpec::bool(
        "sort_vocab",
        true,
        "when filtering, tile the vocabulary in ascending order of its average logit",
    ))
    .param(ParamSpec::i64(
        "block_rows",
        0,
        0,
        1 << 16,
        "rows per tile; 0 = automatic (128 when filtering)",
    ))
    .param(ParamSpec::i64(
        "block_vocab",
        0,
        0,
        1 << 20,
        "vocabulary entries per tile; 0 = automatic (128 when filtering)",
    ))
    .aux(AuxSpec::new(
        "lse",
        "N",
        "per-row log-sum-exp of the (soft-capped) logits; 0 on ignored rows",
    ));
    LossDef::new(spec, CutCrossEntropy)
        .gpu(crate::custom_gpu!(CutCrossEntropy))
        .mean_rule(crate::exec::def::MeanRule::SampleWeightedRows)
        .test_params(&[("block_rows", I64(2)), ("block_vocab", I64(3))])
        .test_params(&[("softcap", F64(3.0)), ("block_vocab", I64(4))])
        .test_params(&[("z_loss_coef", F64(1e-2)), ("block_rows", I64(4))])
        .test_params(&[("normalizer", F64(7.0)), ("softcap", F64(5.0))])
        .test_params(&[
            ("filter_eps", F64(1.0 / (1u64 << 28) as f64)),
            ("block_rows", I64(2)),
            ("block_vocab", I64(4)),
        ])
        .test_params(&[
            ("filter_eps", F64(1e-7)),
            ("sort_vocab", Bool(false)),
            ("filter_c_grad", Bool(false)),
            ("z_loss_coef", F64(1e-3)),
        ])
}

/// The implementation.
pub struct CutCrossEntropy;

#[cfg(feature = "wgpu")]
#[path = "cut_cross_entropy_gpu.rs"]
mod gpu;

#[cfg(feature = "wgpu")]
impl crate::exec::gpu::GpuLoss for CutCrossEntropy {
    fn compute_gpu(
        &self,
        dev: &crate::backend::wgpu::GpuDevice,
        _spec: &LossSpec,
        p: &Params,
        c: &mut Compute<'_>,
    ) -> Result<()> {
        gpu::compute(dev, p, c)
    }
}

/// Which gradients are wanted.
#[derive(Clone, Copy, Debug)]
struct Want {
    e: bool,
    c: bool,
    b: bool,
}

impl Want {
    fn any(self) -> bool {
        self.e || self.c || self.b
    }
}

/// The options that change the math, and the tiling.
#[derive(Clone, Copy, Debug)]
struct Opts {
    cap: f32,
    lambda: f64,
    eps: f32,
    filter_e: bool,
    filter_c: bool,
    sort: bool,
    bn: usize,
    bv: usize,
}

/// The read-only operands.
struct Operands<'a> {
    d: usize,
    v: usize,
    e: &'a [f32],
    e_rs: usize,
    c: &'a [f32],
    c_rs: usize,
    bias: Option<&'a [f32]>,
}

/// A gradient destination: data and row stride.
type OutBuf<'s> = Option<(&'s mut [f32], usize)>;

fn grad_out<'s>(g: &'s mut Grad<'_>) -> OutBuf<'s> {
    match g {
        Grad::Out(t) => Some((&mut *t.data, t.row_stride)),
        _ => None,
    }
}

impl LossImpl for CutCrossEntropy {
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let (n, d, v) = (c.dim("N"), c.dim("D"), c.dim("V"));
        let ignore = p.i64("ignore_index");
        let t = c
            .get(IN_T)
            .ok_or_else(|| err!(Internal, "{ID}: targets missing"))?;
        let targets = checked_targets(ID, t, v, ignore)?;
        let sw = match c.get(IN_W) {
            Some(w) => {
                let w = w.to_f32_vec();
                check_weights(ID, "sample_weight", &w)?;
                Some(w)
            }
            None => None,
        };
        let bias = c.get(IN_B).map(|b| b.to_f32_vec());
        let rows: Vec<usize> = (0..n).filter(|&i| targets[i] != ignore).collect();
        let sweight = |i: usize| sw.as_ref().map_or(1.0f64, |w| w[i] as f64);
        let mut den: f64 = rows.iter().map(|&i| sweight(i)).sum();
        let normalizer = p.f64("normalizer");
        if normalizer > 0.0 && c.reduction == Reduction::Mean {
            den = normalizer;
        }
        let reducer = RowReducer::new(c.reduction, c.grad_output, den);
        let wv: Vec<f32> = rows
            .iter()
            .map(|&i| (reducer.grad_scale(i) * sweight(i)) as f32)
            .collect();
        let tv: Vec<usize> = rows.iter().map(|&i| targets[i] as usize).collect();
        let want = Want {
            e: c.wants_grad(IN_E),
            c: c.wants_grad(IN_C),
            b: c.wants_grad(IN_B),
        };
        let eps = p.f64("filter_eps") as f32;
        let filtering = eps > 0.0;
        let (bn, bv) = tile_sizes(p, v, rows.len(), filtering);
        let o = Opts {
            cap: p.f64("softcap") as f32,
            lambda: p.f64("z_loss_coef"),
            eps,
            filter_e: p.bool("filter_e_grad"),
            filter_c: p.bool("filter_c_grad"),
            sort: p.bool("sort_vocab"),
            bn,
            bv,
        };
        let mut aux_lse = c.take_aux("lse");

        let Compute {
            inputs,
            grads,
            loss,
            ..
        } = c;
        let tensor = |k: usize, what: &str| {
            inputs[k]
                .as_ref()
                .and_then(|t| t.f32_data().map(|x| (x, t.row_stride)))
                .ok_or_else(|| err!(Internal, "{ID}: {what} missing"))
        };
        let (e, e_rs) = tensor(IN_E, "e")?;
        let (cm, c_rs) = tensor(IN_C, "c")?;
        let ops = Operands {
            d,
            v,
            e,
            e_rs,
            c: cm,
            c_rs,
            bias: bias.as_deref(),
        };
        let [ge, gc, _, gb, _] = &mut grads[..] else {
            bail!(Internal, "{ID}: expected 5 gradient slots");
        };
        let mut de = grad_out(ge);
        let mut dc = grad_out(gc);
        let mut db = grad_out(gb);
        zero_rows(&mut de, n, d);
        zero_rows(&mut dc, v, d);
        if let Some((b, _)) = db.as_mut() {
            b[..v].fill(0.0);
        }

        let res = run(
            &ops,
            o,
            &rows,
            &tv,
            &wv,
            want,
            de.as_mut().map(|(x, s)| (&mut **x, *s)),
            dc.as_mut().map(|(x, s)| (&mut **x, *s)),
            db.as_mut().map(|(x, _)| &mut x[..v]),
        )?;

        let mut per_row = vec![0.0f64; n];
        for (k, &i) in rows.iter().enumerate() {
            let l = res.lse[k];
            per_row[i] = (l - res.zt[k] + o.lambda * l * l) * sweight(i);
        }
        reducer.write_loss(&per_row, loss);
        if let Some(a) = aux_lse.as_mut() {
            a.fill(0.0);
            for (k, &i) in rows.iter().enumerate() {
                a.data[i * a.row_stride] = res.lse[k] as f32;
            }
        }
        Ok(())
    }
}

/// Tile sizes `(BN, BV)` from the parameters (0 = automatic), clipped to the problem.
fn tile_sizes(p: &Params, v: usize, n_valid: usize, filtering: bool) -> (usize, usize) {
    let rows = p.i64("block_rows").max(0) as usize;
    let vocab = p.i64("block_vocab").max(0) as usize;
    let bv = match vocab {
        0 if filtering => FILTER_TILE,
        0 => AUTO_VOCAB,
        b => b,
    };
    let bn = match rows {
        0 if filtering => FILTER_TILE,
        0 => (PANEL_BUDGET / (4 * v.max(1)) / 8 * 8).clamp(16, AUTO_ROWS),
        b => b,
    };
    (bn.min(n_valid).max(1), bv.min(v).max(1))
}

/// Zero the logical elements of a `[rows, len]` gradient buffer with a row stride.
fn zero_rows(buf: &mut OutBuf<'_>, rows: usize, len: usize) {
    if let Some((x, rs)) = buf.as_mut() {
        for i in 0..rows {
            x[i * *rs..i * *rs + len].fill(0.0);
        }
    }
}

/// Per contributing row: the log-sum-exp and the target's (soft-capped) logit.
struct RowStats {
    lse: Vec<f64>,
    zt: Vec<f64>,
}

/// Allocate `len` zeros, reporting an allocation failure as an error.
fn try_zeros<T: Clone + Default>(len: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        err!(
            OutOfMemory,
            "{ID}: cannot allocate the {what} ({len} elements); lower block_rows"
        )
    })?;
    v.resize(len, T::default());
    Ok(v)
}

/// The blocked computation over the contributing rows `rows` (targets `tv`, upstream factors
/// `wv`). Gradient buffers arrive zeroed.
#[allow(clippy::too_many_arguments)]
fn run(
    x: &Operands<'_>,
    o: Opts,
    rows: &[usize],
    tv: &[usize],
    wv: &[f32],
    want: Want,
    mut de: OutBuf<'_>,
    mut dc: OutBuf<'_>,
    db: Option<&mut [f32]>,
) -> Result<RowStats> {
    let nv = rows.len();
    let mut st = RowStats {
        lse: vec![0.0; nv],
        zt: vec![0.0; nv],
    };
    if nv == 0 {
        return Ok(st);
    }
    let (d, v, bn, bv) = (x.d, x.v, o.bn, o.bv);
    let n_tiles = v.div_ceil(bv);
    let mut panel: Vec<f32> = try_zeros(bn * bv * n_tiles, "row-tile panel")?;
    let mut er: Vec<f32> = try_zeros(bn * d, "row tile of e")?;
    let dch = d_chunk(d);
    let mut de_r: Vec<f32> = if want.e {
        try_zeros(d.div_ceil(dch) * bn * dch, "row tile of the gradient of e")?
    } else {
        Vec::new()
    };
    let mut db_acc: Vec<f64> = if want.b { vec![0.0; v] } else { Vec::new() };
    let presort = want.any() && o.eps > 0.0 && o.sort;

    // With filtering and sorting: a forward sweep first, for lse and the vocabulary order.
    let order: Option<Vec<u32>> = if presort {
        let mut colsum = vec![0.0f64; v];
        for r0 in (0..nv).step_by(bn) {
            let m = bn.min(nv - r0);
            gather_rows(x, &rows[r0..r0 + m], &mut er);
            let parts = logits_pass(x, o, &er, m, &mut panel, None, Some(&mut colsum), true);
            row_stats(o, &parts, &panel, &tv[r0..r0 + m], r0, &mut st);
        }
        let inv_n = 1.0 / nv as f64;
        let key: Vec<f64> = colsum.iter().map(|&s| s * inv_n).collect();
        let mut ord: Vec<u32> = (0..v as u32).collect();
        ord.sort_by(|&a, &b| key[a as usize].total_cmp(&key[b as usize]));
        Some(ord)
    } else {
        None
    };
    let pos_of: Option<Vec<u32>> = order.as_ref().map(|ord| {
        let mut inv = vec![0u32; v];
        for (pos, &ent) in ord.iter().enumerate() {
            inv[ent as usize] = pos as u32;
        }
        inv
    });

    for r0 in (0..nv).step_by(bn) {
        let m = bn.min(nv - r0);
        gather_rows(x, &rows[r0..r0 + m], &mut er);
        if presort {
            logits_pass(x, o, &er, m, &mut panel, order.as_deref(), None, false);
        } else {
            let parts = logits_pass(x, o, &er, m, &mut panel, None, None, true);
            row_stats(o, &parts, &panel, &tv[r0..r0 + m], r0, &mut st);
        }
        if !want.any() {
            continue;
        }
        let lse32: Vec<f32> = st.lse[r0..r0 + m].iter().map(|&l| l as f32).collect();
        let k1: Vec<f32> = (0..m)
            .map(|i| (wv[r0 + i] as f64 * (1.0 + 2.0 * o.lambda * st.lse[r0 + i])) as f32)
            .collect();
        let tpos: Vec<usize> = tv[r0..r0 + m]
            .iter()
            .map(|&t| pos_of.as_ref().map_or(t, |p| p[t] as usize))
            .collect();
        let tile = RowTile {
            m,
            lse: &lse32,
            k1: &k1,
            w: &wv[r0..r0 + m],
            tpos: &tpos,
        };
        let dc_dst = if want.c {
            dc.as_mut().map(|(b, s)| (&mut **b, *s))
        } else {
            None
        };
        let db_dst = if want.b { Some(&mut db_acc[..]) } else { None };
        let skip_e = grad_pass(x, o, &tile, &mut panel, &er, dc_dst, db_dst);
        if let Some((out, rs)) = de.as_mut() {
            de_pass(x, o, m, &panel, &skip_e, order.as_deref(), dch, &mut de_r);
            let nch = d.div_ceil(dch);
            for (i, &row) in rows[r0..r0 + m].iter().enumerate() {
                for k in 0..nch {
                    let d0 = k * dch;
                    let dw = dch.min(d - d0);
                    let src = &de_r[k * bn * dch + i * dw..k * bn * dch + (i + 1) * dw];
                    out[row * *rs + d0..row * *rs + d0 + dw].copy_from_slice(src);
                }
            }
        }
    }

    if let Some(ord) = order.as_ref() {
        if let Some((out, rs)) = dc.as_mut().filter(|_| want.c) {
            unpermute_rows(out, *rs, d, ord);
        }
    }
    if let Some(out) = db {
        match order.as_ref() {
            Some(ord) => {
                for (pos, &ent) in ord.iter().enumerate() {
                    out[ent as usize] = db_acc[pos] as f32;
                }
            }
            None => {
                for (o, &a) in out.iter_mut().zip(&db_acc) {
                    *o = a as f32;
                }
            }
        }
    }
    Ok(st)
}

/// Width of the column chunks of `D` the `dE` products are split into (fixed by `D`, so
/// that the split does not depend on the number of threads).
fn d_chunk(d: usize) -> usize {
    (d.div_ceil(8).div_ceil(16) * 16).clamp(16, 256)
}

/// Copy the rows `rows` of `e` into the contiguous tile `er` (`rows.len() x D`).
fn gather_rows(x: &Operands<'_>, rows: &[usize], er: &mut [f32]) {
    let d = x.d;
    for (i, &r) in rows.iter().enumerate() {
        er[i * d..(i + 1) * d].copy_from_slice(&x.e[r * x.e_rs..r * x.e_rs + d]);
    }
}

/// The logits of one row tile (`m` rows in `er`) against every vocabulary tile, written
/// tile-major into `panel` (tile `q` holds `m x BV` floats, row stride `BV`), bias added and
/// soft-cap applied. The vocabulary tiles are runs of `order` when given, else of the natural
/// order. Returns, when `stats`, each tile's per-row `(max, sum of exp(z - max))`; adds each
/// tile's column sums to `colsum` when given. Tiles run in parallel.
#[allow(clippy::too_many_arguments)]
fn logits_pass(
    x: &Operands<'_>,
    o: Opts,
    er: &[f32],
    m: usize,
    panel: &mut [f32],
    order: Option<&[u32]>,
    colsum: Option<&mut [f64]>,
    stats: bool,
) -> Vec<Vec<(f32, f64)>> {
    let (d, v, bv) = (x.d, x.v, o.bv);
    let n_tiles = v.div_ceil(bv);
    let mut cs: Vec<Option<&mut [f64]>> = match colsum {
        Some(cs) => cs.chunks_mut(bv).map(Some).collect(),
        None => (0..n_tiles).map(|_| None).collect(),
    };
    cs.truncate(n_tiles);
    panel[..n_tiles * m * bv]
        .par_chunks_mut(m * bv)
        .zip(cs.into_par_iter())
        .enumerate()
        .map_init(
            || (Vec::<f32>::new(), Vec::<f32>::new()),
            |(cbuf, bbuf), (q, (tile, cs))| {
                let q0 = q * bv;
                let w = bv.min(v - q0);
                // rhs = C_Qᵀ (D x w): element (k, j) is c[entry j][k].
                let (rhs, rhs_rs, rhs_cs, bias): (*const f32, usize, usize, Option<&[f32]>) =
                    match order {
                        None => (
                            x.c.as_ptr().wrapping_add(q0 * x.c_rs),
                            1,
                            x.c_rs,
                            x.bias.map(|b| &b[q0..q0 + w]),
                        ),
                        Some(ord) => {
                            let ents = &ord[q0..q0 + w];
                            cbuf.clear();
                            for &ent in ents {
                                let r = ent as usize * x.c_rs;
                                cbuf.extend_from_slice(&x.c[r..r + d]);
                            }
                            let bias = x.bias.map(|b| {
                                bbuf.clear();
                                bbuf.extend(ents.iter().map(|&ent| b[ent as usize]));
                                &bbuf[..]
                            });
                            (cbuf.as_ptr(), 1, d, bias)
                        }
                    };
                // SAFETY: dst is this task's own tile (m x w, row stride bv <= its length);
                // lhs is er (m x d, contiguous); rhs addresses rows q0..q0+w of c (or the
                // gathered copy), d columns each, which the validated layout holds.
                unsafe {
                    matmul(
                        m,
                        w,
                        d,
                        tile.as_mut_ptr(),
                        bv,
                        false,
                        er.as_ptr(),
                        d,
                        1,
                        rhs,
                        rhs_rs,
                        rhs_cs,
                    )
                };
                let mut parts = Vec::with_capacity(if stats { m } else { 0 });
                for i in 0..m {
                    let row = &mut tile[i * bv..i * bv + w];
                    finish_logits(row, bias, o.cap);
                    if stats {
                        parts.push(max_sumexp(row));
                    }
                }
                if let Some(cs) = cs {
                    for i in 0..m {
                        for (s, &z) in cs.iter_mut().zip(&tile[i * bv..i * bv + w]) {
                            *s += z as f64;
                        }
                    }
                }
                parts
            },
        )
        .collect()
}

/// Merge the per-tile `(max, sum)` pairs of each row (in tile order) into its log-sum-exp,
/// and read the target logits from the panel (natural vocabulary order).
fn row_stats(
    o: Opts,
    parts: &[Vec<(f32, f64)>],
    panel: &[f32],
    tv: &[usize],
    r0: usize,
    st: &mut RowStats,
) {
    let m = tv.len();
    let bv = o.bv;
    for (i, &t) in tv.iter().enumerate() {
        let mx = parts
            .iter()
            .map(|p| p[i].0)
            .fold(f32::NEG_INFINITY, |a, b| if b > a { b } else { a });
        let lse = if mx == f32::NEG_INFINITY {
            if parts.iter().any(|p| p[i].1.is_nan()) {
                f64::NAN
            } else {
                f64::NEG_INFINITY
            }
        } else {
            let s: f64 = parts
                .iter()
                .map(|p| {
                    let (pm, ps) = p[i];
                    if pm == f32::NEG_INFINITY && !ps.is_nan() {
                        0.0
                    } else {
                        ps * (pm as f64 - mx as f64).exp()
                    }
                })
                .sum();
            mx as f64 + s.ln()
        };
        st.lse[r0 + i] = lse;
        st.zt[r0 + i] = panel[(t / bv) * m * bv + i * bv + t % bv] as f64;
    }
}

/// What the gradient pass needs to know about the current row tile.
struct RowTile<'a> {
    m: usize,
    /// Per row: log-sum-exp.
    lse: &'a [f32],
    /// Per row: `w_i (1 + 2λ lse_i)`, the factor of `p` in `G`.
    k1: &'a [f32],
    /// Per row: the upstream factor `w_i`.
    w: &'a [f32],
    /// Per row: the target's position in the tiled vocabulary order.
    tpos: &'a [usize],
}

/// Turn the panel into `G` tile by tile (in parallel), apply the filtering test, add each
/// tile's column sums to `db` and `G_RQᵀ E_R` to `dc` (both indexed by tile position; a
/// tile owns its rows). Returns, per tile, whether its `dE` product is skipped.
fn grad_pass(
    x: &Operands<'_>,
    o: Opts,
    rt: &RowTile<'_>,
    panel: &mut [f32],
    er: &[f32],
    dc: OutBuf<'_>,
    db: Option<&mut [f64]>,
) -> Vec<bool> {
    let (d, v, bv, m) = (x.d, x.v, o.bv, rt.m);
    let n_tiles = v.div_ceil(bv);
    let mut dcs: Vec<Option<(&mut [f32], usize)>> = (0..n_tiles).map(|_| None).collect();
    if let Some((buf, rs)) = dc {
        if d > 0 {
            for (q, ch) in buf.chunks_mut(bv * rs).enumerate().take(n_tiles) {
                dcs[q] = Some((ch, rs));
            }
        }
    }
    let mut dbs: Vec<Option<&mut [f64]>> = (0..n_tiles).map(|_| None).collect();
    if let Some(b) = db {
        for (q, ch) in b.chunks_mut(bv).enumerate() {
            dbs[q] = Some(ch);
        }
    }
    let filtering = o.eps > 0.0;
    let grad_row = grad_row_fn();
    panel[..n_tiles * m * bv]
        .par_chunks_mut(m * bv)
        .zip(dcs.into_par_iter())
        .zip(dbs.into_par_iter())
        .enumerate()
        .map(|(q, ((tile, dcq), dbq))| {
            let q0 = q * bv;
            let w = bv.min(v - q0);
            // Largest |p - onehot| over the tile (the filtering test).
            let mut fmax = 0.0f32;
            let mut nan = false;
            for i in 0..m {
                let row = &mut tile[i * bv..i * bv + w];
                let lse = rt.lse[i];
                let tin = rt.tpos[i].checked_sub(q0).filter(|&j| j < w);
                if filtering {
                    if let Some(j) = tin {
                        for (k, &z) in row.iter().enumerate() {
                            let f = if k == j {
                                1.0 - exp_f32(z - lse)
                            } else {
                                exp_f32(z - lse)
                            };
                            nan |= f.is_nan();
                            fmax = fmax.max(f.abs());
                        }
                    }
                }
                let zt = tin.map(|j| row[j]);
                let pmax = grad_row(row, lse, rt.k1[i], o.cap);
                if filtering && tin.is_none() {
                    nan |= pmax.is_nan();
                    fmax = fmax.max(pmax);
                }
                if let (Some(j), Some(zt)) = (tin, zt) {
                    let p = exp_f32(zt - lse);
                    row[j] = (rt.k1[i] * p - rt.w[i]) * cap_slope(zt, o.cap);
                }
            }
            let small = filtering && !nan && fmax < o.eps;
            let skip_e = small && o.filter_e;
            let skip_c = small && o.filter_c;
            if let Some(dbq) = dbq {
                if !(skip_e && skip_c) {
                    for i in 0..m {
                        for (s, &g) in dbq.iter_mut().zip(&tile[i * bv..i * bv + w]) {
                            *s += g as f64;
                        }
                    }
                }
            }
            if let Some((dcq, rs)) = dcq {
                if !skip_c {
                    // SAFETY: dst is this tile's own rows of dc (w rows of d, stride rs,
                    // inside the chunk); lhs = G_RQᵀ reads this tile (w x m, strides 1 and
                    // bv); rhs = E_R (m x d, contiguous).
                    unsafe {
                        matmul(
                            w,
                            d,
                            m,
                            dcq.as_mut_ptr(),
                            rs,
                            true,
                            tile.as_ptr(),
                            1,
                            bv,
                            er.as_ptr(),
                            d,
                            1,
                        )
                    };
                }
            }
            skip_e
        })
        .collect()
}

/// `dE_R = Σ_Q G_RQ C_Q` over the tiles not skipped, in parallel over fixed column chunks of
/// `D` of width `dch`; chunk `k` of `out` holds `m x dw` floats (row stride `dw`).
#[allow(clippy::too_many_arguments)]
fn de_pass(
    x: &Operands<'_>,
    o: Opts,
    m: usize,
    panel: &[f32],
    skip_e: &[bool],
    order: Option<&[u32]>,
    dch: usize,
    out: &mut [f32],
) {
    let (d, v, bv, bn) = (x.d, x.v, o.bv, o.bn);
    let nch = d.div_ceil(dch);
    out[..nch * bn * dch]
        .par_chunks_mut(bn * dch)
        .enumerate()
        .for_each_init(Vec::<f32>::new, |cbuf, (k, chunk)| {
            let d0 = k * dch;
            let dw = dch.min(d - d0);
            let mut first = true;
            for (q, _) in skip_e.iter().enumerate().filter(|(_, s)| !**s) {
                let q0 = q * bv;
                let w = bv.min(v - q0);
                let (rhs, rhs_rs): (*const f32, usize) = match order {
                    None => (x.c.as_ptr().wrapping_add(q0 * x.c_rs + d0), x.c_rs),
                    Some(ord) => {
                        cbuf.clear();
                        for &ent in &ord[q0..q0 + w] {
                            let r = ent as usize * x.c_rs + d0;
                            cbuf.extend_from_slice(&x.c[r..r + dw]);
                        }
                        (cbuf.as_ptr(), dw)
                    }
                };
                // SAFETY: dst is this task's own chunk (m x dw, stride dw); lhs is tile q of
                // the panel (m x w, stride bv); rhs addresses rows q0..q0+w, columns
                // d0..d0+dw of c (or the gathered copy).
                unsafe {
                    matmul(
                        m,
                        dw,
                        w,
                        chunk.as_mut_ptr(),
                        dw,
                        !first,
                        panel.as_ptr().wrapping_add(q * m * bv),
                        bv,
                        1,
                        rhs,
                        rhs_rs,
                        1,
                    )
                };
                first = false;
            }
            if first {
                chunk[..m * dw].fill(0.0);
            }
        });
}

/// Rows were accumulated at their tile positions: row `pos` holds entry `order[pos]`. Move
/// every row to its entry, following the permutation's cycles (one spare row).
fn unpermute_rows(buf: &mut [f32], rs: usize, d: usize, order: &[u32]) {
    if d == 0 {
        return;
    }
    let mut done = vec![false; order.len()];
    let mut carry = vec![0.0f32; d];
    for start in 0..order.len() {
        if done[start] {
            continue;
        }
        done[start] = true;
        carry.copy_from_slice(&buf[start * rs..start * rs + d]);
        let mut p = order[start] as usize;
        while p != start {
            buf[p * rs..p * rs + d].swap_with_slice(&mut carry);
            done[p] = true;
            p = order[p] as usize;
        }
        buf[start * rs..start * rs + d].copy_from_slice(&carry);
    }
}

/// `d z / d a` of the soft-cap at the capped value `z`: `1 - (z/cap)²` (1 without a cap).
#[inline(always)]
fn cap_slope(z: f32, cap: f32) -> f32 {
    if cap > 0.0 {
        let t = z / cap;
        1.0 - t * t
    } else {
        1.0
    }
}

/// `cap · tanh(a / cap)`, branch-free: a series near 0, `(1 - e^{-2|x|}) / (1 + e^{-2|x|})`
/// elsewhere.
#[inline(always)]
fn softcap(a: f32, cap: f32) -> f32 {
    let x = a / cap;
    let ax = x.abs();
    let t = exp_f32(-2.0 * ax);
    let far = (1.0 - t) / (1.0 + t);
    let x2 = ax * ax;
    let near = ax * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0))));
    let th = if ax < 0.0625 { near } else { far };
    cap * th.copysign(x)
}

#[inline(always)]
fn finish_logits_impl(z: &mut [f32], bias: Option<&[f32]>, cap: f32) {
    match (bias, cap > 0.0) {
        (None, false) => {}
        (Some(b), false) => {
            for (v, &bb) in z.iter_mut().zip(b) {
                *v += bb;
            }
        }
        (None, true) => {
            for v in z.iter_mut() {
                *v = softcap(*v, cap);
            }
        }
        (Some(b), true) => {
            for (v, &bb) in z.iter_mut().zip(b) {
                *v = softcap(*v + bb, cap);
            }
        }
    }
}

/// `z ← k1 · exp(z - lse) · (1 - (z/cap)²)` in place; returns the largest `exp(z - lse)`.
#[inline(always)]
fn grad_row_impl(z: &mut [f32], lse: f32, k1: f32, cap: f32) -> f32 {
    const L: usize = 16;
    let mut mx = [0.0f32; L];
    let mut it = z.chunks_exact_mut(L);
    if cap > 0.0 {
        for ch in &mut it {
            for j in 0..L {
                let p = exp_f32(ch[j] - lse);
                mx[j] = if p > mx[j] { p } else { mx[j] };
                let t = ch[j] / cap;
                ch[j] = k1 * p * (1.0 - t * t);
            }
        }
    } else {
        for ch in &mut it {
            for j in 0..L {
                let p = exp_f32(ch[j] - lse);
                mx[j] = if p > mx[j] { p } else { mx[j] };
                ch[j] = k1 * p;
            }
        }
    }
    let mut best = 0.0f32;
    for v in it.into_remainder() {
        let p = exp_f32(*v - lse);
        best = if p > best { p } else { best };
        *v = k1 * p * cap_slope(*v, cap);
    }
    for b in mx {
        best = if b > best { b } else { best };
    }
    best
}

#[cfg(target_arch = "x86_64")]
mod simd {
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub(super) fn grad_row_avx512(z: &mut [f32], lse: f32, k1: f32, cap: f32) -> f32 {
        super::grad_row_impl(z, lse, k1, cap)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn grad_row_avx2(z: &mut [f32], lse: f32, k1: f32, cap: f32) -> f32 {
        super::grad_row_impl(z, lse, k1, cap)
    }
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub(super) fn finish_logits_avx512(z: &mut [f32], bias: Option<&[f32]>, cap: f32) {
        super::finish_logits_impl(z, bias, cap)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn finish_logits_avx2(z: &mut [f32], bias: Option<&[f32]>, cap: f32) {
        super::finish_logits_impl(z, bias, cap)
    }
}

type GradRowFn = fn(&mut [f32], f32, f32, f32) -> f32;

/// The widest `grad_row` kernel the CPU runs (the instruction set the CPU backend chose).
fn grad_row_fn() -> GradRowFn {
    #[cfg(target_arch = "x86_64")]
    match isa_name() {
        // SAFETY: the CPU backend detected these features at run time.
        "avx512" => return |z, l, k, c| unsafe { simd::grad_row_avx512(z, l, k, c) },
        // SAFETY: the CPU backend detected these features at run time.
        "avx2" => return |z, l, k, c| unsafe { simd::grad_row_avx2(z, l, k, c) },
        _ => {}
    }
    grad_row_impl
}

/// Add the bias and apply the soft-cap to one tile row of raw logits.
fn finish_logits(z: &mut [f32], bias: Option<&[f32]>, cap: f32) {
    #[cfg(target_arch = "x86_64")]
    match isa_name() {
        // SAFETY: the CPU backend detected these features at run time.
        "avx512" => return unsafe { simd::finish_logits_avx512(z, bias, cap) },
        // SAFETY: the CPU backend detected these features at run time.
        "avx2" => return unsafe { simd::finish_logits_avx2(z, bias, cap) },
        _ => {}
    }
    finish_logits_impl(z, bias, cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softcap_matches_std_tanh() {
        let mut worst = 0.0f64;
        let mut a = -200.0f32;
        while a < 200.0 {
            let got = softcap(a, 30.0) as f64;
            let want = 30.0 * (a as f64 / 30.0).tanh();
            worst = worst.max((got - want).abs() / 30.0);
            a += 0.0137;
        }
        assert!(worst < 3e-7, "worst error / cap = {worst:e}");
        assert_eq!(softcap(f32::INFINITY, 2.0), 2.0);
        assert_eq!(softcap(f32::NEG_INFINITY, 2.0), -2.0);
        assert!(softcap(f32::NAN, 2.0).is_nan());
        assert_eq!(softcap(0.0, 2.0), 0.0);
    }

    #[test]
    fn unpermute_moves_every_row_to_its_entry() {
        let order = [3u32, 0, 4, 1, 2, 5];
        let (d, rs) = (2, 3);
        let mut buf = vec![-1.0f32; order.len() * rs];
        for (pos, &ent) in order.iter().enumerate() {
            buf[pos * rs] = ent as f32;
            buf[pos * rs + 1] = 10.0 * ent as f32;
        }
        unpermute_rows(&mut buf, rs, d, &order);
        for r in 0..order.len() {
            assert_eq!(buf[r * rs], r as f32);
            assert_eq!(buf[r * rs + 1], 10.0 * r as f32);
            assert_eq!(buf[r * rs + 2], -1.0);
        }
    }

    #[test]
    fn grad_row_kernels_agree() {
        let z: Vec<f32> = (0..37)
            .map(|i| ((i * 7919) % 23) as f32 * 0.4 - 4.0)
            .collect();
        for cap in [0.0f32, 3.0] {
            let mut a = z.clone();
            let mut b = z.clone();
            let ma = grad_row_impl(&mut a, 2.5, 0.7, cap);
            let mb = grad_row_fn()(&mut b, 2.5, 0.7, cap);
            assert_eq!(ma, mb);
            assert_eq!(a, b);
            for (k, &zz) in z.iter().enumerate() {
                let want = 0.7 * ((zz as f64 - 2.5).exp()) * cap_slope(zz, cap) as f64;
                assert!((a[k] as f64 - want).abs() < 1e-6 * (1.0 + want.abs()));
            }
        }
    }
}
