//! `token_logprobs`: per-token log-probabilities, entropy, KL to a reference and collision
//! log-probability from logits `[N, T, V]`, with sequence sums and the gradient to the
//! logits. The primitive under every preference and RL loss of this family.
//!
//! **Inputs** (already shifted: `logits[n,t]` predicts `labels[n,t]`)
//! - `logits [N,T,V]` f32, differentiable (the gradient may be written over the logits).
//! - `labels [N,T]` i64: a token in `[0, V)` or `ignore_index` (masked position).
//! - `token_weight [N,T]` f32, optional (1): weight of each token in `seq_logps` (LD-DPO's
//!   down-weighting, WPO-style weights). Not checked; any finite value.
//! - `ref_logits [N,T,V]` f32, optional: enables `token_kl`.
//! - `grad_token_logps`, `grad_entropy`, `grad_token_kl [N,T]` f32, optional (0): cotangents of
//!   the per-token outputs (see *Value and gradient*).
//!
//! **Parameters**: `temperature` τ (f64, 1, `(0, ∞)`; the reference uses the same τ, as TRL
//! GRPO does), `ignore_index` (i64, −100; must not lie in `[0, V)`), `average` (bool, false:
//! `seq_logps` divides by the row's token count, at least 1).
//!
//! **Math** (`m = 1[label ≠ ignore_index]`, `ζ = logits/τ`, `π = softmax ζ`, `q =
//! softmax(ref_logits/τ)`, all outputs 0 at masked positions):
//! `token_logps = m·log π_y`; `token_count[n] = Σ_t m`; `seq_logps[n] = Σ_t m·w·log π_y`
//! (÷ `max(count, 1)` when `average`); `entropy = −m·Σ_v π_v log π_v`;
//! `token_kl = m·Σ_v q_v (log π_v − log q_v)` (= −KL(q‖π) ≤ 0, the SparsePO code's sign);
//! `log_collision = m·log Σ_v π_v²` (no gradient; WPO's weight is
//! `exp(mean_t(token_logps − log_collision))`, computed by the caller).
//!
//! **Value and gradient.** The returned per-row value (the `none` output, reduced by
//! `mean`/`sum` over `N`) is `J_n = seq_logps[n] + Σ_t (ḡ_lp·token_logps + ḡ_H·entropy +
//! ḡ_kl·token_kl)[n,t]`, where the `ḡ` are the optional cotangent inputs (absent = 0, so
//! `J = seq_logps` by default). The gradient is exactly `∂J/∂logits` scaled by the reduction and
//! `grad_output`:
//! `∂J_n/∂logits_{ntv} = (m/τ)·[c(1[v=y] − π_v) + ḡ_kl(q_v − π_v) − ḡ_H π_v(log π_v + H)]`,
//! `c = ḡ_lp + w·(average ? 1/max(count,1) : 1)`.
//! - The usual chain (a `dpo` gradient on `seq_logps`): `reduction = none` with
//!   `grad_output = ∂loss/∂seq_logps`.
//! - A full vector-Jacobian product with a sequence cotangent `ḡ_seq[n]` and token cotangents:
//!   `reduction = sum`, `token_weight = w·ḡ_seq[n]` (0 when there is no sequence cotangent)
//!   and the token cotangents as inputs.
//!
//! The per-token values come back as the auxiliary outputs `token_logps`, `entropy`,
//! `token_kl` (needs `ref_logits`), `log_collision [N,T]` and `token_count [N]`.
//!
//! **Source**: the log-prob computation shared by the trainers (TRL DPO/GRPO/KTO, SimPO,
//! SparsePO code bases); the KL term as in *SparsePO: Controlling Preference Alignment of LLMs
//! via Sparse Token Masks*; the collision term as TRL's `use_weighting` (WPO). Trainers take a
//! full `log_softmax` and gather; this is the same function without materialising it.
//!
//! **CPU path**: rows `(n, t)` run in parallel over the row executor shared with
//! `cross_entropy` ([`map_rows`]); each row is ONE streaming pass over `V` (online max with
//! the sums `Σe`, `Σe·ζ`, `Σe²` and, with a reference, `Σe_r`, `Σe_r·(ζ−ζr)`, 16 vector
//! lanes, f64 across blocks), then one pass writing the gradient (in place when asked). With
//! τ = 1 and no entropy, collision or reference, it is exactly `cross_entropy`'s kernel
//! (`max_sumexp` + `softmax_affine`). Deterministic whatever the thread count.
//!
//! **GPU path** (`token_logprobs.wgsl`): the same validation (`prepare`), then one
//! dispatch per chunk of token rows. Each row (one workgroup for large `V`, several rows per
//! workgroup for small `V`, as the row-wise skeleton sizes them) is streamed once with the
//! online max and the running sums `Σe`, `Σe·(ζ−m)`, `Σe²` and, with a reference, its own
//! max, `Σe_r` and `Σe_r·(ζ−ζr)`, in f32 per thread, merged over the threads by a fixed-order
//! tree (deterministic, no atomics); a second pass over the row writes the gradient (in place
//! over the logits when asked), recomputing `π` and `q` element by element. The kernel
//! returns the four per-token values; sequence sums, the reduction and the aux outputs are
//! formed on the host in f64 in token order, as on the CPU. Logits, reference and gradient
//! may be host memory or device buffers (`Data::Device`, `Grad::Device`, in place on the
//! device), sequences may be strided, and chunks (bounded by the device's largest binding)
//! may start inside a sequence.

use crate::backend::cpu::{
    RowIo, RowsIo, SoftmaxStats, VjpCoef, log_softmax_vjp, map_rows, max_sumexp, softmax_affine,
    softmax_stats,
};
use crate::compute::Compute;
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::rowwise::rows_io;
use crate::exec::targets::checked_targets;
use crate::params::{ParamSpec, ParamValue, Params};
use crate::reduction::RowReducer;
use crate::spec::{AuxSpec, Domain, InputSpec, LossSpec};
use crate::tensor::TensorMut;
use crate::{bail, err};

const LOGITS: usize = 0;
const LABELS: usize = 1;
const WEIGHT: usize = 2;
const REF: usize = 3;
const G_LP: usize = 4;
const G_H: usize = 5;
const G_KL: usize = 6;

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        "token_logprobs",
        "preference",
        "Per-token log-probs, sequence sums, entropy and KL to a reference from logits, in one fused pass over the vocabulary",
        "The gathered log-softmax of the TRL DPO/GRPO/KTO trainers; KL term of SparsePO (Controlling Preference Alignment of LLMs via Sparse Token Masks); collision term of WPO",
    )
    .input(InputSpec::f32("logits", "N,T,V").grad().doc("next-token logits, already shifted"))
    .input(
        InputSpec::i64("labels", "N,T")
            .domain(Domain::Class(crate::text::Text::new("V")))
            .doc("token id in [0, V) or ignore_index"),
    )
    .input(
        InputSpec::f32("token_weight", "N,T")
            .optional()
            .domain(Domain::NonNegative)
            .doc("weight of each token in seq_logps (default 1)"),
    )
    .input(
        InputSpec::f32("ref_logits", "N,T,V")
            .optional()
            .doc("reference-model logits (enables token_kl)"),
    )
    .input(
        InputSpec::f32("grad_token_logps", "N,T")
            .optional()
            .doc("cotangent of token_logps (default 0)"),
    )
    .input(
        InputSpec::f32("grad_entropy", "N,T")
            .optional()
            .doc("cotangent of entropy (default 0)"),
    )
    .input(
        InputSpec::f32("grad_token_kl", "N,T")
            .optional()
            .doc("cotangent of token_kl (default 0; needs ref_logits)"),
    )
    .param(
        ParamSpec::f64_open_min(
            "temperature",
            1.0,
            0.0,
            f64::INFINITY,
            "logits (and reference logits) are divided by this",
        )
        .open_max(),
    )
    .param(ParamSpec::i64(
        "ignore_index",
        -100,
        i64::MIN,
        i64::MAX,
        "labels equal to this are masked; must not lie in [0, V)",
    ))
    .param(ParamSpec::bool(
        "average",
        false,
        "seq_logps divides by the row's token count (at least 1)",
    ))
    .aux(AuxSpec::new("token_logps", "N,T", "log pi(label), 0 where masked"))
    .aux(AuxSpec::new("token_count", "N", "unmasked tokens per row"))
    .aux(AuxSpec::new("entropy", "N,T", "-sum_v pi log pi, 0 where masked"))
    .aux(AuxSpec::new(
        "token_kl",
        "N,T",
        "sum_v q (log pi - log q) = -KL(q||pi), needs ref_logits",
    ))
    .aux(AuxSpec::new(
        "log_collision",
        "N,T",
        "log sum_v pi^2 (no gradient)",
    ))
    .rows("N")
    .in_place();
    LossDef::new(spec, TokenLogprobs)
        .gpu(crate::custom_gpu!(TokenLogprobs))
        .test_params(&[("average", ParamValue::Bool(true))])
        .test_params(&[("temperature", ParamValue::F64(0.7))])
        .test_params(&[
            ("temperature", ParamValue::F64(1.3)),
            ("average", ParamValue::Bool(true)),
        ])
}

/// The implementation.
pub struct TokenLogprobs;

/// The GPU row kernel (after the losskit prelude).
#[cfg(feature = "wgpu")]
const GPU_SOURCE: &str = include_str!("token_logprobs.wgsl");

/// Per-token results of one row.
#[derive(Clone, Copy, Default)]
struct Tok {
    lp: f64,
    h: f64,
    kl: f64,
    coll: f64,
}

/// The auxiliary output destinations of one call.
struct Aux<'a> {
    lp: Option<TensorMut<'a>>,
    cnt: Option<TensorMut<'a>>,
    h: Option<TensorMut<'a>>,
    kl: Option<TensorMut<'a>>,
    coll: Option<TensorMut<'a>>,
}

/// What both paths need before touching the logits: the checked options, labels and small
/// inputs (read back from device buffers when they live there), and the aux destinations.
struct Prep<'a> {
    n: usize,
    t: usize,
    v: usize,
    ig: i64,
    k: f32,
    average: bool,
    labels: Vec<i64>,
    w: Option<Vec<f32>>,
    g_lp: Option<Vec<f32>>,
    g_h: Option<Vec<f32>>,
    g_kl: Option<Vec<f32>>,
    has_ref: bool,
    count: Vec<f64>,
    need_h: bool,
    need_coll: bool,
    aux: Aux<'a>,
}

const ID: &str = "token_logprobs";

/// Validation (the same on both backends, before anything is computed) and preparation.
fn prepare<'a>(p: &Params, c: &mut Compute<'a>) -> Result<Prep<'a>> {
    let id = ID;
    let (n, t, v) = (c.dim("N"), c.dim("T"), c.dim("V"));
    let ig = p.i64("ignore_index");
    if ig >= 0 && (ig as u64) < v as u64 {
        bail!(
            InvalidParam,
            "{id}: ignore_index = {ig} lies inside the vocabulary [0, {v})"
        );
    }
    let k = (1.0 / p.f64("temperature")) as f32;
    let average = p.bool("average");
    let labels = checked_targets(
        id,
        c.get(LABELS)
            .ok_or_else(|| err!(Internal, "{id}: labels missing"))?,
        v,
        ig,
    )?;
    let opt = |c: &Compute<'_>, i: usize| c.get(i).map(|x| x.read_f32()).transpose();
    let w = opt(c, WEIGHT)?;
    let (g_lp, g_h, g_kl) = (opt(c, G_LP)?, opt(c, G_H)?, opt(c, G_KL)?);
    let has_ref = c.get(REF).is_some();
    if g_kl.is_some() && !has_ref {
        bail!(
            InvalidInput,
            "{id}: grad_token_kl is given but ref_logits is absent (token_kl needs it)"
        );
    }
    let aux = Aux {
        lp: c.take_aux("token_logps"),
        cnt: c.take_aux("token_count"),
        h: c.take_aux("entropy"),
        kl: c.take_aux("token_kl"),
        coll: c.take_aux("log_collision"),
    };
    if aux.kl.is_some() && !has_ref {
        bail!(
            InvalidArg,
            "{id}: auxiliary output token_kl needs the ref_logits input"
        );
    }
    let count: Vec<f64> = (0..n)
        .map(|i| {
            labels[i * t..(i + 1) * t]
                .iter()
                .filter(|&&y| y != ig)
                .count() as f64
        })
        .collect();
    Ok(Prep {
        n,
        t,
        v,
        ig,
        k,
        average,
        need_h: aux.h.is_some() || g_h.is_some(),
        need_coll: aux.coll.is_some(),
        labels,
        w,
        g_lp,
        g_h,
        g_kl,
        has_ref,
        count,
        aux,
    })
}

impl Prep<'_> {
    /// `1/max(count, 1)` with `average`, else 1.
    fn avg(&self, nn: usize) -> f64 {
        if self.average {
            1.0 / self.count[nn].max(1.0)
        } else {
            1.0
        }
    }

    /// The cotangents of token row `j` of sequence `nn`, times the reduction scale `gs`:
    /// `(c, ḡ_H, ḡ_kl)` of the gradient formula.
    fn cotangents(&self, gs: f64, nn: usize, j: usize) -> (f64, f64, f64) {
        let at = |g: &Option<Vec<f32>>| g.as_ref().map_or(0.0, |g| g[j] as f64);
        let wj = self.w.as_ref().map_or(1.0, |w| w[j] as f64);
        (
            gs * (at(&self.g_lp) + wj * self.avg(nn)),
            gs * at(&self.g_h),
            gs * at(&self.g_kl),
        )
    }

    /// Sequence values (in f64, in token order), the reduction and the aux outputs.
    fn finish(mut self, toks: &[Tok], reducer: &RowReducer<'_>, loss: &mut [f32]) {
        let (n, t) = (self.n, self.t);
        let mut per_row = vec![0.0f64; n];
        for (nn, out) in per_row.iter_mut().enumerate() {
            let mut seq = 0.0f64;
            let mut extra = 0.0f64;
            for tt in 0..t {
                let j = nn * t + tt;
                let tk = toks[j];
                seq += self.w.as_ref().map_or(1.0, |w| w[j] as f64) * tk.lp;
                if let Some(g) = &self.g_lp {
                    extra += g[j] as f64 * tk.lp;
                }
                if let Some(g) = &self.g_h {
                    extra += g[j] as f64 * tk.h;
                }
                if let Some(g) = &self.g_kl {
                    extra += g[j] as f64 * tk.kl;
                }
            }
            *out = seq * self.avg(nn) + extra;
        }
        reducer.write_loss(&per_row, loss);
        let put = |a: &mut Option<TensorMut<'_>>, f: &dyn Fn(&Tok) -> f64| {
            if let Some(a) = a.as_mut() {
                for nn in 0..n {
                    for tt in 0..t {
                        a.data[nn * a.row_stride + tt] = f(&toks[nn * t + tt]) as f32;
                    }
                }
            }
        };
        put(&mut self.aux.lp, &|x| x.lp);
        put(&mut self.aux.h, &|x| x.h);
        put(&mut self.aux.kl, &|x| x.kl);
        put(&mut self.aux.coll, &|x| x.coll);
        if let Some(a) = self.aux.cnt.as_mut() {
            for (nn, &k) in self.count.iter().enumerate() {
                a.data[nn * a.row_stride] = k as f32;
            }
        }
    }
}

impl LossImpl for TokenLogprobs {
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let id = ID;
        let pre = prepare(p, c)?;
        let (n, t, v, ig, k) = (pre.n, pre.t, pre.v, pre.ig, pre.k);
        let labels = &pre.labels;
        let has_ref = pre.has_ref;
        let reducer = RowReducer::new(c.reduction, c.grad_output, n as f64);
        // Which statistics each row needs beyond the log-partition.
        let (need_h, need_coll) = (pre.need_h, pre.need_coll);
        let full = has_ref || need_h || need_coll || k != 1.0;

        let Compute { inputs, grads, .. } = c;
        let (head, rest) = inputs.split_at_mut(LOGITS + 1);
        let (ref_data, ref_stride) = match &rest[REF - LOGITS - 1] {
            Some(r) => (r.f32_data(), r.row_stride),
            None => (None, 0),
        };
        let x = head[LOGITS]
            .as_mut()
            .ok_or_else(|| err!(Internal, "{id}: logits missing"))?;
        let x_stride = x.row_stride;
        let g_stride = match &grads[LOGITS] {
            crate::tensor::Grad::Out(o) => o.row_stride,
            _ => x_stride,
        };
        let io = rows_io(x, &mut grads[LOGITS])?;
        let tv = t * v;
        let row = |nn: usize, tt: usize, io: &mut RowIo<'_>| -> Tok {
            let j = nn * t + tt;
            let y = labels[j];
            if y == ig {
                io.zero_grad();
                return Tok::default();
            }
            let y = y as usize;
            let xr = io.x();
            let rr = ref_data.map(|r| &r[nn * ref_stride + tt * v..nn * ref_stride + (tt + 1) * v]);
            let (st, rs) = if full {
                softmax_stats(xr, rr, k)
            } else {
                let (m, s) = max_sumexp(xr);
                (
                    SoftmaxStats {
                        m,
                        s,
                        ..Default::default()
                    },
                    Default::default(),
                )
            };
            let lse = st.lse();
            let lp = (xr[y] * k) as f64 - lse;
            let h = if need_h { st.entropy() } else { 0.0 };
            let kl = if rr.is_some() {
                rs.w / rs.s - lse + rs.lse()
            } else {
                0.0
            };
            let coll = if need_coll { st.log_collision() } else { 0.0 };
            if io.wants_grad() {
                let (cc, gh, gk) = pre.cotangents(reducer.grad_scale(nn), nn, j);
                let kf = k as f64;
                let coef = VjpCoef {
                    k,
                    lse: lse as f32,
                    lse_r: if rr.is_some() { rs.lse() as f32 } else { 0.0 },
                    a: (-(cc + gk + gh * h) * kf) as f32,
                    b: (-gh * kf) as f32,
                    kq: (gk * kf) as f32,
                };
                let rq = if gk != 0.0 { rr } else { None };
                let plain = coef.b == 0.0 && rq.is_none() && k == 1.0;
                match io {
                    RowIo::Separate(x, g) => {
                        if plain {
                            softmax_affine(Some(x), g, coef.lse, coef.a, 0.0, None)
                        } else {
                            log_softmax_vjp(Some(x), g, rq, coef)
                        }
                    }
                    RowIo::InPlace(g) => {
                        if plain {
                            softmax_affine(None, g, coef.lse, coef.a, 0.0, None)
                        } else {
                            log_softmax_vjp(None, g, rq, coef)
                        }
                    }
                    RowIo::Read(_) => {}
                }
                if let Some(g) = io.grad_mut() {
                    g[y] += (cc * kf) as f32;
                }
            }
            Tok { lp, h, kl, coll }
        };
        let contiguous = x_stride == tv && g_stride == tv;
        let toks: Vec<Tok> = if v == 0 || t == 0 {
            // No vocabulary: every label is ignore_index (checked above); nothing to write.
            vec![Tok::default(); n * t]
        } else if contiguous {
            // One row per token: the most parallelism.
            let io = match io {
                RowsIo::Read { x, .. } => RowsIo::Read { x, stride: v },
                RowsIo::Separate { x, g, .. } => RowsIo::Separate {
                    x,
                    stride: v,
                    g,
                    gstride: v,
                },
                RowsIo::InPlace { x, .. } => RowsIo::InPlace { x, stride: v },
            };
            map_rows(io, n * t, v, |j, mut r| row(j / t, j % t, &mut r))
        } else {
            // Strided rows: one task per sequence, tokens in order inside it.
            map_rows(io, n, tv, |nn, r| {
                split_tokens(r, v)
                    .into_iter()
                    .enumerate()
                    .map(|(tt, mut sub)| row(nn, tt, &mut sub))
                    .collect::<Vec<Tok>>()
            })
            .into_iter()
            .flatten()
            .collect()
        };

        pre.finish(&toks, &reducer, c.loss);
        Ok(())
    }
}

/// Split one sequence row `[T·V]` into its token rows of `V`.
fn split_tokens(r: RowIo<'_>, v: usize) -> Vec<RowIo<'_>> {
    match r {
        RowIo::Read(x) => x.chunks(v).map(RowIo::Read).collect(),
        RowIo::Separate(x, g) => x
            .chunks(v)
            .zip(g.chunks_mut(v))
            .map(|(a, b)| RowIo::Separate(a, b))
            .collect(),
        RowIo::InPlace(x) => x.chunks_mut(v).map(RowIo::InPlace).collect(),
    }
}

/// The GPU path: `token_logprobs.wgsl` (one row kernel, see its header) driven from here.
/// Validation and preparation are the CPU path's ([`prepare`]); the kernel returns per token
/// row `(log π_y, entropy, token KL, log collision)` in f32 and writes the gradient; the
/// sequence sums, the reduction and the aux outputs are then formed on the host in f64, in
/// token order ([`Prep::finish`]), so results do not depend on the launch shape.
#[cfg(feature = "wgpu")]
mod gpu {
    use super::{LOGITS, Prep, REF, Tok, TokenLogprobs, prepare};
    use crate::backend::wgpu::buffers::{self, Pooled, Window};
    use crate::backend::wgpu::launch;
    use crate::backend::wgpu::{BindKind, GpuDevice, PRELUDE, PipelineKey};
    use crate::compute::Compute;
    use crate::error::Result;
    use crate::exec::gpu::GpuLoss;
    use crate::exec::gpu::rowwise;
    use crate::params::Params;
    use crate::reduction::RowReducer;
    use crate::spec::LossSpec;
    use crate::tensor::{Data, Grad, Tensor};
    use crate::{bail, err};

    const ID: &str = super::ID;

    /// Where the logits of a chunk come from and where their gradient goes.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mode {
        /// Host logits, uploaded per chunk; the gradient is written over the uploaded copy
        /// and read back into the host destination.
        Host,
        /// Device logits; gradient over them (in place) or none.
        DeviceInPlace,
        /// Device logits, gradient into a device buffer.
        DeviceOut,
        /// Device logits, gradient into host memory through a scratch buffer.
        DeviceToHost,
    }

    /// Element index of token row `j` (sequence `j / T`, token `j % T`) in a tensor whose
    /// sequences are `stride` elements apart.
    fn row_start(j: usize, t: usize, v: usize, stride: usize) -> usize {
        (j / t) * stride + (j % t) * v
    }

    /// Elements spanned by token rows `[j0, j1)`.
    fn span(j0: usize, j1: usize, t: usize, v: usize, stride: usize) -> usize {
        row_start(j1 - 1, t, v, stride) + v - row_start(j0, t, v, stride)
    }

    /// End of the chunk starting at token row `j0`: at most `cap` rows, and every device
    /// window (`strides`) within `max_bytes` including the alignment slack.
    fn chunk_end(
        j0: usize,
        rows: usize,
        cap: usize,
        (t, v): (usize, usize),
        strides: &[usize],
        (max_bytes, slack): (u64, u64),
    ) -> usize {
        let fits = |j1: usize| {
            strides
                .iter()
                .all(|&s| (span(j0, j1, t, v, s) * 4) as u64 + slack <= max_bytes)
        };
        let hi = rows.min(j0.saturating_add(cap));
        if fits(hi) {
            return hi;
        }
        // fits(j0 + 1) holds (one row fits: checked by rows_per_chunk); bisect.
        let (mut lo, mut hi) = (j0 + 1, hi);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) { lo = mid } else { hi = mid }
        }
        lo
    }

    fn layout() -> [BindKind; 6] {
        use BindKind::*;
        [Uniform, ReadWrite, ReadWrite, ReadWrite, Read, ReadWrite]
    }

    fn entry(binding: u32, w: Window<'_>) -> wgpu::BindGroupEntry<'_> {
        wgpu::BindGroupEntry {
            binding,
            resource: w.resource(),
        }
    }

    /// Contiguous copy of token rows `[j0, j1)` of a host tensor (sequences `stride` apart).
    fn gather(src: &[f32], j0: usize, j1: usize, t: usize, v: usize, stride: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity((j1 - j0) * v);
        for j in j0..j1 {
            let a = row_start(j, t, v, stride);
            out.extend_from_slice(&src[a..a + v]);
        }
        out
    }

    impl GpuLoss for TokenLogprobs {
        fn compute_gpu(
            &self,
            dev: &GpuDevice,
            _spec: &LossSpec,
            p: &Params,
            c: &mut Compute<'_>,
        ) -> Result<()> {
            let pre = prepare(p, c)?;
            let reducer = RowReducer::new(c.reduction, c.grad_output, pre.n as f64);
            let want_grad = c.wants_grad(LOGITS);
            let rows = pre.n * pre.t;
            // Per token row: (label bits or -1, c, ḡ_H, ḡ_kl), the cotangents scaled.
            let mut meta: Vec<[u32; 4]> = Vec::with_capacity(rows);
            for j in 0..rows {
                let nn = j / pre.t;
                let y = pre.labels[j];
                if y == pre.ig {
                    meta.push([u32::MAX, 0, 0, 0]);
                } else {
                    let (cc, gh, gk) = pre.cotangents(reducer.grad_scale(nn), nn, j);
                    meta.push([
                        y as i32 as u32,
                        (cc as f32).to_bits(),
                        (gh as f32).to_bits(),
                        (gk as f32).to_bits(),
                    ]);
                }
            }
            let mut toks = vec![Tok::default(); rows];
            if rows > 0 && pre.v > 0 {
                dev.scoped(ID, || run(dev, &pre, c, &meta, want_grad, &mut toks))?;
            }
            pre.finish(&toks, &reducer, c.loss);
            Ok(())
        }
    }

    /// Chunks of token rows through the kernel.
    fn run(
        dev: &GpuDevice,
        pre: &Prep<'_>,
        c: &mut Compute<'_>,
        meta: &[[u32; 4]],
        want_grad: bool,
        toks: &mut [Tok],
    ) -> Result<()> {
        use crate::backend::wgpu::buffers::WgpuBuffer;
        let (t, v) = (pre.t, pre.v);
        let rows = pre.n * t;
        let Compute { inputs, grads, .. } = c;
        let (head, rest) = inputs.split_at_mut(LOGITS + 1);
        let rt: Option<&Tensor<'_>> = rest[REF - LOGITS - 1].as_ref();
        let x = head[LOGITS]
            .as_mut()
            .ok_or_else(|| err!(Internal, "{ID}: logits missing"))?;
        let x_stride = x.row_stride;
        let gslot = &mut grads[LOGITS];
        let mode = match (&x.data, &*gslot) {
            (Data::Device(_), Grad::None | Grad::InPlace) => Mode::DeviceInPlace,
            (Data::Device(_), Grad::Device(_)) => Mode::DeviceOut,
            (Data::Device(_), Grad::Out(_)) => Mode::DeviceToHost,
            (_, Grad::Device(_)) => bail!(
                Unsupported,
                "{ID}: a device gradient needs device logits (pass the logits as an lk_buffer tensor)"
            ),
            _ => Mode::Host,
        };
        let host_grad = want_grad && matches!(mode, Mode::Host | Mode::DeviceToHost);

        // Chunking: contiguous scratch rows bound the chunk by rows_per_chunk; device windows
        // (strided sequences) are bounded by their spans.
        let slack = buffers::window_slack(dev);
        let maxb = dev.max_binding_bytes();
        let mut cap = launch::rows_per_chunk(maxb, v, v, 4, slack, ID)?;
        // Per-row meta and outputs: 16 bytes each.
        cap = cap.min((maxb / 16).max(1) as usize);
        let mut dev_strides = Vec::new();
        if matches!(x.data, Data::Device(_)) {
            dev_strides.push(x_stride);
        }
        if let Some(Tensor {
            data: Data::Device(_),
            row_stride,
            ..
        }) = rt
        {
            dev_strides.push(*row_stride);
        }
        if let Grad::Device(o) = &*gslot {
            dev_strides.push(o.row_stride);
        }

        let g_threads = rowwise::group_threads(v);
        let (bgl, playout) = dev.layout("token_logprobs", &layout());
        let source = format!("{PRELUDE}\n{}", super::GPU_SOURCE);
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let overrides = [
            ("LK_G", g_threads as f64),
            (
                "LK_IN_PLACE",
                flag(!matches!(mode, Mode::DeviceOut | Mode::DeviceToHost)),
            ),
            ("LK_WANT_GRAD", flag(want_grad)),
            ("LK_H", flag(pre.need_h)),
            ("LK_COLL", flag(pre.need_coll)),
            ("LK_REF", flag(pre.has_ref)),
            ("LK_GH", flag(want_grad && pre.g_h.is_some())),
            ("LK_GKL", flag(want_grad && pre.g_kl.is_some())),
        ];
        let pipe = dev.pipelines.get_with_layout(
            dev,
            &PipelineKey::new(ID, &source, "main", launch::DEFAULT_WG, &overrides),
            &source,
            Some(&playout),
        )?;
        let dummy = dev.pool.take(dev, 256, buffers::STORAGE)?;
        let ref_dev = match rt {
            Some(Tensor {
                data: Data::Device(d),
                ..
            }) => Some(d.clone()),
            _ => None,
        };
        let x_dev = match &x.data {
            Data::Device(d) => Some(d.clone()),
            _ => None,
        };
        let g_dev = match &*gslot {
            Grad::Device(o) => Some((o.data.clone(), o.row_stride)),
            _ => None,
        };

        let mut j0 = 0usize;
        while j0 < rows {
            let j1 = chunk_end(j0, rows, cap, (t, v), &dev_strides, (maxb, slack));
            let nr = j1 - j0;
            let scratch_bytes = (nr * v * 4) as u64;
            // Logits: a window of the device buffer, or the chunk's rows uploaded.
            let x_up: Option<Pooled<'_>>;
            let (xw, x_stride_k) = match &x_dev {
                Some(d) => {
                    x_up = None;
                    let start = ((d.offset + row_start(j0, t, v, x_stride)) * 4) as u64;
                    let len = (span(j0, j1, t, v, x_stride) * 4) as u64;
                    (
                        Window::new(dev, &d.buffer.wgpu_ref().buf, start, len),
                        x_stride,
                    )
                }
                None => {
                    let src = x
                        .f32_data()
                        .ok_or_else(|| err!(Internal, "{ID}: logits not f32"))?;
                    let rowsv = gather(src, j0, j1, t, v, x_stride);
                    x_up = Some(buffers::upload(dev, bytemuck::cast_slice(&rowsv))?);
                    let b = x_up.as_ref().map_or(dummy.buf(), |p| p.buf());
                    (Window::new(dev, b, 0, scratch_bytes), t * v)
                }
            };
            // Reference logits, the same way.
            let r_up: Option<Pooled<'_>>;
            let (rw, r_stride_k) = match (rt, &ref_dev) {
                (Some(r), Some(d)) => {
                    r_up = None;
                    let s = r.row_stride;
                    let start = ((d.offset + row_start(j0, t, v, s)) * 4) as u64;
                    let len = (span(j0, j1, t, v, s) * 4) as u64;
                    (Window::new(dev, &d.buffer.wgpu_ref().buf, start, len), s)
                }
                (Some(r), None) => {
                    let src = r
                        .f32_data()
                        .ok_or_else(|| err!(Internal, "{ID}: ref_logits not f32"))?;
                    let rowsv = gather(src, j0, j1, t, v, r.row_stride);
                    r_up = Some(buffers::upload(dev, bytemuck::cast_slice(&rowsv))?);
                    let b = r_up.as_ref().map_or(dummy.buf(), |p| p.buf());
                    (Window::new(dev, b, 0, scratch_bytes), t * v)
                }
                _ => {
                    r_up = None;
                    (Window::whole(dummy.buf()), 0)
                }
            };
            let _ = &r_up;
            // Gradient: a device window, a scratch buffer read back, or over the logits.
            let g_scratch: Option<Pooled<'_>>;
            let (gw, g_stride_k) = match (mode, &g_dev) {
                (Mode::DeviceOut, Some((d, s))) => {
                    g_scratch = None;
                    let start = ((d.offset + row_start(j0, t, v, *s)) * 4) as u64;
                    let len = (span(j0, j1, t, v, *s) * 4) as u64;
                    (Window::new(dev, &d.buffer.wgpu_ref().buf, start, len), *s)
                }
                (Mode::DeviceToHost, _) if want_grad => {
                    g_scratch = Some(dev.pool.take(dev, scratch_bytes, buffers::STORAGE)?);
                    let b = g_scratch.as_ref().map_or(dummy.buf(), |p| p.buf());
                    (Window::new(dev, b, 0, scratch_bytes), t * v)
                }
                _ => {
                    g_scratch = None;
                    (Window::whole(dummy.buf()), 0)
                }
            };
            let meta_buf = buffers::upload(dev, bytemuck::cast_slice(&meta[j0..j1]))?;
            let outr = dev.pool.take(dev, (nr * 16) as u64, buffers::STORAGE)?;
            let u: [u32; 16] = [
                nr as u32,
                v as u32,
                t as u32,
                j0 as u32,
                (j0 / t) as u32,
                (j0 % t) as u32,
                xw.base,
                x_stride_k as u32,
                rw.base,
                r_stride_k as u32,
                gw.base,
                g_stride_k as u32,
                pre.k.to_bits(),
                0,
                0,
                0,
            ];
            let ubuf = buffers::uniform(dev, bytemuck::cast_slice(&u));
            let bg = dev.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(ID),
                layout: &bgl,
                entries: &[
                    entry(0, Window::whole(&ubuf)),
                    entry(1, xw),
                    entry(2, gw),
                    entry(3, rw),
                    entry(4, Window::whole(meta_buf.buf())),
                    entry(5, Window::whole(outr.buf())),
                ],
            });
            let mut enc = dev
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(ID) });
            let per_wg = (launch::DEFAULT_WG / g_threads) as u64;
            let (gx, gy) = launch::grid(
                (nr as u64).div_ceil(per_wg),
                dev.limits.max_compute_workgroups_per_dimension,
            )?;
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(ID),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&pipe);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(gx, gy, 1);
            }
            let mut outv = vec![0u8; nr * 16];
            let mut gv = if host_grad {
                vec![0u8; nr * v * 4]
            } else {
                Vec::new()
            };
            {
                let mut reads: Vec<(&wgpu::Buffer, u64, &mut [u8])> =
                    vec![(outr.buf(), 0, &mut outv)];
                if host_grad {
                    let src = match mode {
                        Mode::Host => x_up.as_ref().map(|p| p.buf()),
                        _ => g_scratch.as_ref().map(|p| p.buf()),
                    }
                    .ok_or_else(|| err!(Internal, "{ID}: gradient scratch missing"))?;
                    reads.push((src, 0, &mut gv));
                }
                buffers::submit_and_read(dev, enc, &mut reads)?;
            }
            let of: &[f32] = bytemuck::cast_slice(&outv);
            for (i, tk) in toks[j0..j1].iter_mut().enumerate() {
                *tk = Tok {
                    lp: of[4 * i] as f64,
                    h: of[4 * i + 1] as f64,
                    kl: of[4 * i + 2] as f64,
                    coll: of[4 * i + 3] as f64,
                };
            }
            if host_grad {
                let gf: &[f32] = bytemuck::cast_slice(&gv);
                let (dst, ds): (&mut [f32], usize) = match (&mut x.data, &mut *gslot) {
                    (_, Grad::Out(o)) => (&mut *o.data, o.row_stride),
                    (Data::F32InPlace(d), Grad::InPlace) => (&mut **d, x_stride),
                    _ => bail!(Internal, "{ID}: inconsistent gradient slot"),
                };
                for (i, j) in (j0..j1).enumerate() {
                    let a = row_start(j, t, v, ds);
                    dst[a..a + v].copy_from_slice(&gf[i * v..(i + 1) * v]);
                }
            }
            j0 = j1;
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn chunks_respect_strided_spans() {
            // T = 4, V = 10, sequences 50 apart: token row j starts at (j/4)*50 + (j%4)*10.
            assert_eq!(row_start(5, 4, 10, 50), 60);
            assert_eq!(span(0, 4, 4, 10, 50), 40);
            assert_eq!(span(3, 5, 4, 10, 50), 30);
            // 100 elements of binding: rows 0..4 (40) fit, 0..5 spans 60, 0..6 spans 70,
            // 0..8 spans 90, 0..9 spans 110.
            let e = chunk_end(0, 20, 100, (4, 10), &[50], (400, 0));
            assert_eq!(e, 8);
            assert!(span(0, e, 4, 10, 50) * 4 <= 400 && span(0, e + 1, 4, 10, 50) * 4 > 400);
            // The cap and the row count bound it too.
            assert_eq!(chunk_end(0, 20, 3, (4, 10), &[50], (400, 0)), 3);
            assert_eq!(chunk_end(18, 20, 100, (4, 10), &[], (400, 0)), 20);
        }
    }
}
