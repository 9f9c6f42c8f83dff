//! The GPU path of `harmonic`: the same steps as the CPU path on the tiled pairwise kernels
//! of [`crate::backend::wgpu::pairwise`], with the per-row part in `harmonic.wgsl` (one
//! workgroup per row). Only `[N, C]`-sized scratch (the raw reductions, the backward
//! coefficients, the Chebyshev arg-max) besides the operands' own shapes.
//!
//! The passes, recorded into one command encoder and submitted once: the inputs staged on
//! the device, the raw pairwise reduction of every (row, class) pair (`distances`, with the
//! metric's transformed operands), the per-row pass (`rows`: the loss, and the backward
//! coefficients over the raw values), the contractions back to the features and the
//! centres and, for `mahalanobis`, the precision (`backward`), the gradients routed to
//! their destinations, and the read-back of the per-row losses (`read_losses`).

use super::{Harmonic, METRICS, Metric, checked_targets};
use crate::backend::wgpu::buffers::Pooled;
use crate::backend::wgpu::pairwise::{
    FwdOp, GradArgs, GradOp, HostGrad, Kernels, Mat, route_grad, stage_input,
};
use crate::backend::wgpu::{BindKind, GpuDevice, PRELUDE};
use crate::compute::Compute;
use crate::err;
use crate::error::Result;
use crate::exec::gpu::GpuLoss;
use crate::params::Params;
use crate::reduction::RowReducer;
use crate::spec::LossSpec;

const ROWS_WGSL: &str = include_str!("harmonic.wgsl");

fn rows_source() -> &'static str {
    static S: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    S.get_or_init(|| format!("{PRELUDE}\n{ROWS_WGSL}"))
}

impl GpuLoss for Harmonic {
    fn compute_gpu(
        &self,
        dev: &GpuDevice,
        _spec: &LossSpec,
        p: &Params,
        c: &mut Compute<'_>,
    ) -> Result<()> {
        let id = "harmonic";
        let name = p.choice("metric");
        let metric = Metric::parse(name);
        let code = METRICS.iter().position(|m| *m == name).unwrap_or(0) as u32;
        let ig = p.i64("ignore_index");
        let classes = c.dim("C");
        let target = checked_targets(
            id,
            c.get(2)
                .ok_or_else(|| err!(Internal, "{id}: target missing"))?,
            classes,
            ig,
        )?;
        let contributing = target.iter().filter(|&&y| y != ig).count();
        let reducer = RowReducer::new(c.reduction, c.grad_output, contributing as f64);
        let tg: Vec<i32> = target
            .iter()
            .map(|&y| if y == ig { -1 } else { y as i32 })
            .collect();
        let scales: Vec<f32> = (0..tg.len())
            .map(|i| reducer.grad_scale(i) as f32)
            .collect();
        let vals = Vals {
            metric,
            code,
            n: p.f64("n") as f32,
            eps: p.f64("eps") as f32,
            p: p.f64("p") as f32,
            temp: p.f64("hamming_temperature") as f32,
        };
        let per_row = dev.scoped(id, || run(dev, c, &vals, &tg, &scales))?;
        let losses: Vec<f64> = per_row.iter().map(|&v| v as f64).collect();
        reducer.write_loss(&losses, c.loss);
        Ok(())
    }
}

struct Vals {
    metric: Metric,
    code: u32,
    n: f32,
    eps: f32,
    p: f32,
    temp: f32,
}

/// The sizes of one call and the gradients it wants.
#[derive(Clone, Copy)]
struct Dims {
    n: usize,
    classes: usize,
    d: usize,
    want_x: bool,
    want_w: bool,
    want_p: bool,
}

impl Dims {
    fn want_grad(&self) -> bool {
        self.want_x || self.want_w || self.want_p
    }
}

/// The forward's device buffers: the raw pairwise reductions and the operands the
/// backward reads again.
struct Forward<'d> {
    /// `[N, C]` raw reductions (overwritten by the first backward coefficients).
    raw: Pooled<'d>,
    /// `[N, C]` Bray–Curtis denominators (then the second coefficients).
    raw2: Option<Pooled<'d>>,
    /// `[N, C]` Chebyshev arg-max.
    amax: Option<Pooled<'d>>,
    /// Cosine: unit features, their norms, unit centres, their norms.
    hat: Option<(Pooled<'d>, Pooled<'d>, Pooled<'d>, Pooled<'d>)>,
    /// Hamming: the soft bits of the features and of the centres.
    bits: Option<(Pooled<'d>, Pooled<'d>)>,
    /// Mahalanobis: the symmetric precision and the centred features and centres.
    psym: Option<(Pooled<'d>, Pooled<'d>, Pooled<'d>)>,
}

/// The passes of one call, in order: stage the inputs, the distances, the per-row pass,
/// the backward, and the read-back of the per-row losses.
fn run(
    dev: &GpuDevice,
    c: &mut Compute<'_>,
    v: &Vals,
    tg: &[i32],
    scales: &[f32],
) -> Result<Vec<f32>> {
    let id = "harmonic";
    let dm = Dims {
        n: c.dim("N"),
        classes: c.dim("C"),
        d: c.dim("D"),
        want_x: c.wants_grad(0),
        want_w: c.wants_grad(1),
        want_p: c.wants_grad(3),
    };
    let mut kn = Kernels::new(dev, id)?;
    let xb = stage_input(&mut kn, c, 0, "x")?;
    let wb = stage_input(&mut kn, c, 1, "centers")?;
    let (x, w) = (xb.buf(), wb.buf());
    let fw = distances(&mut kn, c, v, dm, x, w)?;
    let (tgb, scb, lossb) = rows(&mut kn, v, dm, &fw, tg, scales)?;
    let mut host = Vec::new();
    if dm.want_grad() {
        backward(&mut kn, c, v, dm, &fw, x, w, &mut host)?;
    }
    let lossv = read_losses(kn, c, &lossb, dm.n, host)?;
    drop((xb, wb, fw, tgb, scb, lossb));
    Ok(bytemuck::cast_slice::<u8, f32>(&lossv).to_vec())
}

/// The raw pairwise reduction `op` of the rows of `l` against the rows of `r` into `raw`
/// (and the arg-max, when kept).
fn fwd_plain(
    kn: &mut Kernels<'_>,
    dm: Dims,
    raw: &Pooled<'_>,
    amax: Option<&Pooled<'_>>,
    op: FwdOp,
    l: &wgpu::Buffer,
    r: &wgpu::Buffer,
) -> Result<()> {
    let (n, classes, d) = (dm.n, dm.classes, dm.d);
    kn.fwd(
        op,
        Mat::rows(l, n, d),
        None,
        Mat::rows(r, classes, d),
        None,
        d,
        raw.buf(),
        classes,
        None,
        amax.map(|p| p.buf()),
    )
}

/// The forward: the `[N, C]` raw reductions of the metric (and the Bray–Curtis
/// denominators, the Chebyshev arg-max), with the transformed operands it needs.
fn distances<'d>(
    kn: &mut Kernels<'d>,
    c: &Compute<'_>,
    v: &Vals,
    dm: Dims,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
) -> Result<Forward<'d>> {
    let (n, classes, d) = (dm.n, dm.classes, dm.d);
    let nc = n * classes;
    let raw = kn.scratch("the [N, C] distances", nc)?;
    let bray = v.metric == Metric::BrayCurtis;
    let cheb = v.metric == Metric::Chebyshev;
    let raw2 = if bray {
        Some(kn.scratch("the [N, C] Bray-Curtis denominators", nc)?)
    } else {
        None
    };
    let amax = if cheb {
        Some(kn.scratch("the [N, C] Chebyshev arg-max", nc)?)
    } else {
        None
    };
    let mut fw = Forward {
        raw,
        raw2,
        amax,
        hat: None,
        bits: None,
        psym: None,
    };
    let (raw, amax) = (&fw.raw, fw.amax.as_ref());
    match v.metric {
        Metric::Euclidean => fwd_plain(kn, dm, raw, amax, FwdOp::SqDiff, x, w)?,
        Metric::Manhattan => fwd_plain(kn, dm, raw, amax, FwdOp::AbsDiff, x, w)?,
        Metric::Minkowski => fwd_plain(kn, dm, raw, amax, FwdOp::PowDiff(v.p), x, w)?,
        Metric::Chebyshev => fwd_plain(kn, dm, raw, amax, FwdOp::MaxAbsDiff, x, w)?,
        Metric::Canberra => fwd_plain(kn, dm, raw, amax, FwdOp::Canberra(v.eps), x, w)?,
        Metric::BrayCurtis => kn.fwd(
            FwdOp::BrayCurtis,
            Mat::rows(x, n, d),
            None,
            Mat::rows(w, classes, d),
            None,
            d,
            raw.buf(),
            classes,
            fw.raw2.as_ref().map(|p| p.buf()),
            None,
        )?,
        Metric::Cosine => fw.hat = Some(cosine_distances(kn, dm, raw, amax, x, w)?),
        Metric::Hamming => fw.bits = Some(hamming_distances(kn, v, dm, raw, amax, x, w)?),
        Metric::Mahalanobis => fw.psym = Some(mahalanobis_distances(kn, c, dm, raw, x, w)?),
    }
    Ok(fw)
}

/// Cosine: unit rows and their norms, `½‖x̂ - ŵ‖²`, then the distance from it and the norms.
fn cosine_distances<'d>(
    kn: &mut Kernels<'d>,
    dm: Dims,
    raw: &Pooled<'_>,
    amax: Option<&Pooled<'_>>,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
) -> Result<(Pooled<'d>, Pooled<'d>, Pooled<'d>, Pooled<'d>)> {
    let (n, classes, d) = (dm.n, dm.classes, dm.d);
    let nc = n * classes;
    let xh = kn.scratch("unit features", n * d)?;
    let xn = kn.scratch("feature norms", n)?;
    let wh = kn.scratch("unit centres", classes * d)?;
    let wn = kn.scratch("centre norms", classes)?;
    kn.misc("norm_rows", n, d, 0.0, x, None, xh.buf(), Some(xn.buf()))?;
    kn.misc(
        "norm_rows",
        classes,
        d,
        0.0,
        w,
        None,
        wh.buf(),
        Some(wn.buf()),
    )?;
    fwd_plain(kn, dm, raw, amax, FwdOp::SqDiff, xh.buf(), wh.buf())?;
    kn.misc(
        "cos_dist",
        nc,
        classes,
        0.0,
        xn.buf(),
        Some(wn.buf()),
        raw.buf(),
        None,
    )?;
    Ok((xh, xn, wh, wn))
}

/// Hamming: the soft bits `σ(v / T)` of both operands, then their Manhattan distance.
fn hamming_distances<'d>(
    kn: &mut Kernels<'d>,
    v: &Vals,
    dm: Dims,
    raw: &Pooled<'_>,
    amax: Option<&Pooled<'_>>,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
) -> Result<(Pooled<'d>, Pooled<'d>)> {
    let (n, classes, d) = (dm.n, dm.classes, dm.d);
    let sx = kn.scratch("feature bits", n * d)?;
    let sw = kn.scratch("centre bits", classes * d)?;
    kn.misc("soft_bits", n * d, 1, v.temp, x, None, sx.buf(), None)?;
    kn.misc("soft_bits", classes * d, 1, v.temp, w, None, sw.buf(), None)?;
    fwd_plain(kn, dm, raw, amax, FwdOp::AbsDiff, sx.buf(), sw.buf())?;
    Ok((sx, sw))
}

/// Mahalanobis: the symmetric precision `Pₛ`, the centred rows, `Pₛx` and `Pₛw`, then the
/// quadratic form of every pair.
fn mahalanobis_distances<'d>(
    kn: &mut Kernels<'d>,
    c: &Compute<'_>,
    dm: Dims,
    raw: &Pooled<'_>,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
) -> Result<(Pooled<'d>, Pooled<'d>, Pooled<'d>)> {
    let (n, classes, d) = (dm.n, dm.classes, dm.d);
    let pm = match c.get(3) {
        Some(_) => stage_input(kn, c, 3, "precision")?,
        None => {
            let mut e = vec![0.0f32; d * d];
            for k in 0..d {
                e[k * d + k] = 1.0;
            }
            kn.upload("precision", bytemuck::cast_slice(&e))?
        }
    };
    let ps = kn.scratch("symmetric precision", d * d)?;
    kn.misc("sym", d * d, d, 0.5, pm.buf(), None, ps.buf(), None)?;
    kn.keep(pm);
    // The rows centred (translation invariant; smaller terms in the form).
    let (xc, wc) = kn.centre(x, n, w, classes, d)?;
    let (x, w) = (xc.buf(), wc.buf());
    // P_s x and P_s w (P_s is symmetric: its rows are its columns).
    let px = kn.scratch("P x", n * d)?;
    let pw = kn.scratch("P w", classes * d)?;
    let psm = Mat::rows(ps.buf(), d, d);
    kn.fwd(
        FwdOp::Product,
        Mat::rows(x, n, d),
        None,
        psm,
        None,
        d,
        px.buf(),
        d,
        None,
        None,
    )?;
    kn.fwd(
        FwdOp::Product,
        Mat::rows(w, classes, d),
        None,
        psm,
        None,
        d,
        pw.buf(),
        d,
        None,
        None,
    )?;
    kn.fwd(
        FwdOp::QuadForm,
        Mat::rows(x, n, d),
        Some(px.buf()),
        Mat::rows(w, classes, d),
        Some(pw.buf()),
        d,
        raw.buf(),
        classes,
        None,
        None,
    )?;
    kn.keep(px);
    kn.keep(pw);
    Ok((ps, xc, wc))
}

/// The per-row pass (`harmonic.wgsl`): the softmax over `-n log d`, the row loss, and the
/// backward coefficients written over the raw values. Returns the buffers of the targets,
/// the gradient scales and the per-row losses (read back after the backward).
fn rows<'d>(
    kn: &mut Kernels<'d>,
    v: &Vals,
    dm: Dims,
    fw: &Forward<'_>,
    tg: &[i32],
    scales: &[f32],
) -> Result<(Pooled<'d>, Pooled<'d>, Pooled<'d>)> {
    let (n, classes) = (dm.n, dm.classes);
    let tgb = kn.upload("targets", bytemuck::cast_slice(tg))?;
    let scb = kn.upload("gradient scales", bytemuck::cast_slice(scales))?;
    let lossb = kn.scratch("per-row losses", n)?;
    let u: [u32; 8] = [
        n as u32,
        classes as u32,
        dm.want_grad() as u32,
        0,
        v.n.to_bits(),
        v.eps.to_bits(),
        v.p.to_bits(),
        0,
    ];
    let dw = kn.dummy_write();
    let grid = kn.grid(n)?;
    {
        use BindKind::*;
        kn.custom(
            "harmonic_rows",
            rows_source(),
            "rows",
            &[("METRIC", v.code as f64)],
            &[Uniform, ReadWrite, ReadWrite, Read, Read, ReadWrite],
            &u,
            &[
                fw.raw.buf(),
                fw.raw2.as_ref().map_or(&dw, |p| p.buf()),
                tgb.buf(),
                scb.buf(),
                lossb.buf(),
            ],
            grid,
        )?;
    }
    Ok((tgb, scb, lossb))
}

/// The backward coefficients of the pairs (and the Chebyshev arg-max) the contractions read.
#[derive(Clone, Copy)]
struct Coefs<'b> {
    a1: &'b wgpu::Buffer,
    a2: Option<&'b wgpu::Buffer>,
    idx: Option<&'b wgpu::Buffer>,
}

/// One contraction of the coefficients with the pair derivative `op`: over the centres
/// into a feature gradient (`left`), or over the rows into a centre gradient.
#[allow(clippy::too_many_arguments)]
fn contract(
    kn: &mut Kernels<'_>,
    dm: Dims,
    co: Coefs<'_>,
    op: GradOp,
    left: bool,
    l: &wgpu::Buffer,
    r: &wgpu::Buffer,
    out: &wgpu::Buffer,
) -> Result<()> {
    let (n, classes, d) = (dm.n, dm.classes, dm.d);
    kn.grad(&GradArgs {
        op,
        left,
        own: if left { l } else { r },
        m: if left { n } else { classes },
        partner: if left { r } else { l },
        n: if left { classes } else { n },
        k: d,
        c1: co.a1,
        c2: co.a2,
        c_rs: if left { classes } else { 1 },
        c_ps: if left { 1 } else { classes },
        idx: co.idx,
        out,
    })
}

/// The backward: the feature and centre gradients by the metric's contractions (and the
/// precision gradient), routed to their destinations; host ones are added to `host`.
#[allow(clippy::too_many_arguments)]
fn backward<'d>(
    kn: &mut Kernels<'d>,
    c: &Compute<'_>,
    v: &Vals,
    dm: Dims,
    fw: &Forward<'_>,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
    host: &mut Vec<HostGrad<'d>>,
) -> Result<()> {
    let (n, classes, d) = (dm.n, dm.classes, dm.d);
    let (want_x, want_w, want_p) = (dm.want_x, dm.want_w, dm.want_p);
    let co = Coefs {
        a1: fw.raw.buf(),
        a2: fw.raw2.as_ref().map(|p| p.buf()),
        idx: fw.amax.as_ref().map(|p| p.buf()),
    };
    let gx = kn.scratch("the feature gradient", n * d)?;
    let gw = kn.scratch("the centre gradient", classes * d)?;
    let simple = match v.metric {
        Metric::Euclidean => Some(GradOp::Diff(2.0)),
        Metric::Manhattan => Some(GradOp::Sign),
        Metric::Minkowski => Some(GradOp::Pow(v.p)),
        Metric::Chebyshev => Some(GradOp::ArgmaxSign),
        Metric::BrayCurtis => Some(GradOp::BrayCurtis),
        Metric::Canberra => Some(GradOp::Canberra(v.eps)),
        _ => None,
    };
    let mut gp = None;
    if let Some(op) = simple {
        if want_x {
            contract(kn, dm, co, op, true, x, w, gx.buf())?;
        }
        if want_w {
            contract(kn, dm, co, op, false, x, w, gw.buf())?;
        }
    } else if let Some(hat) = &fw.hat {
        cosine_backward(kn, dm, co, hat, gx.buf(), gw.buf())?;
    } else if let Some(bits) = &fw.bits {
        hamming_backward(kn, v, dm, co, bits, gx.buf(), gw.buf())?;
    } else if let Some(psym) = &fw.psym {
        gp = mahalanobis_backward(kn, dm, co, psym, gx.buf(), gw.buf())?;
    }
    if want_p && gp.is_none() {
        gp = Some(kn.zeros("the precision gradient", d * d)?);
    }
    route_grad(kn, c, 0, gx, n, d, host)?;
    route_grad(kn, c, 1, gw, classes, d, host)?;
    if let Some(g) = gp {
        route_grad(kn, c, 3, g, d, d, host)?;
    }
    Ok(())
}

/// Cosine backward: the product contraction on the unit rows, then through the
/// normalisation.
fn cosine_backward(
    kn: &mut Kernels<'_>,
    dm: Dims,
    co: Coefs<'_>,
    (xh, xn, wh, wn): &(Pooled<'_>, Pooled<'_>, Pooled<'_>, Pooled<'_>),
    gx: &wgpu::Buffer,
    gw: &wgpu::Buffer,
) -> Result<()> {
    let (n, classes, d) = (dm.n, dm.classes, dm.d);
    let (want_x, want_w) = (dm.want_x, dm.want_w);
    if want_x {
        contract(kn, dm, co, GradOp::Product, true, xh.buf(), wh.buf(), gx)?;
        kn.thru_norm(n, d, xh.buf(), xn.buf(), gx)?;
    }
    if want_w {
        contract(kn, dm, co, GradOp::Product, false, xh.buf(), wh.buf(), gw)?;
        kn.thru_norm(classes, d, wh.buf(), wn.buf(), gw)?;
    }
    Ok(())
}

/// Hamming backward: the sign contraction on the soft bits, then through the sigmoid.
fn hamming_backward(
    kn: &mut Kernels<'_>,
    v: &Vals,
    dm: Dims,
    co: Coefs<'_>,
    (sx, sw): &(Pooled<'_>, Pooled<'_>),
    gx: &wgpu::Buffer,
    gw: &wgpu::Buffer,
) -> Result<()> {
    let (n, classes, d) = (dm.n, dm.classes, dm.d);
    let (want_x, want_w) = (dm.want_x, dm.want_w);
    if want_x {
        contract(kn, dm, co, GradOp::Sign, true, sx.buf(), sw.buf(), gx)?;
        kn.misc("sigmoid_chain", n * d, 1, v.temp, sx.buf(), None, gx, None)?;
    }
    if want_w {
        contract(kn, dm, co, GradOp::Sign, false, sx.buf(), sw.buf(), gw)?;
        kn.misc(
            "sigmoid_chain",
            classes * d,
            1,
            v.temp,
            sw.buf(),
            None,
            gw,
            None,
        )?;
    }
    Ok(())
}

/// Mahalanobis backward on the centred rows: `E_i = Σ_c H_ic (x_i - w_c)` and
/// `F_c = Σ_i H_ic (w_c - x_i)`, the feature and centre gradients `Pₛ E`, `Pₛ F`, and the
/// precision gradient `½ (Xᵀ E + Wᵀ F)` (returned when wanted).
fn mahalanobis_backward<'d>(
    kn: &mut Kernels<'d>,
    dm: Dims,
    co: Coefs<'_>,
    (ps, xc, wc): &(Pooled<'_>, Pooled<'_>, Pooled<'_>),
    gx: &wgpu::Buffer,
    gw: &wgpu::Buffer,
) -> Result<Option<Pooled<'d>>> {
    let (n, classes, d) = (dm.n, dm.classes, dm.d);
    let (want_x, want_w, want_p) = (dm.want_x, dm.want_w, dm.want_p);
    let mut gp = None;
    let (x, w) = (xc.buf(), wc.buf());
    // E_i = Σ_c H_ic (x_i - w_c), F_c = Σ_i H_ic (w_c - x_i).
    let e = kn.scratch("E", n * d)?;
    let f = kn.scratch("F", classes * d)?;
    if want_x || want_p {
        contract(kn, dm, co, GradOp::Diff(1.0), true, x, w, e.buf())?;
    }
    if want_w || want_p {
        contract(kn, dm, co, GradOp::Diff(1.0), false, x, w, f.buf())?;
    }
    let psm = Mat::rows(ps.buf(), d, d);
    if want_x {
        let em = Mat::rows(e.buf(), n, d);
        kn.fwd(FwdOp::Product, em, None, psm, None, d, gx, d, None, None)?;
    }
    if want_w {
        let fm = Mat::rows(f.buf(), classes, d);
        kn.fwd(FwdOp::Product, fm, None, psm, None, d, gw, d, None, None)?;
    }
    if want_p {
        // ½ (Xᵀ E + Wᵀ F).
        let xe = kn.scratch("X^T E", d * d)?;
        let wf = kn.scratch("W^T F", d * d)?;
        kn.fwd(
            FwdOp::Product,
            Mat::cols(x, n, d),
            None,
            Mat::cols(e.buf(), n, d),
            None,
            n,
            xe.buf(),
            d,
            None,
            None,
        )?;
        kn.fwd(
            FwdOp::Product,
            Mat::cols(w, classes, d),
            None,
            Mat::cols(f.buf(), classes, d),
            None,
            classes,
            wf.buf(),
            d,
            None,
            None,
        )?;
        let g = kn.scratch("the precision gradient", d * d)?;
        kn.misc(
            "add_scaled",
            d * d,
            1,
            0.5,
            xe.buf(),
            Some(wf.buf()),
            g.buf(),
            None,
        )?;
        kn.keep(xe);
        kn.keep(wf);
        gp = Some(g);
    }
    kn.keep(e);
    kn.keep(f);
    Ok(gp)
}

/// Submit everything recorded and read back the per-row losses (and the host gradients,
/// which [`Kernels::submit`] writes into `c`).
fn read_losses<'d>(
    kn: Kernels<'d>,
    c: &mut Compute<'_>,
    lossb: &Pooled<'_>,
    n: usize,
    host: Vec<HostGrad<'d>>,
) -> Result<Vec<u8>> {
    let mut lossv = vec![0u8; n * 4];
    {
        let lb = lossb.buf().clone();
        let mut reads: Vec<(&wgpu::Buffer, &mut [u8])> = vec![(&lb, &mut lossv)];
        kn.submit(c, &mut reads, host)?;
    }
    Ok(lossv)
}
