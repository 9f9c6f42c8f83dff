//! The wgpu path of `cut_cross_entropy` (kernels in `cut_cross_entropy.wgsl`).
//!
//! The contributing rows are compacted and processed in row chunks, the vocabulary in
//! vocabulary chunks (multiples of 64 entries); both are sized so that no bound range
//! exceeds [`GpuDevice::max_binding_bytes`] (the classifier `C` is bound one vocabulary
//! chunk at a time). The passes, each a fixed-order computation (no float atomics):
//! 1. `logits` (statistics): for every (row, 64-entry block) the partial `(max, sumexp)` of
//!    the soft-capped logits and, in the block holding the target, the target logit;
//!    `merge` then combines each row's partials in block order (blocked sum, `lk_acc`) into `lse`, the
//!    row loss and the gradient factor `w (1 + 2λ lse)`.
//! 2. Backward without filtering: pass 1 also keeps the row chunk's logits in a panel (one
//!    block per vocabulary chunk, at most 512 MiB in all, which bounds the row chunk), and
//!    `zgrad` turns them into `G` in place (softmax minus one-hot, z-loss factor, soft-cap
//!    chain rule, upstream and sample weight): `6·N·V·D` flops in all. Then, per chunk pair,
//!    `bwd` forms `dE_R (+)= G C_Q` (one workgroup per 64 x 64 tile of `dE`, looping over
//!    the chunk's entries; vocabulary chunks added in order) and `dC_Q (+)= Gᵀ E_R` (one
//!    workgroup per tile of `dC`, looping over the chunk's rows; row chunks added in order),
//!    and `colsum` adds the column sums of `G` to `dbias`.
//! 3. With filtering, pass 1 runs over every row chunk first; with `sort_vocab` the logits
//!    of every chunk pair go through a scratch block (at most 256 MiB) into their column
//!    sums, which are read back and sorted on the host (the same stable ascending order as
//!    the CPU), and each entry's tile is uploaded; `logits` is recomputed to fold each
//!    entry's `|p - onehot|` into its (row tile, vocabulary tile) maximum with a u32
//!    `atomicMax` on the float's bits (max does not depend on the order, so the result is
//!    deterministic); the backward recomputes the logits into `G` in the scratch block and
//!    reads `G` through the tile mask, so the GPU drops exactly the tiles the CPU drops (it
//!    saves no work on the GPU).
//!
//! Products accumulate in f32 (as the CPU's GEMM); `lse` and the column sums use the
//! prelude's blocked sums (`lk_acc`: Kahan compensation can be optimised away by drivers).
//!
//! Code layout: `compute` validates the call as the CPU path does and reduces the per-row
//! results; `run` is the driver that calls one function per step in order: the [`Plan`]
//! (chunk sizes and switches), the [`Kernels`], the uploads (`upload_vinfo`, `upload_c`,
//! `row_chunks`) and the [`Scratch`], then the passes on [`Passes`]: `forward` (pass 1 and
//! the merge), `sort_vocab`, `tile_max`, `backward` (per row chunk `backward_chunk` and
//! `scatter_de`, then `read_grads`), and `read_rows` for the per-row loss and `lse`.

use super::{ID, IN_B, IN_C, IN_E, IN_T, IN_W, tile_sizes};
use crate::backend::wgpu::buffers::WgpuBuffer;
use crate::backend::wgpu::buffers::{self, BufInner, Pooled, Window};
use crate::backend::wgpu::{BindKind, GpuDevice, PRELUDE, PipelineKey, check_device_args, launch};
use crate::compute::Compute;
use crate::error::Result;
use crate::exec::targets::{check_target_values, check_weights};
use crate::params::Params;
use crate::reduction::{Reduction, RowReducer};
use crate::tensor::{Data, Grad, Tensor};
use crate::{bail, err};
use std::sync::Arc;

const SOURCE: &str = include_str!("cut_cross_entropy.wgsl");
const KERNEL: &str = "lm/cut_cross_entropy";
/// Output tile side of every product (and the vocabulary block of the partials).
const TILE: usize = 64;
/// Threads per workgroup of every kernel.
const WG: u32 = 256;
/// Largest scratch block (chunk rows x chunk entries, f32) in bytes, when the logits are
/// recomputed for the backward (filtering).
const G_BUDGET: u64 = 256 << 20;
/// Largest logit panel (chunk rows x the whole vocabulary, f32) in bytes, when the forward's
/// logits are kept for the backward (no filtering).
const PANEL_BUDGET: u64 = 512 << 20;
/// Most rows in one row chunk.
const MAX_ROWS: usize = 8192;
/// Most entries in one vocabulary chunk.
const MAX_VOCAB: usize = 1 << 20;

/// The uniform block (field order as `U` in the WGSL).
#[derive(Clone, Copy, Default)]
struct Uni {
    rows: u32,
    r0: u32,
    qn: u32,
    q0: u32,
    d: u32,
    nb: u32,
    c_base: u32,
    c_rs: u32,
    v_base: u32,
    o_base: u32,
    o_rs: u32,
    acc: u32,
    s_rs: u32,
    bn: u32,
    nqt: u32,
    mask_on: u32,
    cap: f32,
    lambda: f32,
    eps: f32,
}

impl Uni {
    fn words(&self) -> [u32; 20] {
        [
            self.rows,
            self.r0,
            self.qn,
            self.q0,
            self.d,
            self.nb,
            self.c_base,
            self.c_rs,
            self.v_base,
            self.o_base,
            self.o_rs,
            self.acc,
            self.s_rs,
            self.bn,
            self.nqt,
            self.mask_on,
            self.cap.to_bits(),
            self.lambda.to_bits(),
            self.eps.to_bits(),
            0,
        ]
    }
}

/// A device matrix: buffer, element offset, row stride.
struct DevMat {
    buf: Arc<BufInner>,
    off: usize,
    rs: usize,
}

fn dev_mat(t: &Tensor<'_>) -> Option<DevMat> {
    match &t.data {
        Data::Device(d) => Some(DevMat {
            buf: d.buffer.wgpu(),
            off: d.offset,
            rs: t.row_stride,
        }),
        _ => None,
    }
}

/// Where a gradient goes.
enum Dst<'s> {
    None,
    Host(&'s mut [f32], usize),
    Device(DevMat),
}

fn dst<'s>(g: &'s mut Grad<'_>) -> Result<Dst<'s>> {
    Ok(match g {
        Grad::None => Dst::None,
        Grad::Out(t) => Dst::Host(&mut *t.data, t.row_stride),
        Grad::Device(o) => Dst::Device(DevMat {
            buf: o.data.buffer.wgpu(),
            off: o.data.offset,
            rs: o.row_stride,
        }),
        Grad::InPlace => bail!(Internal, "{ID}: in-place gradients are not supported"),
    })
}

/// Runs of consecutive values of an increasing sequence, as `(first, length)`.
fn runs(xs: impl Iterator<Item = usize>) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for x in xs {
        match out.last_mut() {
            Some((s, l)) if *s + *l == x => *l += 1,
            _ => out.push((x, 1)),
        }
    }
    out
}

/// The options of one call.
struct Job {
    n: usize,
    d: usize,
    v: usize,
    rows: Vec<usize>,
    tv: Vec<u32>,
    wv: Vec<f32>,
    bias: Option<Vec<f32>>,
    cap: f32,
    lambda: f32,
    eps: f32,
    filter_e: bool,
    filter_c: bool,
    sort: bool,
    bn: usize,
    bv: usize,
    want_e: bool,
    want_c: bool,
    want_b: bool,
}

/// The GPU hook: validate exactly as the CPU path, then run the passes.
pub(super) fn compute(dev: &GpuDevice, p: &Params, c: &mut Compute<'_>) -> Result<()> {
    check_device_args(dev, ID, c)?;
    let (n, d, v) = (c.dim("N"), c.dim("D"), c.dim("V"));
    let ignore = p.i64("ignore_index");
    let targets = c
        .get(IN_T)
        .ok_or_else(|| err!(Internal, "{ID}: targets missing"))?
        .read_i64()?;
    check_target_values(ID, &targets, v, ignore)?;
    let sw = match c.get(IN_W) {
        Some(w) => {
            let w = w.read_f32()?;
            check_weights(ID, "sample_weight", &w)?;
            Some(w)
        }
        None => None,
    };
    let bias = match c.get(IN_B) {
        Some(b) => Some(b.read_f32()?),
        None => None,
    };
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
    let tv: Vec<u32> = rows.iter().map(|&i| targets[i] as u32).collect();
    let eps = p.f64("filter_eps") as f32;
    let (bn, bv) = tile_sizes(p, v, rows.len(), eps > 0.0);
    let job = Job {
        n,
        d,
        v,
        tv,
        wv,
        bias,
        cap: p.f64("softcap") as f32,
        lambda: p.f64("z_loss_coef") as f32,
        eps,
        filter_e: p.bool("filter_e_grad"),
        filter_c: p.bool("filter_c_grad"),
        sort: p.bool("sort_vocab"),
        bn,
        bv,
        want_e: c.wants_grad(IN_E),
        want_c: c.wants_grad(IN_C),
        want_b: c.wants_grad(IN_B),
        rows,
    };
    let mut aux_lse = c.take_aux("lse");
    // Per contributing row: (loss before the sample weight, lse).
    let stats = dev.scoped(ID, || run(dev, &job, c))?;
    let mut per_row = vec![0.0f64; n];
    for (k, &i) in job.rows.iter().enumerate() {
        per_row[i] = stats[k].0 as f64 * sweight(i);
    }
    reducer.write_loss(&per_row, c.loss);
    if let Some(a) = aux_lse.as_mut() {
        a.fill(0.0);
        for (k, &i) in job.rows.iter().enumerate() {
            a.data[i * a.row_stride] = stats[k].1;
        }
    }
    Ok(())
}

/// Chunk sizes `(rows, entries)`.
fn chunks(
    dev: &GpuDevice,
    job: &Job,
    c_rs: usize,
    dc_rs: usize,
    panel: bool,
) -> Result<(usize, usize)> {
    let maxb = dev.max_binding_bytes();
    let slack = buffers::window_slack(dev);
    let (d, v) = (job.d, job.v);
    let nv = job.rows.len();
    let nb = v.div_ceil(TILE);
    let what = format!("{ID}: a row of e or c");
    // Rows: the compact e and de chunks, the partials, the row records.
    let mut rc = nv.clamp(1, MAX_ROWS);
    rc = rc.min(launch::rows_per_chunk(maxb, d, d, 4, 0, &what)?);
    rc = rc.min(launch::rows_per_chunk(maxb, nb, nb, 8, 0, &what)?);
    rc = rc.min((maxb / 32) as usize);
    // Entries: c (bound in place or uploaded), dc, the per-entry records, dbias.
    let mut qc = MAX_VOCAB.min(v.div_ceil(TILE) * TILE);
    qc = qc.min(launch::rows_per_chunk(maxb, c_rs, d, 4, slack, &what)?);
    qc = qc.min(launch::rows_per_chunk(maxb, d, d, 4, 0, &what)?);
    if job.want_c {
        qc = qc.min(launch::rows_per_chunk(maxb, dc_rs, d, 4, slack, &what)?);
    }
    qc = qc.min(((maxb - slack) / 8) as usize);
    qc = qc / TILE * TILE;
    if qc == 0 {
        bail!(
            Unsupported,
            "{ID}: {TILE} rows of c ({} bytes) exceed the device's largest binding ({maxb} bytes)",
            TILE * d * 4
        );
    }
    // The scratch: one block of rows x entries (f32) within a binding, and either the
    // block (recomputed logits) or the row chunk's panel over the whole vocabulary (kept
    // logits) within its budget.
    let win = (maxb / 4) as usize;
    let g_elems = if panel {
        win
    } else {
        win.min((G_BUDGET / 4) as usize)
    };
    rc = rc.min((g_elems / TILE).max(1));
    if panel {
        let vround = v.div_ceil(TILE) * TILE;
        rc = rc.min(((PANEL_BUDGET / 4) as usize / vround).max(1));
    }
    if rc < nv {
        rc = (rc / TILE * TILE).max(rc.min(TILE));
    }
    qc = qc.min((g_elems / rc) / TILE * TILE).max(TILE);
    Ok((rc, qc))
}

/// The bind group layout kinds (binding order of the WGSL).
fn kinds() -> [BindKind; 9] {
    use BindKind::*;
    [
        Uniform, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite,
    ]
}

/// One chunk of the classifier as bound: window, base word and row stride.
struct CChunk<'a> {
    q0: usize,
    qn: usize,
    win: Window<'a>,
    rs: usize,
}

/// One row chunk: its contributing rows `[r0, r0 + rows)` and its device buffers.
struct RChunk<'a> {
    r0: usize,
    rows: usize,
    e: Pooled<'a>,
    rinfo: Pooled<'a>,
}

/// The sizes and switches of one call, fixed before anything is uploaded.
struct Plan {
    /// Contributing rows per row chunk.
    rc: usize,
    /// Entries per vocabulary chunk.
    qc: usize,
    /// 64-entry blocks of the vocabulary.
    nb: usize,
    /// Row tiles and vocabulary tiles of the filtering.
    nrt: usize,
    nqt: usize,
    /// The backward drops tiles (`filter_eps > 0` and a gradient wanted).
    filtering: bool,
    /// Some gradient is wanted.
    want_any: bool,
    /// The forward keeps each row chunk's logits for the backward (no filtering).
    panel: bool,
    /// The vocabulary is sorted before the tiles are formed.
    presort: bool,
}

impl Plan {
    /// Chunk sizes and switches for `job`, with the classifier's and its gradient's row
    /// strides; refuses shapes that need more workgroups than the device allows.
    fn new(dev: &GpuDevice, job: &Job, c_rs: usize, dc_rs: usize) -> Result<Plan> {
        let (d, v) = (job.d, job.v);
        let nv = job.rows.len();
        let filtering = job.eps > 0.0 && (job.want_e || job.want_c || job.want_b);
        let want_any = job.want_e || job.want_c || job.want_b;
        // Without filtering the forward keeps each row chunk's logits for the backward.
        let panel = want_any && !filtering;
        let (rc, qc) = chunks(dev, job, c_rs, dc_rs, panel)?;
        let nb = v.div_ceil(TILE);
        let maxd = dev.limits.max_compute_workgroups_per_dimension as usize;
        if rc.div_ceil(TILE) > maxd || qc.div_ceil(TILE) > maxd || d.div_ceil(TILE) > maxd {
            bail!(
                Unsupported,
                "{ID}: the shape needs more workgroups per dimension than the device allows ({maxd})"
            );
        }
        Ok(Plan {
            rc,
            qc,
            nb,
            nrt: nv.div_ceil(job.bn),
            nqt: v.div_ceil(job.bv),
            filtering,
            want_any,
            panel,
            presort: filtering && job.sort,
        })
    }
}

/// The bind group layout and the pipeline of every entry point.
struct Kernels {
    bgl: Arc<wgpu::BindGroupLayout>,
    /// `logits` in its five modes (0 statistics, 1 column-sum block, 2 tile maxima,
    /// 3 recomputed `G`, 4 statistics with the panel kept).
    logits: Vec<Arc<wgpu::ComputePipeline>>,
    merge: Arc<wgpu::ComputePipeline>,
    zgrad: Arc<wgpu::ComputePipeline>,
    colsum: Arc<wgpu::ComputePipeline>,
    de: Arc<wgpu::ComputePipeline>,
    dc: Arc<wgpu::ComputePipeline>,
}

impl Kernels {
    fn new(dev: &GpuDevice) -> Result<Kernels> {
        let (bgl, playout) = dev.layout("cut_cross_entropy", &kinds());
        let source = format!("{PRELUDE}\n{SOURCE}");
        let pipe = |entry: &str, ov: &[(&str, f64)]| {
            dev.pipelines.get_with_layout(
                dev,
                &PipelineKey::new(KERNEL, &source, entry, WG, ov),
                &source,
                Some(&playout),
            )
        };
        let logits: Vec<_> = (0..5)
            .map(|m| pipe("logits", &[("MODE", m as f64)]))
            .collect::<Result<_>>()?;
        Ok(Kernels {
            logits,
            merge: pipe("merge", &[])?,
            zgrad: pipe("zgrad", &[])?,
            colsum: pipe("colsum", &[])?,
            de: pipe("bwd", &[("TRANS", 0.0)])?,
            dc: pipe("bwd", &[("TRANS", 1.0)])?,
            bgl,
        })
    }
}

/// Two dummies for unused bindings: one buffer may not be bound read-only and read-write
/// in one dispatch.
struct Dummies<'a> {
    w: Pooled<'a>,
    r: Pooled<'a>,
}

impl<'a> Dummies<'a> {
    fn new(dev: &'a GpuDevice) -> Result<Dummies<'a>> {
        Ok(Dummies {
            w: dev.pool.take(dev, 256, buffers::STORAGE)?,
            r: dev.pool.take(dev, 256, buffers::STORAGE)?,
        })
    }
}

/// The per-entry records (bias, filtering tile) for the tile of every entry.
fn vinfo_data(job: &Job, tiles: &[u32]) -> Vec<f32> {
    let mut x = Vec::with_capacity(2 * job.v);
    for (j, &t) in tiles.iter().enumerate() {
        x.push(job.bias.as_ref().map_or(0.0, |b| b[j]));
        x.push(t as f32);
    }
    x
}

/// Upload the per-entry records with the entries in their natural order.
fn upload_vinfo<'a>(dev: &'a GpuDevice, job: &Job) -> Result<Pooled<'a>> {
    let vtile_natural: Vec<u32> = (0..job.v).map(|j| (j / job.bv) as u32).collect();
    buffers::upload(dev, bytemuck::cast_slice(&vinfo_data(job, &vtile_natural)))
}

/// A host classifier, uploaded one vocabulary chunk per buffer (nothing for a device one).
fn upload_c<'a>(
    dev: &'a GpuDevice,
    plan: &Plan,
    ct: &Tensor<'_>,
    c_dev: &Option<DevMat>,
    d: usize,
    v: usize,
) -> Result<Vec<Pooled<'a>>> {
    if c_dev.is_some() {
        return Ok(Vec::new());
    }
    let src = ct
        .f32_data()
        .ok_or_else(|| err!(Internal, "{ID}: c not f32"))?;
    let mut out = Vec::new();
    for q0 in (0..v).step_by(plan.qc) {
        let qn = plan.qc.min(v - q0);
        let mut x = Vec::with_capacity(qn * d);
        for j in q0..q0 + qn {
            x.extend_from_slice(&src[j * ct.row_stride..j * ct.row_stride + d]);
        }
        out.push(buffers::upload(dev, bytemuck::cast_slice(&x))?);
    }
    Ok(out)
}

/// The classifier's vocabulary chunks as bound: windows of the caller's device matrix, or
/// the uploaded chunks.
fn c_chunks<'b>(
    dev: &GpuDevice,
    plan: &Plan,
    c_dev: &'b Option<DevMat>,
    c_host: &'b [Pooled<'_>],
    d: usize,
    v: usize,
) -> Vec<CChunk<'b>> {
    let qc = plan.qc;
    (0..v)
        .step_by(qc)
        .enumerate()
        .map(|(k, q0)| {
            let qn = qc.min(v - q0);
            match c_dev {
                Some(m) => CChunk {
                    q0,
                    qn,
                    win: Window::new(
                        dev,
                        &m.buf.buf,
                        ((m.off + q0 * m.rs) * 4) as u64,
                        (((qn - 1) * m.rs + d) * 4) as u64,
                    ),
                    rs: m.rs,
                },
                None => CChunk {
                    q0,
                    qn,
                    win: Window::new(dev, c_host[k].buf(), 0, (qn * d * 4) as u64),
                    rs: d,
                },
            }
        })
        .collect()
}

/// The row chunks: the contributing rows of `e`, compacted (copied on the device into `enc`
/// for a device `e`, uploaded for a host one), and their row records (weight, target).
fn row_chunks<'a>(
    dev: &'a GpuDevice,
    job: &Job,
    plan: &Plan,
    et: &Tensor<'_>,
    enc: &mut wgpu::CommandEncoder,
) -> Result<Vec<RChunk<'a>>> {
    let (d, rc) = (job.d, plan.rc);
    let nv = job.rows.len();
    let e_dev = dev_mat(et);
    let mut rch: Vec<RChunk<'_>> = Vec::new();
    for r0 in (0..nv).step_by(rc) {
        let rows = rc.min(nv - r0);
        let sel = &job.rows[r0..r0 + rows];
        let e = match &e_dev {
            Some(m) => {
                let p = dev
                    .pool
                    .take(dev, (rows * d * 4).max(4) as u64, buffers::STORAGE)?;
                if d > 0 {
                    for (s, l) in runs(sel.iter().copied()) {
                        let k = sel.partition_point(|&x| x < s);
                        let per = if m.rs == d { l } else { 1 };
                        for t in (0..l).step_by(per) {
                            enc.copy_buffer_to_buffer(
                                &m.buf.buf,
                                ((m.off + (s + t) * m.rs) * 4) as u64,
                                p.buf(),
                                ((k + t) * d * 4) as u64,
                                (per * d * 4) as u64,
                            );
                        }
                    }
                }
                p
            }
            None => {
                let src = et
                    .f32_data()
                    .ok_or_else(|| err!(Internal, "{ID}: e not f32"))?;
                let mut x = Vec::with_capacity(rows * d);
                for &i in sel {
                    x.extend_from_slice(&src[i * et.row_stride..i * et.row_stride + d]);
                }
                buffers::upload(dev, bytemuck::cast_slice(&x))?
            }
        };
        let mut ri = vec![0u32; rows * 8];
        for k in 0..rows {
            ri[8 * k + 2] = job.wv[r0 + k].to_bits();
            ri[8 * k + 3] = job.tv[r0 + k];
        }
        let rinfo = buffers::upload(dev, bytemuck::cast_slice(&ri))?;
        rch.push(RChunk { r0, rows, e, rinfo });
    }
    Ok(rch)
}

/// The scratch of the passes: the per-row partials, and the logits block (recomputed
/// logits) or the panel (kept logits, one block per vocabulary chunk).
struct Scratch<'a> {
    part: Pooled<'a>,
    sblk: Option<Pooled<'a>>,
    pan: Vec<Pooled<'a>>,
}

impl<'a> Scratch<'a> {
    fn new(dev: &'a GpuDevice, plan: &Plan, cchunks: &[CChunk<'_>]) -> Result<Scratch<'a>> {
        let (rc, qc) = (plan.rc, plan.qc);
        let part = dev
            .pool
            .take(dev, (rc * plan.nb * 8) as u64, buffers::STORAGE)?;
        let sblk = if (plan.want_any || plan.presort) && !plan.panel {
            Some(dev.pool.take(dev, (rc * qc * 4) as u64, buffers::STORAGE)?)
        } else {
            None
        };
        let pan: Vec<Pooled<'_>> = if plan.panel {
            cchunks
                .iter()
                .map(|q| dev.pool.take(dev, (rc * q.qn * 4) as u64, buffers::STORAGE))
                .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(Scratch { part, sblk, pan })
    }
}

/// The device buffers of the backward that outlive a row chunk: dC's host staging (one per
/// vocabulary chunk), dbias, and one row chunk's dE.
struct BwdBufs<'a> {
    dc_host: Vec<Pooled<'a>>,
    dbias: Option<Pooled<'a>>,
    de_s: Option<Pooled<'a>>,
}

/// What every pass reads: the call, its plan, the kernels and the buffers bound in every
/// dispatch.
struct Passes<'p> {
    dev: &'p GpuDevice,
    job: &'p Job,
    plan: &'p Plan,
    k: &'p Kernels,
    dummy: &'p Dummies<'p>,
    vinfo: &'p Pooled<'p>,
    cchunks: &'p [CChunk<'p>],
    s: &'p Scratch<'p>,
    /// The uniforms every dispatch shares.
    base: Uni,
}

fn encoder(dev: &GpuDevice) -> wgpu::CommandEncoder {
    dev.device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(ID) })
}

fn dispatch(
    enc: &mut wgpu::CommandEncoder,
    p: &wgpu::ComputePipeline,
    bg: &wgpu::BindGroup,
    x: usize,
    y: usize,
) {
    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(ID),
        timestamp_writes: None,
    });
    pass.set_pipeline(p);
    pass.set_bind_group(0, bg, &[]);
    pass.dispatch_workgroups(x as u32, y as u32, 1);
}

impl<'p> Passes<'p> {
    fn dummy_w(&self) -> Window<'p> {
        Window::new(self.dev, self.dummy.w.buf(), 0, 256)
    }

    fn dummy_r(&self) -> Window<'p> {
        Window::new(self.dev, self.dummy.r.buf(), 0, 256)
    }

    /// The first `bytes` (at least 4) of a scratch buffer.
    fn win<'b>(&self, p: &'b Pooled<'_>, bytes: usize) -> Window<'b> {
        win_len(self.dev, p, bytes)
    }

    /// The logits block of vocabulary chunk `qi` for `rows x qn` (the panel's block when the
    /// logits are kept).
    fn sblk_w(&self, qi: usize, rows: usize, qn: usize) -> Window<'p> {
        match (&self.s.sblk, self.s.pan.get(qi)) {
            (Some(p), _) | (None, Some(p)) => {
                Window::new(self.dev, p.buf(), 0, (rows * qn * 4) as u64)
            }
            (None, None) => self.dummy_w(),
        }
    }

    fn vinfo_w(&self, q: &CChunk<'_>) -> Window<'p> {
        vinfo_win(self.dev, self.vinfo, q)
    }

    /// The filtering tile table, or a dummy.
    fn tmax_w<'b>(&self, tmax: Option<&'b Pooled<'_>>) -> Window<'b>
    where
        'p: 'b,
    {
        match tmax {
            Some(t) => Window::new(
                self.dev,
                t.buf(),
                0,
                (self.plan.nrt * self.plan.nqt * 4) as u64,
            ),
            None => self.dummy_w(),
        }
    }

    /// The uniforms of one (row chunk, vocabulary chunk) pair.
    fn chunk_uni(&self, r: &RChunk<'_>, q: &CChunk<'_>) -> Uni {
        Uni {
            rows: r.rows as u32,
            r0: r.r0 as u32,
            qn: q.qn as u32,
            q0: q.q0 as u32,
            c_base: q.win.base,
            c_rs: q.rs as u32,
            v_base: ((q.q0 * 8) as u64 % buffers::window_slack(self.dev) / 8) as u32,
            s_rs: q.qn as u32,
            ..self.base
        }
    }

    /// A bind group of the uniforms `u` and the eight storage windows (binding order of the
    /// WGSL); the uniform buffer is returned to be kept alive until the dispatch.
    fn bind(&self, u: &Uni, w: [Window<'_>; 8]) -> (wgpu::BindGroup, wgpu::Buffer) {
        let ub = buffers::uniform(self.dev, bytemuck::cast_slice(&u.words()));
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: ub.as_entire_binding(),
        }];
        for (k, x) in w.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: k as u32 + 1,
                resource: x.resource(),
            });
        }
        let bg = self
            .dev
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(ID),
                layout: &self.k.bgl,
                entries: &entries,
            });
        (bg, ub)
    }

    /// Pass 1 over one row chunk: the statistics of every (row, 64-entry block), and with
    /// the panel the logits kept; then the per-row merge into `lse`, the loss and the
    /// gradient factor.
    fn forward_chunk(&self, enc: &mut wgpu::CommandEncoder, r: &RChunk<'_>) {
        let (d, nb, panel) = (self.job.d, self.plan.nb, self.plan.panel);
        let ew = self.win(&r.e, r.rows * d * 4);
        let rw = self.win(&r.rinfo, r.rows * 32);
        let pw = self.win(&self.s.part, r.rows * nb * 8);
        for (qi, q) in self.cchunks.iter().enumerate() {
            let u = self.chunk_uni(r, q);
            let sw = if panel {
                self.sblk_w(qi, r.rows, q.qn)
            } else {
                self.dummy_w()
            };
            let (bg, _ub) = self.bind(
                &u,
                [
                    ew,
                    q.win,
                    self.vinfo_w(q),
                    rw,
                    pw,
                    sw,
                    self.dummy_w(),
                    self.dummy_w(),
                ],
            );
            let mode = if panel { 4 } else { 0 };
            dispatch(
                enc,
                &self.k.logits[mode],
                &bg,
                q.qn.div_ceil(TILE),
                r.rows.div_ceil(TILE),
            );
        }
        let u = Uni {
            rows: r.rows as u32,
            r0: r.r0 as u32,
            ..self.base
        };
        let (bg, _ub) = self.bind(
            &u,
            [
                ew,
                self.dummy_r(),
                self.dummy_r(),
                rw,
                pw,
                self.dummy_w(),
                self.dummy_w(),
                self.dummy_w(),
            ],
        );
        dispatch(enc, &self.k.merge, &bg, r.rows.div_ceil(WG as usize), 1);
    }

    /// The forward of every row chunk, after the uploads recorded in `enc`; with the panel
    /// the forward runs inside the backward instead (one row chunk's panel at a time).
    fn forward(&self, mut enc: wgpu::CommandEncoder, rch: &[RChunk<'_>]) -> Result<()> {
        if !self.plan.panel {
            for r in rch {
                self.forward_chunk(&mut enc, r);
            }
        }
        self.dev.submit_wait(vec![enc.finish()])
    }

    /// `sort_vocab`: the column sums of the logits over the contributing rows, read back and
    /// sorted on the host; the per-entry records get the tiles of the sorted order.
    fn sort_vocab(&self, rch: &[RChunk<'_>]) -> Result<()> {
        let (dev, job, d, v) = (self.dev, self.job, self.job.d, self.job.v);
        let acc = dev.pool.take(dev, (v * 4) as u64, buffers::STORAGE)?;
        let mut enc = encoder(dev);
        for (ri, r) in rch.iter().enumerate() {
            let ew = self.win(&r.e, r.rows * d * 4);
            let rw = self.win(&r.rinfo, r.rows * 32);
            for (qi, q) in self.cchunks.iter().enumerate() {
                let sw = self.sblk_w(qi, r.rows, q.qn);
                let ow = Window::new(dev, acc.buf(), (q.q0 * 4) as u64, (q.qn * 4) as u64);
                let u = Uni {
                    o_base: ow.base,
                    acc: (ri > 0) as u32,
                    ..self.chunk_uni(r, q)
                };
                let (bg, _ub) = self.bind(
                    &u,
                    [
                        ew,
                        q.win,
                        self.vinfo_w(q),
                        rw,
                        self.dummy_w(),
                        sw,
                        ow,
                        self.dummy_w(),
                    ],
                );
                dispatch(
                    &mut enc,
                    &self.k.logits[1],
                    &bg,
                    q.qn.div_ceil(TILE),
                    r.rows.div_ceil(TILE),
                );
                dispatch(&mut enc, &self.k.colsum, &bg, q.qn.div_ceil(WG as usize), 1);
            }
        }
        let mut raw = vec![0u8; v * 4];
        buffers::submit_and_read(dev, enc, &mut [(acc.buf(), 0, &mut raw)])?;
        let key: &[f32] = bytemuck::cast_slice(&raw);
        let mut ord: Vec<u32> = (0..v as u32).collect();
        ord.sort_by(|&a, &b| key[a as usize].total_cmp(&key[b as usize]));
        let mut tiles = vec![0u32; v];
        for (pos, &ent) in ord.iter().enumerate() {
            tiles[ent as usize] = (pos / job.bv) as u32;
        }
        buffers::write_padded(
            dev,
            self.vinfo.buf(),
            0,
            bytemuck::cast_slice(&vinfo_data(job, &tiles)),
        );
        Ok(())
    }

    /// Filtering: the logits recomputed to fold each entry's `|p - onehot|` into its
    /// (row tile, vocabulary tile) maximum; returns the tile table.
    fn tile_max(&self, rch: &[RChunk<'_>]) -> Result<Pooled<'p>> {
        let (dev, d) = (self.dev, self.job.d);
        let bytes = (self.plan.nrt * self.plan.nqt * 4) as u64;
        if bytes > dev.max_binding_bytes() {
            bail!(
                Unsupported,
                "{ID}: the filtering tile table ({bytes} bytes) exceeds the device's largest binding"
            );
        }
        let t = dev.pool.take(dev, bytes, buffers::STORAGE)?;
        let mut enc = encoder(dev);
        enc.clear_buffer(t.buf(), 0, Some(bytes.div_ceil(4) * 4));
        let tw = Window::new(dev, t.buf(), 0, bytes);
        for r in rch {
            let ew = self.win(&r.e, r.rows * d * 4);
            let rw = self.win(&r.rinfo, r.rows * 32);
            for q in self.cchunks {
                let u = self.chunk_uni(r, q);
                let (bg, _ub) = self.bind(
                    &u,
                    [
                        ew,
                        q.win,
                        self.vinfo_w(q),
                        rw,
                        self.dummy_w(),
                        self.dummy_w(),
                        self.dummy_w(),
                        tw,
                    ],
                );
                dispatch(
                    &mut enc,
                    &self.k.logits[2],
                    &bg,
                    q.qn.div_ceil(TILE),
                    r.rows.div_ceil(TILE),
                );
            }
        }
        dev.submit_wait(vec![enc.finish()])?;
        Ok(t)
    }

    /// The backward buffers: dC's host staging, dbias, one row chunk's dE.
    fn bwd_bufs(&self, dc: &Dst<'_>) -> Result<BwdBufs<'p>> {
        let (dev, job, d) = (self.dev, self.job, self.job.d);
        let dc_host: Vec<Pooled<'_>> = if matches!(dc, Dst::Host(..)) {
            self.cchunks
                .iter()
                .map(|q| {
                    dev.pool
                        .take(dev, (q.qn * d * 4).max(4) as u64, buffers::STORAGE)
                })
                .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        let dbias = if job.want_b {
            Some(dev.pool.take(dev, (job.v * 4) as u64, buffers::STORAGE)?)
        } else {
            None
        };
        let de_s = if job.want_e {
            Some(
                dev.pool
                    .take(dev, (self.plan.rc * d * 4).max(4) as u64, buffers::STORAGE)?,
            )
        } else {
            None
        };
        Ok(BwdBufs {
            dc_host,
            dbias,
            de_s,
        })
    }

    /// The backward of row chunk `ri` against every vocabulary chunk: `G` (from the panel
    /// by `zgrad`, or recomputed), then `dE_R (+)= G C_Q`, `dC_Q (+)= Gᵀ E_R` and the
    /// column sums of `G` into dbias.
    fn backward_chunk(
        &self,
        enc: &mut wgpu::CommandEncoder,
        ri: usize,
        r: &RChunk<'_>,
        tw: Window<'_>,
        b: &BwdBufs<'_>,
        dc: &Dst<'_>,
    ) -> Result<()> {
        let (dev, job, d) = (self.dev, self.job, self.job.d);
        let filtering = self.plan.filtering;
        let ew = self.win(&r.e, r.rows * d * 4);
        let rw = self.win(&r.rinfo, r.rows * 32);
        for (qi, q) in self.cchunks.iter().enumerate() {
            let sw = self.sblk_w(qi, r.rows, q.qn);
            let vw = self.vinfo_w(q);
            let cu = self.chunk_uni(r, q);
            let (bg, _ub) = self.bind(
                &cu,
                [ew, q.win, vw, rw, self.dummy_w(), sw, self.dummy_w(), tw],
            );
            if self.plan.panel {
                let (gx, gy) = launch::grid(
                    ((r.rows * q.qn) as u64).div_ceil(WG as u64),
                    dev.limits.max_compute_workgroups_per_dimension,
                )?;
                dispatch(enc, &self.k.zgrad, &bg, gx as usize, gy as usize);
            } else {
                dispatch(
                    enc,
                    &self.k.logits[3],
                    &bg,
                    q.qn.div_ceil(TILE),
                    r.rows.div_ceil(TILE),
                );
            }
            if let Some(s) = &b.de_s {
                let ow = self.win(s, r.rows * d * 4);
                let u = Uni {
                    o_base: 0,
                    o_rs: d as u32,
                    acc: (qi > 0) as u32,
                    mask_on: (filtering && job.filter_e) as u32,
                    ..cu
                };
                let (bg, _ub) = self.bind(&u, [ew, q.win, vw, rw, self.dummy_w(), sw, ow, tw]);
                dispatch(
                    enc,
                    &self.k.de,
                    &bg,
                    d.div_ceil(TILE),
                    r.rows.div_ceil(TILE),
                );
            }
            if job.want_c {
                let (ow, o_rs) = match dc {
                    Dst::Device(m) => (
                        Window::new(
                            dev,
                            &m.buf.buf,
                            ((m.off + q.q0 * m.rs) * 4) as u64,
                            (((q.qn - 1) * m.rs + d) * 4) as u64,
                        ),
                        m.rs,
                    ),
                    _ => (self.win(&b.dc_host[qi], q.qn * d * 4), d),
                };
                let u = Uni {
                    o_base: ow.base,
                    o_rs: o_rs as u32,
                    acc: (ri > 0) as u32,
                    mask_on: (filtering && job.filter_c) as u32,
                    ..cu
                };
                let (bg, _ub) = self.bind(&u, [ew, q.win, vw, rw, self.dummy_w(), sw, ow, tw]);
                dispatch(enc, &self.k.dc, &bg, d.div_ceil(TILE), q.qn.div_ceil(TILE));
            }
            if let Some(bb) = &b.dbias {
                let ow = Window::new(dev, bb.buf(), (q.q0 * 4) as u64, (q.qn * 4) as u64);
                let u = Uni {
                    o_base: ow.base,
                    acc: (ri > 0) as u32,
                    mask_on: (filtering && job.filter_e && job.filter_c) as u32,
                    ..cu
                };
                let (bg, _ub) = self.bind(&u, [ew, q.win, vw, rw, self.dummy_w(), sw, ow, tw]);
                dispatch(enc, &self.k.colsum, &bg, q.qn.div_ceil(WG as usize), 1);
            }
        }
        Ok(())
    }

    /// This row chunk's dE (in `s`) to its rows of the destination: copied on the device,
    /// or read back and scattered on the host. Submits `enc` (and replaces it).
    fn scatter_de(
        &self,
        enc: &mut wgpu::CommandEncoder,
        r: &RChunk<'_>,
        s: &Pooled<'_>,
        de: &mut Dst<'_>,
    ) -> Result<()> {
        let (dev, d) = (self.dev, self.job.d);
        let sel = &self.job.rows[r.r0..r.r0 + r.rows];
        match de {
            Dst::Device(m) => {
                if d > 0 {
                    for (st, l) in runs(sel.iter().copied()) {
                        let k = sel.partition_point(|&x| x < st);
                        let per = if m.rs == d { l } else { 1 };
                        for t in (0..l).step_by(per) {
                            enc.copy_buffer_to_buffer(
                                s.buf(),
                                ((k + t) * d * 4) as u64,
                                &m.buf.buf,
                                ((m.off + (st + t) * m.rs) * 4) as u64,
                                (per * d * 4) as u64,
                            );
                        }
                    }
                }
                let next = encoder(dev);
                dev.submit_wait(vec![std::mem::replace(enc, next).finish()])?;
            }
            Dst::Host(x, rs) => {
                let mut raw = vec![0u8; r.rows * d * 4];
                let next = encoder(dev);
                let done = std::mem::replace(enc, next);
                buffers::submit_and_read(dev, done, &mut [(s.buf(), 0, &mut raw)])?;
                let g: &[f32] = bytemuck::cast_slice(&raw);
                for (k, &i) in sel.iter().enumerate() {
                    x[i * *rs..i * *rs + d].copy_from_slice(&g[k * d..(k + 1) * d]);
                }
            }
            Dst::None => {}
        }
        Ok(())
    }

    /// Submit `enc` and read back dC (host destinations, per vocabulary chunk) and dbias
    /// (copied on the device for a device destination).
    fn read_grads(
        &self,
        mut enc: wgpu::CommandEncoder,
        b: &BwdBufs<'_>,
        dc: &mut Dst<'_>,
        db: &mut Dst<'_>,
    ) -> Result<()> {
        let (d, v) = (self.job.d, self.job.v);
        let mut reads_c: Vec<Vec<u8>> = b
            .dc_host
            .iter()
            .zip(self.cchunks)
            .map(|(_, q)| vec![0u8; q.qn * d * 4])
            .collect();
        let mut raw_b = vec![
            0u8;
            if matches!(db, Dst::Host(..)) {
                v * 4
            } else {
                0
            }
        ];
        if let (Some(bb), Dst::Device(m)) = (&b.dbias, &*db) {
            enc.copy_buffer_to_buffer(bb.buf(), 0, &m.buf.buf, (m.off * 4) as u64, (v * 4) as u64);
        }
        {
            let mut reads: Vec<(&wgpu::Buffer, u64, &mut [u8])> = Vec::new();
            for (p, r) in b.dc_host.iter().zip(reads_c.iter_mut()) {
                reads.push((p.buf(), 0, &mut r[..]));
            }
            if let (Some(bb), false) = (&b.dbias, raw_b.is_empty()) {
                reads.push((bb.buf(), 0, &mut raw_b[..]));
            }
            buffers::submit_and_read(self.dev, enc, &mut reads)?;
        }
        if let Dst::Host(x, rs) = dc {
            for (q, raw) in self.cchunks.iter().zip(&reads_c) {
                let g: &[f32] = bytemuck::cast_slice(raw);
                for j in 0..q.qn {
                    let row = (q.q0 + j) * *rs;
                    x[row..row + d].copy_from_slice(&g[j * d..(j + 1) * d]);
                }
            }
        }
        if let Dst::Host(x, _) = db {
            x[..v].copy_from_slice(bytemuck::cast_slice(&raw_b));
        }
        Ok(())
    }

    /// The whole backward: ignored rows of dE zeroed, then per row chunk (its forward first
    /// when the logits are kept in the panel) the products and dE to its rows, then dC and
    /// dbias read back.
    fn backward(
        &self,
        rch: &[RChunk<'_>],
        tmax: Option<&Pooled<'_>>,
        de: &mut Dst<'_>,
        dc: &mut Dst<'_>,
        db: &mut Dst<'_>,
    ) -> Result<()> {
        let (dev, job, n, d) = (self.dev, self.job, self.job.n, self.job.d);
        let b = self.bwd_bufs(dc)?;
        if let Dst::Host(x, rs) = de {
            for i in 0..n {
                x[i * *rs..i * *rs + d].fill(0.0);
            }
        }
        let mut enc = encoder(dev);
        if let Dst::Device(m) = &*de {
            // Ignored rows get zeros.
            let mut contributes = vec![false; n];
            for &i in &job.rows {
                contributes[i] = true;
            }
            clear_rows(&mut enc, m, runs((0..n).filter(|&i| !contributes[i])), d);
        }
        let tw = self.tmax_w(tmax);
        for (ri, r) in rch.iter().enumerate() {
            if self.plan.panel {
                self.forward_chunk(&mut enc, r);
            }
            self.backward_chunk(&mut enc, ri, r, tw, &b, dc)?;
            if let Some(s) = &b.de_s {
                self.scatter_de(&mut enc, r, s, de)?;
            }
        }
        self.read_grads(enc, &b, dc, db)
    }
}

/// Read back the row records: per contributing row, (loss before the sample weight, lse).
fn read_rows(dev: &GpuDevice, rch: &[RChunk<'_>]) -> Result<Vec<(f32, f32)>> {
    let nv = rch.iter().map(|r| r.rows).sum();
    let mut out = Vec::with_capacity(nv);
    let enc = encoder(dev);
    let mut raws: Vec<Vec<u8>> = rch.iter().map(|r| vec![0u8; r.rows * 32]).collect();
    {
        let mut reads: Vec<(&wgpu::Buffer, u64, &mut [u8])> = rch
            .iter()
            .zip(raws.iter_mut())
            .map(|(r, x)| (r.rinfo.buf(), 0, &mut x[..]))
            .collect();
        buffers::submit_and_read(dev, enc, &mut reads)?;
    }
    for raw in &raws {
        let f: &[f32] = bytemuck::cast_slice(raw);
        for k in 0..raw.len() / 32 {
            out.push((f[8 * k + 5], f[8 * k]));
        }
    }
    Ok(out)
}

/// The passes of one call, in order: plan, kernels, uploads (classifier chunks, compacted
/// row chunks), the forward, the vocabulary sort, the filtering tile maxima, the backward,
/// and the per-row read-back.
fn run(dev: &GpuDevice, job: &Job, c: &mut Compute<'_>) -> Result<Vec<(f32, f32)>> {
    let (n, d, v) = (job.n, job.d, job.v);
    let Compute { inputs, grads, .. } = c;
    let [ge, gc, _, gb, _] = &mut grads[..] else {
        bail!(Internal, "{ID}: expected 5 gradient slots");
    };
    let mut de = dst(ge)?;
    let mut dc = dst(gc)?;
    let mut db = dst(gb)?;
    let et = inputs[IN_E]
        .as_ref()
        .ok_or_else(|| err!(Internal, "{ID}: e missing"))?;
    let ct = inputs[IN_C]
        .as_ref()
        .ok_or_else(|| err!(Internal, "{ID}: c missing"))?;

    if job.rows.is_empty() {
        zero_dst(dev, &mut de, n, d)?;
        zero_dst(dev, &mut dc, v, d)?;
        zero_dst(dev, &mut db, 1, v)?;
        return Ok(Vec::new());
    }

    let c_dev = dev_mat(ct);
    let c_rs = c_dev.as_ref().map_or(d, |m| m.rs);
    let dc_rs = match &dc {
        Dst::Device(m) => m.rs,
        _ => d,
    };
    let plan = Plan::new(dev, job, c_rs, dc_rs)?;
    let kernels = Kernels::new(dev)?;
    let dummy = Dummies::new(dev)?;
    let vinfo = upload_vinfo(dev, job)?;
    let c_host = upload_c(dev, &plan, ct, &c_dev, d, v)?;
    let cchunks = c_chunks(dev, &plan, &c_dev, &c_host, d, v);
    let mut enc = encoder(dev);
    let rch = row_chunks(dev, job, &plan, et, &mut enc)?;
    let scratch = Scratch::new(dev, &plan, &cchunks)?;
    let passes = Passes {
        dev,
        job,
        plan: &plan,
        k: &kernels,
        dummy: &dummy,
        vinfo: &vinfo,
        cchunks: &cchunks,
        s: &scratch,
        base: Uni {
            d: d as u32,
            nb: plan.nb as u32,
            bn: job.bn as u32,
            nqt: plan.nqt as u32,
            cap: job.cap,
            lambda: job.lambda,
            eps: job.eps,
            ..Uni::default()
        },
    };

    passes.forward(enc, &rch)?;
    if plan.presort {
        passes.sort_vocab(&rch)?;
    }
    let tmax = if plan.filtering {
        Some(passes.tile_max(&rch)?)
    } else {
        None
    };
    if plan.want_any {
        passes.backward(&rch, tmax.as_ref(), &mut de, &mut dc, &mut db)?;
    }
    read_rows(dev, &rch)
}

/// The per-entry records of a vocabulary chunk.
fn vinfo_win<'b>(dev: &GpuDevice, vinfo: &'b Pooled<'_>, q: &CChunk<'_>) -> Window<'b> {
    Window::new(dev, vinfo.buf(), (q.q0 * 8) as u64, (q.qn * 8) as u64)
}

/// The first `bytes` (at least 4) of a scratch buffer.
fn win_len<'b>(dev: &GpuDevice, p: &'b Pooled<'_>, bytes: usize) -> Window<'b> {
    Window::new(dev, p.buf(), 0, bytes.max(4) as u64)
}

/// Clear runs of rows `(first, count)` of a device matrix, `len` elements each.
fn clear_rows(enc: &mut wgpu::CommandEncoder, m: &DevMat, runs: Vec<(usize, usize)>, len: usize) {
    if len == 0 {
        return;
    }
    for (s, l) in runs {
        let per = if m.rs == len { l } else { 1 };
        for t in (0..l).step_by(per) {
            let at = ((m.off + (s + t) * m.rs) * 4) as u64;
            let bytes = ((per - 1) * m.rs + len) as u64 * 4;
            enc.clear_buffer(&m.buf.buf, at, Some(bytes));
        }
    }
}

/// Zero a whole gradient destination of `rows x len`.
fn zero_dst(dev: &GpuDevice, g: &mut Dst<'_>, rows: usize, len: usize) -> Result<()> {
    match g {
        Dst::None => Ok(()),
        Dst::Host(x, rs) => {
            for i in 0..rows {
                x[i * *rs..i * *rs + len].fill(0.0);
            }
            Ok(())
        }
        Dst::Device(m) => {
            let mut enc = dev
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(ID) });
            clear_rows(&mut enc, m, vec![(0, rows)], len);
            dev.submit_wait(vec![enc.finish()])
        }
    }
}
