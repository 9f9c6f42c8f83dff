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
//! **GPU kernel needs**: a row kernel over `V` like `cross_entropy`'s (tiles with an online
//! max/sum, four running sums instead of one, a second input row for the reference), and a
//! backward pass recomputing `π` (and `q`) tile by tile.

use crate::backend::cpu::{
    RowIo, RowsIo, SoftmaxStats, VjpCoef, log_softmax_vjp, map_rows, max_sumexp, softmax_affine,
    softmax_stats,
};
use crate::compute::Compute;
use crate::error::Result;
use crate::losses::classification::{checked_targets, rows_io};
use crate::params::{ParamSpec, ParamValue, Params};
use crate::reduction::RowReducer;
use crate::registry::{AuxSpec, Domain, InputSpec, LossDef, LossImpl, LossSpec};
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
            .domain(Domain::Class(crate::registry::Text::new("V")))
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
        .test_params(&[("average", ParamValue::Bool(true))])
        .test_params(&[("temperature", ParamValue::F64(0.7))])
        .test_params(&[
            ("temperature", ParamValue::F64(1.3)),
            ("average", ParamValue::Bool(true)),
        ])
}

/// The implementation.
pub struct TokenLogprobs;

/// Per-token results of one row.
#[derive(Clone, Copy, Default)]
struct Tok {
    lp: f64,
    h: f64,
    kl: f64,
    coll: f64,
}

impl LossImpl for TokenLogprobs {
    fn compute_cpu(&self, _spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let id = "token_logprobs";
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
        let opt = |c: &Compute<'_>, i: usize| c.get(i).map(|x| x.to_f32_vec());
        let w = opt(c, WEIGHT);
        let (g_lp, g_h, g_kl) = (opt(c, G_LP), opt(c, G_H), opt(c, G_KL));
        let has_ref = c.get(REF).is_some();
        if g_kl.is_some() && !has_ref {
            bail!(
                InvalidInput,
                "{id}: grad_token_kl is given but ref_logits is absent (token_kl needs it)"
            );
        }
        let mut aux_lp = c.take_aux("token_logps");
        let mut aux_cnt = c.take_aux("token_count");
        let mut aux_h = c.take_aux("entropy");
        let mut aux_kl = c.take_aux("token_kl");
        let mut aux_coll = c.take_aux("log_collision");
        if aux_kl.is_some() && !has_ref {
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
        let reducer = RowReducer::new(c.reduction, c.grad_output, n as f64);
        // Which statistics each row needs beyond the log-partition.
        let need_h = aux_h.is_some() || g_h.is_some();
        let need_coll = aux_coll.is_some();
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
                let gs = reducer.grad_scale(nn);
                let wj = w.as_ref().map_or(1.0, |w| w[j] as f64);
                let avg = if average {
                    1.0 / count[nn].max(1.0)
                } else {
                    1.0
                };
                let cc = gs * (g_lp.as_ref().map_or(0.0, |g| g[j] as f64) + wj * avg);
                let gh = gs * g_h.as_ref().map_or(0.0, |g| g[j] as f64);
                let gk = gs * g_kl.as_ref().map_or(0.0, |g| g[j] as f64);
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

        let mut per_row = vec![0.0f64; n];
        for (nn, out) in per_row.iter_mut().enumerate() {
            let avg = if average {
                1.0 / count[nn].max(1.0)
            } else {
                1.0
            };
            let mut seq = 0.0f64;
            let mut extra = 0.0f64;
            for tt in 0..t {
                let j = nn * t + tt;
                let tk = toks[j];
                seq += w.as_ref().map_or(1.0, |w| w[j] as f64) * tk.lp;
                if let Some(g) = &g_lp {
                    extra += g[j] as f64 * tk.lp;
                }
                if let Some(g) = &g_h {
                    extra += g[j] as f64 * tk.h;
                }
                if let Some(g) = &g_kl {
                    extra += g[j] as f64 * tk.kl;
                }
            }
            *out = seq * avg + extra;
        }
        reducer.write_loss(&per_row, c.loss);
        let put = |a: &mut Option<crate::tensor::TensorMut<'_>>, f: &dyn Fn(&Tok) -> f64| {
            if let Some(a) = a.as_mut() {
                for nn in 0..n {
                    for tt in 0..t {
                        a.data[nn * a.row_stride + tt] = f(&toks[nn * t + tt]) as f32;
                    }
                }
            }
        };
        put(&mut aux_lp, &|x| x.lp);
        put(&mut aux_h, &|x| x.h);
        put(&mut aux_kl, &|x| x.kl);
        put(&mut aux_coll, &|x| x.coll);
        if let Some(a) = aux_cnt.as_mut() {
            for (nn, &k) in count.iter().enumerate() {
                a.data[nn * a.row_stride] = k as f32;
            }
        }
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
