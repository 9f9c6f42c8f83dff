//! Tiled pairwise kernels on the GPU: the counterpart of [`crate::backend::pairwise`] for
//! losses that compare every row of one matrix with every row of another (distance layers,
//! Gram matrices) without ever materialising the `[N, C, D]` tensor of elementwise terms.
//!
//! - [`Kernels::fwd`]: `out[i, j] = Σ_k t(a_ik, a2_ik, b_jk, b2_jk)` (or the max over `k`
//!   with its first arg-max), one output tile per workgroup of `16 x 16` invocations, each
//!   holding a register micro-tile of up to `4 x 4` outputs (1 along axes shorter than 48),
//!   the operands streamed through workgroup memory in tiles of 8 features. Operands are strided views
//!   ([`Mat`]), so matrix products with a transposed operand need no copy.
//! - [`Kernels::grad`]: the backward contractions `out[r, k] = Σ_p dt(c_rp, own_rk,
//!   partner_pk)`, tiled the same way over (rows x features), the partners streamed in
//!   tiles of 8.
//! - small row and element kernels (row normalisation and its chain rule, sigmoid bits,
//!   symmetrisation, scaled sums).
//!
//! Sums are f32 over blocks of 64 terms (the block size of the CPU kernels), the block sums
//! added in a second accumulator; every output element is summed in one fixed order, so
//! results are deterministic (no atomics). Whole operands are bound: a shape whose buffers
//! exceed the device's largest binding is refused with [`crate::ErrorKind::Unsupported`]
//! (these kernels do not chunk).
//!
//! [`Kernels`] records every dispatch of a call into one command encoder; [`stage_input`],
//! [`route_grad`] and [`Kernels::submit`] move whole tensors (host or device, strided or
//! not) in and out.

use super::buffers::{self, Pooled, Window};
use super::{BindKind, GpuDevice, PRELUDE, PipelineKey, launch};
use crate::backend::wgpu::buffers::WgpuBuffer;
use crate::compute::Compute;
use crate::error::Result;
use crate::tensor::{Data, Grad, Tensor};
use crate::{bail, err};

/// The kernels' WGSL (after the prelude).
pub const SOURCE: &str = include_str!("pairwise.wgsl");

/// Invocations per workgroup side of the tiled kernels.
const TILE: usize = 16;

/// Outputs per invocation along an axis of `len`: 4 (register micro-tile) for long axes,
/// 1 for short ones (fewer idle lanes).
fn micro(len: usize) -> usize {
    if len >= 48 { 4 } else { 1 }
}

/// A strided matrix view on the device: element (row `r`, feature `k`) at `r * rs + k * ks`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'b> {
    /// The buffer.
    pub buf: &'b wgpu::Buffer,
    /// Rows.
    pub rows: usize,
    /// Row stride (elements).
    pub rs: usize,
    /// Feature stride (elements).
    pub ks: usize,
}

impl<'b> Mat<'b> {
    /// A contiguous row-major `[rows, cols]` matrix.
    pub fn rows(buf: &'b wgpu::Buffer, rows: usize, cols: usize) -> Self {
        Mat {
            buf,
            rows,
            rs: cols,
            ks: 1,
        }
    }
    /// The columns of a contiguous row-major `[rows, cols]` matrix as the rows of the view
    /// (its transpose, `[cols, rows]`).
    pub fn cols(buf: &'b wgpu::Buffer, rows: usize, cols: usize) -> Self {
        let _ = rows;
        Mat {
            buf,
            rows: cols,
            rs: 1,
            ks: cols,
        }
    }
}

/// The elementwise term of [`Kernels::fwd`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FwdOp {
    /// `x·w`.
    Product,
    /// `(x - w)²`.
    SqDiff,
    /// `|x - w|`.
    AbsDiff,
    /// `|x - w|^p`.
    PowDiff(f32),
    /// `max_k |x - w|`, first arg-max into `idx`.
    MaxAbsDiff,
    /// `|x - w| / max(|x| + |w|, eps)`.
    Canberra(f32),
    /// `(x2 - w2)(x - w)` (second matrices required).
    QuadForm,
    /// `Σ|x - w|` into `out` and `Σ|x + w|` into `out2`.
    BrayCurtis,
}

impl FwdOp {
    fn code(self) -> (u32, f32) {
        match self {
            FwdOp::Product => (0, 0.0),
            FwdOp::SqDiff => (1, 0.0),
            FwdOp::AbsDiff => (2, 0.0),
            FwdOp::PowDiff(p) => (3, p),
            FwdOp::MaxAbsDiff => (4, 0.0),
            FwdOp::Canberra(e) => (5, e),
            FwdOp::QuadForm => (6, 0.0),
            FwdOp::BrayCurtis => (7, 0.0),
        }
    }
}

/// The derivative term of [`Kernels::grad`] (`x` from the left matrix, `w` from the right,
/// `c` the pair's coefficient).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GradOp {
    /// `c·w` / `c·x`.
    Product,
    /// `c·s·(x - w)` / `c·s·(w - x)`.
    Diff(f32),
    /// `c·sign(x - w)` / `-c·sign(x - w)`.
    Sign,
    /// `c·sign(δ)|δ|^{p-1}` / its negative.
    Pow(f32),
    /// [`GradOp::Sign`] at the pair's arg-max feature only (from `idx`).
    ArgmaxSign,
    /// Canberra with `eps`.
    Canberra(f32),
    /// Bray–Curtis: `c1·sign(x - w) + c2·sign(x + w)` / `-c1·sign(x - w) + c2·sign(x + w)`.
    BrayCurtis,
}

impl GradOp {
    fn code(self) -> (u32, f32) {
        match self {
            GradOp::Product => (0, 0.0),
            GradOp::Diff(s) => (1, s),
            GradOp::Sign => (2, 0.0),
            GradOp::Pow(p) => (3, p),
            GradOp::ArgmaxSign => (4, 0.0),
            GradOp::Canberra(e) => (5, e),
            GradOp::BrayCurtis => (6, 0.0),
        }
    }
}

/// One side of a backward contraction.
#[derive(Clone, Copy, Debug)]
pub struct GradArgs<'b> {
    /// The term.
    pub op: GradOp,
    /// The own rows are the left matrix (`x`), else the right one (`w`).
    pub left: bool,
    /// Own rows `[m, k]`, contiguous.
    pub own: &'b wgpu::Buffer,
    /// Number of own rows.
    pub m: usize,
    /// Partner rows `[n, k]`, contiguous.
    pub partner: &'b wgpu::Buffer,
    /// Number of partners.
    pub n: usize,
    /// Features.
    pub k: usize,
    /// Coefficients of (own `r`, partner `p`) at `r * c_rs + p * c_ps`.
    pub c1: &'b wgpu::Buffer,
    /// Second coefficients (Bray–Curtis).
    pub c2: Option<&'b wgpu::Buffer>,
    /// Row stride of the coefficients for own rows.
    pub c_rs: usize,
    /// Stride of the coefficients for partners.
    pub c_ps: usize,
    /// Arg-max features (for [`GradOp::ArgmaxSign`]), indexed like the coefficients.
    pub idx: Option<&'b wgpu::Buffer>,
    /// Output `[m, k]`, contiguous.
    pub out: &'b wgpu::Buffer,
}

/// A host destination of a gradient read back after the kernels ran.
pub struct HostGrad<'d> {
    input: usize,
    buf: Pooled<'d>,
    rows: usize,
    cols: usize,
}

/// The dispatches of one compute call, recorded into one command encoder.
pub struct Kernels<'d> {
    dev: &'d GpuDevice,
    id: &'d str,
    bgl: std::sync::Arc<wgpu::BindGroupLayout>,
    pl: std::sync::Arc<wgpu::PipelineLayout>,
    enc: wgpu::CommandEncoder,
    dummy_r: Pooled<'d>,
    dummy_w: Pooled<'d>,
    source: String,
    kept: Vec<Pooled<'d>>,
}

fn layout_kinds() -> [BindKind; 8] {
    use BindKind::*;
    [
        Uniform, Read, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite,
    ]
}

impl<'d> Kernels<'d> {
    /// A new recording for the loss `id`.
    pub fn new(dev: &'d GpuDevice, id: &'d str) -> Result<Self> {
        let (bgl, pl) = dev.layout("pairwise", &layout_kinds());
        let enc = dev
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(id) });
        Ok(Kernels {
            dev,
            id,
            bgl,
            pl,
            enc,
            dummy_r: dev.pool.take(dev, 256, buffers::STORAGE)?,
            dummy_w: dev.pool.take(dev, 256, buffers::STORAGE)?,
            source: format!("{PRELUDE}\n{SOURCE}"),
            kept: Vec::new(),
        })
    }

    /// The device.
    pub fn dev(&self) -> &'d GpuDevice {
        self.dev
    }

    /// Keep a scratch buffer out of the pool until the recording is submitted (a buffer
    /// returned early could be handed out again and written by a queued upload before the
    /// recorded commands that still read it run).
    pub fn keep(&mut self, p: Pooled<'d>) {
        self.kept.push(p);
    }

    /// The command encoder (for copies between the dispatches).
    pub fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        &mut self.enc
    }

    /// Refuse `elems` f32 (or u32) values that one binding cannot hold.
    pub fn check_fits(&self, what: &str, elems: usize) -> Result<()> {
        let bytes = (elems as u64).saturating_mul(4);
        let maxb = self.dev.max_binding_bytes();
        if bytes > maxb {
            bail!(
                Unsupported,
                "{}: {what} needs {bytes} bytes in one binding, more than the device's largest binding ({maxb} bytes); this GPU kernel does not chunk (use the CPU backend or a smaller batch)",
                self.id
            );
        }
        Ok(())
    }

    /// A scratch buffer of `elems` 4-byte values (at least one), refused when it cannot be
    /// bound.
    pub fn scratch(&self, what: &str, elems: usize) -> Result<Pooled<'d>> {
        self.check_fits(what, elems)?;
        self.dev
            .pool
            .take(self.dev, (elems.max(1) * 4) as u64, buffers::STORAGE)
    }

    /// A scratch buffer holding `data`, refused when it cannot be bound.
    pub fn upload(&self, what: &str, data: &[u8]) -> Result<Pooled<'d>> {
        self.check_fits(what, data.len().div_ceil(4))?;
        buffers::upload(self.dev, data)
    }

    /// A scratch buffer of `elems` zeros.
    pub fn zeros(&mut self, what: &str, elems: usize) -> Result<Pooled<'d>> {
        let p = self.scratch(what, elems)?;
        self.enc.clear_buffer(p.buf(), 0, None);
        Ok(p)
    }

    fn window<'b>(&self, b: &'b wgpu::Buffer) -> Window<'b> {
        let maxb = self.dev.max_binding_bytes();
        Window::new(self.dev, b, 0, b.size().min(maxb))
    }

    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &mut self,
        entry: &str,
        (op, rm, cm): (u32, usize, usize),
        u: [u32; 16],
        reads: [Option<&wgpu::Buffer>; 4],
        writes: [Option<&wgpu::Buffer>; 3],
        grid: (u32, u32),
    ) -> Result<()> {
        if grid.0 == 0 || grid.1 == 0 {
            return Ok(());
        }
        let dev = self.dev;
        let pipe = dev.pipelines.get_with_layout(
            dev,
            &PipelineKey::new(
                "pairwise",
                &self.source,
                entry,
                launch::DEFAULT_WG,
                &[("OP", op as f64), ("RM", rm as f64), ("CM", cm as f64)],
            ),
            &self.source,
            Some(&self.pl),
        )?;
        let ub = buffers::uniform(dev, bytemuck::cast_slice(&u));
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: Window::whole(&ub).resource(),
        }];
        for (j, r) in reads.iter().enumerate() {
            let b = r.unwrap_or(self.dummy_r.buf());
            entries.push(wgpu::BindGroupEntry {
                binding: 1 + j as u32,
                resource: self.window(b).resource(),
            });
        }
        for (j, w) in writes.iter().enumerate() {
            let b = w.unwrap_or(self.dummy_w.buf());
            entries.push(wgpu::BindGroupEntry {
                binding: 5 + j as u32,
                resource: self.window(b).resource(),
            });
        }
        let bg = dev.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("pairwise"),
            layout: &self.bgl,
            entries: &entries,
        });
        let mut pass = self.enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(entry),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipe);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(grid.0, grid.1, 1);
        Ok(())
    }

    fn tile_grid(&self, cols: usize, rows: usize, cm: usize, rm: usize) -> Result<(u32, u32)> {
        let (gx, gy) = (cols.div_ceil(TILE * cm), rows.div_ceil(TILE * rm));
        let maxd = self.dev.limits.max_compute_workgroups_per_dimension as usize;
        if gx > maxd || gy > maxd {
            bail!(
                Unsupported,
                "{}: a {rows} x {cols} tile grid exceeds the device's dispatch limit ({maxd} workgroups per dimension)",
                self.id
            );
        }
        Ok((gx as u32, gy as u32))
    }

    /// `out[i * o_rs + j] = Σ_k op(a_ik, a2_ik, b_jk, b2_jk)` for `i < a.rows`, `j < b.rows`
    /// (second matrices share their first matrix's layout; `idx` receives the arg-max of
    /// [`FwdOp::MaxAbsDiff`], `out2` the second sum of [`FwdOp::BrayCurtis`]).
    #[allow(clippy::too_many_arguments)]
    pub fn fwd(
        &mut self,
        op: FwdOp,
        a: Mat<'_>,
        a2: Option<&wgpu::Buffer>,
        b: Mat<'_>,
        b2: Option<&wgpu::Buffer>,
        k: usize,
        out: &wgpu::Buffer,
        o_rs: usize,
        out2: Option<&wgpu::Buffer>,
        idx: Option<&wgpu::Buffer>,
    ) -> Result<()> {
        let (code, f0) = op.code();
        let u = [
            a.rows as u32,
            b.rows as u32,
            k as u32,
            0,
            a.rs as u32,
            a.ks as u32,
            b.rs as u32,
            b.ks as u32,
            0,
            0,
            o_rs as u32,
            0,
            f0.to_bits(),
            0,
            0,
            0,
        ];
        let (rm, cm) = (micro(a.rows), micro(b.rows));
        let grid = self.tile_grid(b.rows, a.rows, cm, rm)?;
        self.dispatch(
            "pair_fwd",
            (code, rm, cm),
            u,
            [Some(a.buf), a2, Some(b.buf), b2],
            [Some(out), out2, idx],
            grid,
        )
    }

    /// `out[r, k] = Σ_p op(c_rp, own_rk, partner_pk)` (see [`GradArgs`]).
    pub fn grad(&mut self, g: &GradArgs<'_>) -> Result<()> {
        let (code, f0) = g.op.code();
        let u = [
            g.m as u32,
            g.n as u32,
            g.k as u32,
            g.left as u32,
            g.k as u32,
            1,
            g.k as u32,
            1,
            g.c_rs as u32,
            g.c_ps as u32,
            g.k as u32,
            0,
            f0.to_bits(),
            0,
            0,
            0,
        ];
        let (rm, cm) = (micro(g.m), micro(g.k));
        let grid = self.tile_grid(g.k, g.m, cm, rm)?;
        self.dispatch(
            "pair_grad",
            (code, rm, cm),
            u,
            [Some(g.own), Some(g.c1), Some(g.partner), g.c2],
            [Some(g.out), None, g.idx],
            grid,
        )
    }

    /// One of the row / element kernels of the source (`norm_rows`, `thru_norm`,
    /// `soft_bits`, `sigmoid_chain`, `sym`, `add_scaled`, `cos_dist`) over `m` rows or elements of
    /// width `k`.
    #[allow(clippy::too_many_arguments)]
    pub fn misc(
        &mut self,
        entry: &str,
        m: usize,
        k: usize,
        f0: f32,
        a: &wgpu::Buffer,
        a2: Option<&wgpu::Buffer>,
        out: &wgpu::Buffer,
        out2: Option<&wgpu::Buffer>,
    ) -> Result<()> {
        let mut u = [0u32; 16];
        u[0] = m as u32;
        u[2] = k as u32;
        u[12] = f0.to_bits();
        let grid = launch::grid(
            (m as u64).div_ceil(launch::DEFAULT_WG as u64),
            self.dev.limits.max_compute_workgroups_per_dimension,
        )?;
        self.dispatch(
            entry,
            (0, 1, 1),
            u,
            [Some(a), a2, None, None],
            [Some(out), out2, None],
            grid,
        )
    }

    /// `x - μ` and `w - μ` for `x [n, d]`, `w [c, d]`, with `μ` the column mean of the first
    /// (at most) 1024 rows of `w` (as [`crate::backend::pairwise::centre`]).
    pub fn centre(
        &mut self,
        x: &wgpu::Buffer,
        n: usize,
        w: &wgpu::Buffer,
        c: usize,
        d: usize,
    ) -> Result<(Pooled<'d>, Pooled<'d>)> {
        let mu = self.scratch("the centring point", d)?;
        let mut u = [0u32; 16];
        u[0] = c as u32;
        u[2] = d as u32;
        let grid = launch::grid(
            (d as u64).div_ceil(launch::DEFAULT_WG as u64),
            self.dev.limits.max_compute_workgroups_per_dimension,
        )?;
        self.dispatch(
            "col_mean",
            (0, 1, 1),
            u,
            [Some(w), None, None, None],
            [Some(mu.buf()), None, None],
            grid,
        )?;
        let xc = self.scratch("centred features", n * d)?;
        let wc = self.scratch("centred centres", c * d)?;
        self.misc(
            "sub_point",
            n * d,
            d,
            0.0,
            x,
            Some(mu.buf()),
            xc.buf(),
            None,
        )?;
        self.misc(
            "sub_point",
            c * d,
            d,
            0.0,
            w,
            Some(mu.buf()),
            wc.buf(),
            None,
        )?;
        self.keep(mu);
        Ok((xc, wc))
    }

    /// Chain rule through the row normalisation (`thru_norm`), in place on `g [m, k]` from
    /// the unit rows `hat [m, k]` and the norms `[m]` (with a scratch of `[m, k]`).
    pub fn thru_norm(
        &mut self,
        m: usize,
        k: usize,
        hat: &wgpu::Buffer,
        norms: &wgpu::Buffer,
        g: &wgpu::Buffer,
    ) -> Result<()> {
        let tmp = self.scratch("the normalisation's partial sums", m * k)?;
        self.misc("thru_norm", m, k, 0.0, hat, Some(norms), g, Some(tmp.buf()))?;
        self.keep(tmp);
        Ok(())
    }

    /// Record a dispatch of a loss's own kernel: `source` (complete, prelude included),
    /// `entry`, override constants, the layout `kinds` (binding 0 a uniform holding `uniform`,
    /// then one storage buffer per further kind, bound whole up to the binding limit) and a
    /// grid of workgroups.
    #[allow(clippy::too_many_arguments)]
    pub fn custom(
        &mut self,
        kernel: &str,
        source: &str,
        entry: &str,
        overrides: &[(&str, f64)],
        kinds: &[BindKind],
        uniform: &[u32],
        bufs: &[&wgpu::Buffer],
        grid: (u32, u32),
    ) -> Result<()> {
        if grid.0 == 0 || grid.1 == 0 {
            return Ok(());
        }
        if bufs.len() + 1 != kinds.len() {
            bail!(
                Internal,
                "{}: {kernel}: bindings do not match the layout",
                self.id
            );
        }
        let dev = self.dev;
        let (bgl, pl) = dev.layout(kernel, kinds);
        let pipe = dev.pipelines.get_with_layout(
            dev,
            &PipelineKey::new(kernel, source, entry, launch::DEFAULT_WG, overrides),
            source,
            Some(&pl),
        )?;
        let ub = buffers::uniform(dev, bytemuck::cast_slice(uniform));
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: Window::whole(&ub).resource(),
        }];
        for (j, b) in bufs.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: 1 + j as u32,
                resource: self.window(b).resource(),
            });
        }
        let bg = dev.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel),
            layout: &bgl,
            entries: &entries,
        });
        let mut pass = self.enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(entry),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipe);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(grid.0, grid.1, 1);
        Ok(())
    }

    /// A grid of `groups` workgroups (2-D when needed; kernels linearise it as
    /// `wid.y * nwg.x + wid.x` and skip ids past the count).
    pub fn grid(&self, groups: usize) -> Result<(u32, u32)> {
        launch::grid(
            groups as u64,
            self.dev.limits.max_compute_workgroups_per_dimension,
        )
    }

    /// A read-only dummy buffer (for bindings a kernel does not use).
    pub fn dummy_read(&self) -> wgpu::Buffer {
        self.dummy_r.buf().clone()
    }

    /// A writable dummy buffer (for bindings a kernel does not use).
    pub fn dummy_write(&self) -> wgpu::Buffer {
        self.dummy_w.buf().clone()
    }

    /// Submit everything recorded, read back `reads` (buffer, destination bytes) and the
    /// host gradients, and write those into their destinations in `c`.
    pub fn submit(
        self,
        c: &mut Compute<'_>,
        reads: &mut [(&wgpu::Buffer, &mut [u8])],
        host: Vec<HostGrad<'d>>,
    ) -> Result<()> {
        let mut hv: Vec<Vec<u8>> = host
            .iter()
            .map(|h| vec![0u8; h.rows * h.cols * 4])
            .collect();
        {
            let mut all: Vec<(&wgpu::Buffer, u64, &mut [u8])> = Vec::new();
            for (b, d) in reads.iter_mut() {
                all.push((b, 0, &mut **d));
            }
            for (h, v) in host.iter().zip(hv.iter_mut()) {
                all.push((h.buf.buf(), 0, v));
            }
            buffers::submit_and_read(self.dev, self.enc, &mut all)?;
        }
        let id = self.id;
        for (h, v) in host.iter().zip(&hv) {
            let gf: &[f32] = bytemuck::cast_slice(v);
            let Compute { inputs, grads, .. } = &mut *c;
            let t = inputs[h.input]
                .as_mut()
                .ok_or_else(|| err!(Internal, "{id}: input #{} missing", h.input))?;
            let (dst, ds): (&mut [f32], usize) = match (&mut t.data, &mut grads[h.input]) {
                (_, Grad::Out(o)) => (&mut *o.data, o.row_stride.max(h.cols)),
                (Data::F32InPlace(d), Grad::InPlace) => (&mut **d, t.row_stride),
                _ => bail!(Internal, "{id}: inconsistent gradient slot"),
            };
            for i in 0..h.rows {
                dst[i * ds..i * ds + h.cols].copy_from_slice(&gf[i * h.cols..(i + 1) * h.cols]);
            }
        }
        Ok(())
    }
}

/// A contiguous device copy of f32 input `k` (`[rows, cols]`): uploaded from the host or
/// copied from its device buffer (row by row when strided).
pub fn stage_input<'d>(
    kn: &mut Kernels<'d>,
    c: &Compute<'_>,
    k: usize,
    what: &str,
) -> Result<Pooled<'d>> {
    let id = kn.id;
    let t: &Tensor<'_> = c
        .get(k)
        .ok_or_else(|| err!(Internal, "{id}: input '{what}' missing"))?;
    let (rows, cols) = (t.rows(), t.row_len());
    let n = if t.numel() == 0 { 0 } else { rows * cols };
    match &t.data {
        Data::Device(d) => {
            let p = kn.scratch(what, n)?;
            let src = &d.buffer.wgpu_ref().buf;
            if n > 0 {
                if t.row_stride == cols || rows == 1 {
                    kn.enc.copy_buffer_to_buffer(
                        src,
                        (d.offset * 4) as u64,
                        p.buf(),
                        0,
                        (n * 4) as u64,
                    );
                } else {
                    for r in 0..rows {
                        kn.enc.copy_buffer_to_buffer(
                            src,
                            ((d.offset + r * t.row_stride) * 4) as u64,
                            p.buf(),
                            (r * cols * 4) as u64,
                            (cols * 4) as u64,
                        );
                    }
                }
            }
            Ok(p)
        }
        _ => {
            let v = t.to_f32_vec();
            kn.upload(what, bytemuck::cast_slice(&v))
        }
    }
}

/// Send the contiguous gradient `src` (`[rows, cols]`) of input `k` where the call wants it:
/// device destinations (a device gradient, or in place over a device input) are copied on
/// the device; host ones are returned for [`Kernels::submit`] to read back. Nothing when
/// the gradient is not wanted.
pub fn route_grad<'d>(
    kn: &mut Kernels<'d>,
    c: &Compute<'_>,
    k: usize,
    src: Pooled<'d>,
    rows: usize,
    cols: usize,
    host: &mut Vec<HostGrad<'d>>,
) -> Result<()> {
    let (buf, off, stride) = match (&c.grads.get(k), c.get(k)) {
        (None | Some(Grad::None), _) => return Ok(()),
        (Some(Grad::Device(o)), _) => (o.data.buffer.wgpu(), o.data.offset, o.row_stride),
        (
            Some(Grad::InPlace),
            Some(Tensor {
                data: Data::Device(d),
                row_stride,
                ..
            }),
        ) => (d.buffer.wgpu(), d.offset, *row_stride),
        (Some(Grad::Out(_)), _) | (Some(Grad::InPlace), _) => {
            host.push(HostGrad {
                input: k,
                buf: src,
                rows,
                cols,
            });
            return Ok(());
        }
    };
    if rows * cols == 0 {
        kn.keep(src);
        return Ok(());
    }
    if stride == cols || rows == 1 {
        kn.enc.copy_buffer_to_buffer(
            src.buf(),
            0,
            &buf.buf,
            (off * 4) as u64,
            (rows * cols * 4) as u64,
        );
    } else {
        for r in 0..rows {
            kn.enc.copy_buffer_to_buffer(
                src.buf(),
                (r * cols * 4) as u64,
                &buf.buf,
                ((off + r * stride) * 4) as u64,
                (cols * 4) as u64,
            );
        }
    }
    kn.keep(src);
    Ok(())
}
