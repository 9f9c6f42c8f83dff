//! Drivers of the losses whose rows are pairs, lists or token sequences of log-probabilities
//! (the `preference` and `rl` families).
//!
//! - Reading: [`Values`] is an f32 input read once, a view of the caller's buffer when the
//!   host data are contiguous (a copy for strided, in-place or device data), converted to
//!   f64 element by element; [`lengths`], [`check_values`] and [`both_or_neither`] are the
//!   input checks the CPU path and the GPU glue share, so both refuse the same inputs.
//! - [`run_rows`]: the row-wise driver. Rows are split into blocks that run on the rayon
//!   pool; each block keeps one [`RowGrad`] scratch, scales each row's derivatives by the
//!   reduction and the upstream gradient into a staging buffer, and returns its rows'
//!   losses. Only when every row succeeded are the staged gradients copied into the
//!   caller's buffers and the loss reduced, so an error leaves the outputs untouched. The
//!   per-row losses are reduced in row order and every row is computed by the same f64 code
//!   whatever block it falls in, so results are bit-identical for any thread count.
//! - [`run_pairwise`]: pairs `[B]` read by [`read_pairs`] (references, lengths and
//!   `pair_weight` optional), each loss supplying a function of one [`Pair`].
//! - [`run_tokens`]: token-level losses on `[N, T]` rows with a 0/1 mask and the `loss_agg`
//!   row denominators ([`mask_denominators`]).
//! - [`finish_batch`]: the output step of a batch-level loss whose terms couple rows.
//!
//! Layouts: an input may put fixed-size axes before the per-sample letter (`[2, B, T]`);
//! [`RowGrad`] then holds one derivative row per leading index (see [`RowLayout`]).

use std::borrow::Cow;

use rayon::prelude::*;

use crate::compute::Compute;
use crate::error::Result;
use crate::params::Params;
use crate::reduction::RowReducer;
use crate::spec::LossSpec;
use crate::tensor::{Data, Grad, TensorMut};
use crate::{bail, err};

/// The f32 elements of one input, contiguous in the input's row-major layout.
///
/// Contiguous host data are borrowed from the caller; strided rows, in-place data and
/// device data (read back, for checks both backends make) are copied once. [`Values::at`]
/// converts one element to f64, exactly, so arithmetic on the values runs in f64.
#[derive(Clone, Debug)]
pub struct Values<'a>(Cow<'a, [f32]>);

impl<'a> Values<'a> {
    /// Values from data the caller already holds.
    pub fn owned(v: Vec<f32>) -> Self {
        Values(Cow::Owned(v))
    }
    /// Element `i` as f64.
    #[inline]
    pub fn at(&self, i: usize) -> f64 {
        f64::from(self.0[i])
    }
    /// The elements as f32.
    #[inline]
    pub fn as_f32(&self) -> &[f32] {
        &self.0
    }
    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when there are no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The elements as an f64 vector.
    pub fn to_f64(&self) -> Vec<f64> {
        self.0.iter().map(|&v| f64::from(v)).collect()
    }
}

/// Input `k` as f32 values, if present (device data are read back).
pub fn values<'a>(c: &Compute<'a>, k: usize) -> Result<Option<Values<'a>>> {
    let Some(t) = c.get(k) else {
        return Ok(None);
    };
    let n = t.numel();
    let contiguous = t.rows() <= 1 || t.row_stride == t.row_len();
    let v = match &t.data {
        &Data::F32(d) if contiguous => {
            let d = d
                .get(..n)
                .ok_or_else(|| err!(Internal, "input #{k}: buffer shorter than its shape"))?;
            Values(Cow::Borrowed(d))
        }
        Data::I64(_) => bail!(Internal, "input #{k} is not an f32 input"),
        _ => Values::owned(t.read_f32()?),
    };
    Ok(Some(v))
}

/// Input `k` (required by the spec) as f32 values.
pub fn required<'a>(id: &str, c: &Compute<'a>, k: usize) -> Result<Values<'a>> {
    values(c, k)?.ok_or_else(|| err!(Internal, "{id}: required input #{k} missing"))
}

/// Input `k` as contiguous f64 values, if present (device data are read back). For code
/// that needs a whole-tensor f64 vector (a sort); row functions read [`values`] instead.
pub fn read_f64(c: &Compute<'_>, k: usize) -> Result<Option<Vec<f64>>> {
    Ok(values(c, k)?.map(|v| v.to_f64()))
}

/// Input `k` (required by the spec) as contiguous f64 values.
pub fn required_f64(id: &str, c: &Compute<'_>, k: usize) -> Result<Vec<f64>> {
    Ok(required(id, c, k)?.to_f64())
}

/// Refuse values outside a predicate, naming the input and the (first) index.
pub fn check_values<T>(
    id: &str,
    name: &str,
    v: &[T],
    ok: impl Fn(f64) -> bool + Sync,
    what: &str,
) -> Result<()>
where
    T: Copy + Into<f64> + Sync,
{
    let bad = v
        .par_iter()
        .with_min_len(1 << 14)
        .position_first(|x| !ok((*x).into()));
    if let Some(i) = bad {
        let x: f64 = v[i].into();
        bail!(InvalidInput, "{id}: {name}[{i}] = {x} {what}");
    }
    Ok(())
}

/// Lengths `L = max(len, 1)` of a length input (all 1 when it is absent).
#[derive(Clone, Debug)]
pub struct Lengths<'a>(Option<Values<'a>>);

impl Lengths<'_> {
    /// `max(len_i, 1)`.
    #[inline]
    pub fn at(&self, i: usize) -> f64 {
        self.0.as_ref().map_or(1.0, |v| v.at(i).max(1.0))
    }
}

/// The lengths of input `k` (all 1 when `k` is None or the input is absent); a negative
/// length is an invalid input.
pub fn lengths<'a>(id: &str, name: &str, c: &Compute<'a>, k: Option<usize>) -> Result<Lengths<'a>> {
    let v = k.map(|k| values(c, k)).transpose()?.flatten();
    if let Some(v) = &v {
        check_values(
            id,
            name,
            v.as_f32(),
            |x| x >= 0.0 || x.is_nan(),
            "is a negative length",
        )?;
    }
    Ok(Lengths(v))
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

/// Rows per parallel block: about four blocks per thread, and enough elements per block
/// that the block's scratch and scheduling cost little. Results do not depend on it.
fn block_rows(rows: usize, row_elems: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let min_rows = (4096 / row_elems.max(1)).max(1);
    rows.div_ceil(4 * threads).max(min_rows)
}

/// Refuse gradient destinations the host drivers cannot write (before anything is
/// computed or written).
fn check_grad_slots(c: &Compute<'_>, wanted: impl Iterator<Item = usize>) -> Result<()> {
    for k in wanted {
        match &c.grads[k] {
            Grad::InPlace => bail!(Internal, "in-place gradient of input #{k} on a row driver"),
            Grad::Device(_) => bail!(Internal, "device gradient of input #{k} on the CPU path"),
            Grad::Out(_) | Grad::None => {}
        }
    }
    Ok(())
}

/// Run a row-wise loss over `rows` rows: `f(i, g)` returns the row's loss `l_i` and writes
/// `∂l_i/∂x` for the differentiable inputs into `g` (zeroed for every row). Rows run in
/// parallel; the driver applies the reduction (`mean` divides by `den`; `den = 0` gives 0
/// and zero gradient), the upstream gradient, and writes the requested gradients once every
/// row succeeded (the error of the first failing row otherwise, outputs untouched).
pub fn run_rows<F>(spec: &LossSpec, c: &mut Compute<'_>, rows: usize, den: f64, f: F) -> Result<()>
where
    F: Fn(usize, &mut RowGrad) -> Result<f64> + Sync,
{
    let nin = spec.inputs.len();
    let mut lay = vec![RowLayout::default(); nin];
    let mut want = vec![false; nin];
    let mut row_elems = 0;
    for (k, is) in spec.inputs.iter().enumerate() {
        if let Some(t) = c.get(k) {
            row_elems += t.numel() / rows.max(1);
            if is.differentiable {
                lay[k] = row_layout(spec, k, &t.shape);
                want[k] = c.wants_grad(k);
            }
        }
    }
    check_grad_slots(c, (0..nin).filter(|&k| want[k]))?;
    let reducer = RowReducer::new(c.reduction, c.grad_output, den);
    let bs = block_rows(rows, row_elems);
    let nb = rows.div_ceil(bs);
    // Staged gradients, contiguous in each input's layout, and each block's share of them:
    // `parts[b][k][p]` holds rows `b·bs..` of leading block `p` of input `k`.
    let mut staged: Vec<Option<Vec<f32>>> = (0..nin)
        .map(|k| want[k].then(|| vec![0.0f32; lay[k].lead * rows * lay[k].w]))
        .collect();
    let mut parts: Vec<Vec<Vec<&mut [f32]>>> = (0..nb)
        .map(|_| (0..nin).map(|_| Vec::new()).collect())
        .collect();
    for (k, st) in staged.iter_mut().enumerate() {
        let w = lay[k].w;
        if let (Some(st), true) = (st, w > 0 && rows > 0) {
            for lead_block in st.chunks_mut(rows * w) {
                for (b, seg) in lead_block.chunks_mut(bs * w).enumerate() {
                    parts[b][k].push(seg);
                }
            }
        }
    }
    let blocks: Vec<Result<Vec<f64>>> = parts
        .into_par_iter()
        .enumerate()
        .map(|(b, mut part)| {
            let r0 = b * bs;
            let r1 = (r0 + bs).min(rows);
            let mut g = RowGrad {
                bufs: lay.iter().map(|l| vec![0.0; l.lead * l.w]).collect(),
            };
            let mut losses = Vec::with_capacity(r1 - r0);
            for i in r0..r1 {
                for v in &mut g.bufs {
                    v.fill(0.0);
                }
                losses.push(f(i, &mut g)?);
                let s = reducer.grad_scale(i);
                for (k, segs) in part.iter_mut().enumerate() {
                    let w = lay[k].w;
                    let o = (i - r0) * w;
                    for (p, seg) in segs.iter_mut().enumerate() {
                        let src = &g.bufs[k][p * w..(p + 1) * w];
                        for (d, v) in seg[o..o + w].iter_mut().zip(src) {
                            *d = (s * v) as f32;
                        }
                    }
                }
            }
            Ok(losses)
        })
        .collect();
    let mut per_row = Vec::with_capacity(rows);
    for b in blocks {
        per_row.extend(b?);
    }
    for (k, src) in staged.iter().enumerate() {
        if let (Some(src), Grad::Out(o)) = (src, &mut c.grads[k]) {
            copy_rows(o, src, |v| v);
        }
    }
    reducer.write_loss(&per_row, c.loss);
    Ok(())
}

/// Copy gradient values `src`, contiguous in the input's layout, into the caller's buffer
/// (row stride on the first axis), in parallel over its rows.
fn copy_rows<T: Copy + Sync>(o: &mut TensorMut<'_>, src: &[T], conv: impl Fn(T) -> f32 + Sync) {
    let (rows, l) = (
        crate::tensor::rows(&o.shape),
        crate::tensor::row_len(&o.shape),
    );
    if rows == 0 || l == 0 {
        return;
    }
    let stride = if rows == 1 { l } else { o.row_stride };
    o.data
        .par_chunks_mut(stride)
        .zip(src.par_chunks(l))
        .with_min_len((1 << 14) / l + 1)
        .for_each(|(d, s)| {
            for (d, s) in d[..l].iter_mut().zip(s) {
                *d = conv(*s);
            }
        });
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
    check_grad_slots(c, (0..full.len()).filter(|&k| full[k].is_some()))?;
    let reducer = RowReducer::new(c.reduction, c.grad_output, den);
    let s = reducer.grad_scale(0);
    for v in full.iter_mut().flatten() {
        v.iter_mut().for_each(|x| *x *= s);
    }
    write_grads(c, &full)?;
    reducer.write_loss(per_term, c.loss);
    Ok(())
}

/// Write gradients computed in f64 (contiguous, in each input's own layout) into the
/// caller's buffers.
pub fn write_grads(c: &mut Compute<'_>, full: &[Option<Vec<f64>>]) -> Result<()> {
    check_grad_slots(c, (0..full.len()).filter(|&k| full[k].is_some()))?;
    for (k, src) in full.iter().enumerate() {
        if let (Some(src), Grad::Out(o)) = (src, &mut c.grads[k]) {
            copy_rows(o, src, |v| v as f32);
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
pub struct PairInputs<'a> {
    /// Policy chosen log-probs.
    pub pc: Values<'a>,
    /// Policy rejected log-probs.
    pub pr: Values<'a>,
    /// Reference chosen and rejected log-probs, when given.
    pub refs: Option<(Values<'a>, Values<'a>)>,
    /// Chosen lengths.
    pub lw: Lengths<'a>,
    /// Rejected lengths.
    pub ll: Lengths<'a>,
    /// `pair_weight`, when given.
    pub w: Option<Values<'a>>,
    /// Facts about the call.
    pub data: PairData,
}

impl PairInputs<'_> {
    /// Pair `i`.
    #[inline]
    pub fn pair(&self, i: usize) -> Pair {
        let (rc, rr) = self
            .refs
            .as_ref()
            .map_or((0.0, 0.0), |(c, r)| (c.at(i), r.at(i)));
        Pair {
            i,
            pc: self.pc.at(i),
            pr: self.pr.at(i),
            rc,
            rr,
            lw: self.lw.at(i),
            ll: self.ll.at(i),
        }
    }
}

/// The reference flag, the lengths and the call facts of a pairwise loss, checked.
fn pair_checks<'a>(
    spec: &LossSpec,
    c: &Compute<'a>,
    idx: PairIdx,
) -> Result<(PairData, Lengths<'a>, Lengths<'a>)> {
    let id = spec.id.as_str();
    let has_ref = match idx.refs {
        Some((a, r)) => both_or_neither(id, c, a, r, "reference log-probs")?,
        None => false,
    };
    let has_len = [idx.lw, idx.ll]
        .iter()
        .any(|k| k.is_some_and(|k| c.get(k).is_some()));
    let lname = |k: Option<usize>| k.map_or(String::new(), |k| spec.inputs[k].name.to_string());
    let lw = lengths(id, &lname(idx.lw), c, idx.lw)?;
    let ll = lengths(id, &lname(idx.ll), c, idx.ll)?;
    let data = PairData {
        rows: c.dim(spec.rows.as_str()),
        has_ref,
        has_len,
    };
    Ok((data, lw, ll))
}

/// The checks every pairwise loss makes, on either backend: reference inputs both present
/// or both absent, no negative length. Returns whether the references and the lengths were
/// given.
pub fn check_pairs(spec: &LossSpec, c: &Compute<'_>, idx: PairIdx) -> Result<PairData> {
    Ok(pair_checks(spec, c, idx)?.0)
}

/// Read and check the inputs of a pairwise loss ([`check_pairs`], then the values).
pub fn read_pairs<'a>(spec: &LossSpec, c: &Compute<'a>, idx: PairIdx) -> Result<PairInputs<'a>> {
    let id = spec.id.as_str();
    let (data, lw, ll) = pair_checks(spec, c, idx)?;
    let refs = match idx.refs {
        Some((a, r)) if data.has_ref => Some((required(id, c, a)?, required(id, c, r)?)),
        _ => None,
    };
    Ok(PairInputs {
        pc: required(id, c, idx.pc)?,
        pr: required(id, c, idx.pr)?,
        refs,
        lw,
        ll,
        w: match idx.weight {
            Some(k) => values(c, k)?,
            None => None,
        },
        data,
    })
}

/// Run a pairwise loss: `f(pair)` gives `ℓ`, `∂ℓ/∂pc`, `∂ℓ/∂pr`; the driver multiplies by
/// `pair_weight`, reduces over the `B` pairs (`mean` divides by `B`) and writes the gradients.
pub fn run_pairwise<F>(spec: &LossSpec, c: &mut Compute<'_>, idx: PairIdx, f: F) -> Result<PairData>
where
    F: Fn(&Pair) -> Result<PairOut> + Sync,
{
    let v = read_pairs(spec, c, idx)?;
    let b = v.data.rows;
    let (kc, kr) = (idx.pc, idx.pr);
    run_rows(spec, c, b, b as f64, |i, g| {
        let o = f(&v.pair(i))?;
        let wi = v.w.as_ref().map_or(1.0, |w| w.at(i));
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

/// The `loss_agg` choices of the token-level driver (the row denominators of
/// [`mask_denominators`]).
pub const LOSS_AGG: &[&str] = &[
    "token_mean",
    "seq_mean_token_mean",
    "seq_mean_token_sum",
    "seq_mean_token_sum_norm",
];

/// Per-row sums of a checked 0/1 mask `[n, t]`, in parallel. The sums are exact integers,
/// so they do not depend on the order of the additions.
fn mask_row_sums(mask: &[f32], n: usize, t: usize) -> Vec<f64> {
    if t == 0 {
        return vec![0.0; n];
    }
    mask[..n * t]
        .par_chunks(t)
        .with_min_len((1 << 14) / t + 1)
        .map(|r| r.iter().map(|&m| f64::from(m)).sum::<f64>())
        .collect()
}

/// Row denominators `den_i` of an aggregation mode over a checked 0/1 mask `[n, t]`:
/// `token_mean` `max(Σ mask, 1)/n` (with `mean`, `Σ_i Σ_t / Σ mask`), `seq_mean_token_mean`
/// `max(Σ_t mask_i, 1)`, `seq_mean_token_sum` 1, `seq_mean_token_sum_norm` `max_len`
/// (`t` when 0).
fn denominators(agg: &str, mask: &[f32], n: usize, t: usize, max_len: i64) -> Vec<f64> {
    match agg {
        "token_mean" => {
            let all: f64 = mask_row_sums(mask, n, t).iter().sum();
            vec![all.max(1.0) / n.max(1) as f64; n]
        }
        "seq_mean_token_mean" => mask_row_sums(mask, n, t)
            .into_iter()
            .map(|s| s.max(1.0))
            .collect(),
        "seq_mean_token_sum" => vec![1.0; n],
        _ => vec![
            if max_len > 0 {
                max_len as f64
            } else {
                t.max(1) as f64
            };
            n
        ],
    }
}

/// Check the 0/1 `mask` (row-major `[N, T]`) and return the row denominators of the
/// `loss_agg` parameter (with `max_len`); the CPU driver and the GPU glue share it.
pub fn mask_denominators(
    id: &str,
    p: &Params,
    mask: &[f32],
    n: usize,
    t: usize,
) -> Result<Vec<f64>> {
    check_values(id, "mask", mask, |m| m == 0.0 || m == 1.0, "is not 0 or 1")?;
    Ok(denominators(
        p.choice("loss_agg"),
        mask,
        n,
        t,
        p.i64("max_len"),
    ))
}

/// Run a token-level loss: `f(i, t)` gives `ℓ_t` and `∂ℓ_t/∂logp` for token `t` of row `i`.
/// The log-probs are input 0 (`[N, T]`, differentiable); `mask` is the row-major 0/1 mask.
/// Row `i`'s loss is `Σ_t mask·ℓ_t / den_i`, its gradient `mask·∂ℓ_t/∂logp / den_i`.
pub fn run_tokens<F>(
    spec: &LossSpec,
    p: &Params,
    c: &mut Compute<'_>,
    mask: &[f32],
    f: F,
) -> Result<()>
where
    F: Fn(usize, usize) -> (f64, f64) + Sync,
{
    let id = spec.id.as_str();
    let (n, t) = (c.dim("N"), c.dim("T"));
    let den = mask_denominators(id, p, mask, n, t)?;
    run_rows(spec, c, n, n as f64, |i, g| {
        let mut l = 0.0;
        for tt in 0..t {
            if mask[i * t + tt] == 0.0 {
                continue;
            }
            let (lt, dt) = f(i, tt);
            l += lt;
            g.set(0, tt, dt / den[i]);
        }
        Ok(l / den[i])
    })
}
