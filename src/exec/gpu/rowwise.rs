//! The row-wise skeleton on the GPU: logits `[N, C]` with one integer target per row, and a
//! loss that depends on its row only through a few statistics.
//!
//! The skeleton streams each row once with an online softmax (max, sum of exponentials,
//! `sum_c w_c z_c`, arg-max of the raw logits), optionally through the soft-cap
//! `cap·tanh(z/cap)`, then calls the loss's WGSL function
//!
//! ```wgsl
//! fn lk_row_loss(st: LkRowStats) -> LkRowCoef
//! ```
//!
//! where `LkRowStats` holds `lse`, `zy` (target logit after the cap), `swz`, `wsum`, `wy`,
//! `classes` and `LkRowCoef` returns the row's `loss` and three coefficients `a, b, d` of the
//! gradient `dl/dz'_c = a·p_c + b·w_c − d·[c = y]` (with `p = softmax(z')`). The skeleton
//! applies the upstream scale, the soft-cap chain rule, zero rows for `ignore_index`, and
//! writes the gradient (in place over the logits when asked). A loss declares
//! `GpuKernel::Row(RowKernel { id, snippet, call })` (see `losses/classification/poly1.rs`);
//! its values reach the snippet through `lk_param(k)`.
//!
//! The host side runs the call's plan (validated targets and weights, the `mean`
//! denominator: the same plan the CPU driver [`crate::exec::rowwise::run_rowwise`] runs),
//! folds the upstream gradient and sample weights into one scale per row, chunks rows to
//! respect the binding limit, takes host or device inputs and outputs, reduces in f64 in row
//! order (deterministic), and writes the auxiliary outputs `lse` and `correct`. The kernel
//! shape is chosen by row length: several rows per workgroup for small `C`, one workgroup per
//! row for large `C`, and rows split across workgroups (partial statistics, then a merge)
//! when rows are few.

use crate::backend::wgpu::buffers::{self, Pooled, WgpuBuffer, Window};
use crate::backend::wgpu::{BindKind, GpuDevice, PRELUDE, PipelineKey, launch};
use crate::compute::Compute;
use crate::error::Result;
use crate::exec::kernel::{RowCall, RowKernel};
use crate::exec::rowwise::row_plan;
use crate::reduction::RowReducer;
use crate::tensor::{Data, Grad};
use crate::{bail, err};

/// The skeleton's WGSL (before the loss's snippet).
pub const SKELETON: &str = include_str!("rowwise.wgsl");

/// Threads per row group for rows of `classes` elements: about 8 elements per thread, a
/// power of two, at most a workgroup.
pub fn group_threads(classes: usize) -> u32 {
    let want = classes.div_ceil(8).next_power_of_two().max(1);
    want.min(launch::DEFAULT_WG as usize) as u32
}

/// Row groups worth of parallelism to aim for when rows are few.
const TARGET_GROUPS: usize = 64;
/// Smallest slice (elements) when a row is split across workgroups.
const MIN_SLICE: usize = 4096;

/// Slices per row: rows are split across workgroups only when one workgroup per row leaves
/// the device idle (few rows) and the rows are long.
pub fn slices(rows: usize, classes: usize, g: u32) -> usize {
    if g < launch::DEFAULT_WG || rows >= TARGET_GROUPS || rows == 0 {
        return 1;
    }
    TARGET_GROUPS.div_ceil(rows).min(classes / MIN_SLICE).max(1)
}

fn layout_entries() -> [BindKind; 8] {
    use BindKind::*;
    [
        Uniform, ReadWrite, ReadWrite, Read, Read, ReadWrite, ReadWrite, ReadWrite,
    ]
}

/// Where the logits of a chunk come from and where their gradient goes.
enum Mode {
    /// Host logits: uploaded to scratch; the gradient (if any) is written over the scratch
    /// copy and read back into the host destination.
    Host,
    /// Device logits, gradient over them (in place) or none.
    DeviceInPlace,
    /// Device logits, gradient into a device buffer.
    DeviceOut,
    /// Device logits, gradient into host memory through scratch.
    DeviceToHost,
}

/// Run a row loss on the GPU: the GPU counterpart of the family driver
/// [`crate::exec::rowwise::run_rowwise`], with the same semantics.
pub fn run(dev: &GpuDevice, kernel: &RowKernel, call: &RowCall, c: &mut Compute<'_>) -> Result<()> {
    let id = kernel.id;
    let s = &call.setup;
    let n = c.dim("N");
    let classes = c.dim("C");
    let pre = row_plan(id, c, s)?;
    let reducer = RowReducer::new(c.reduction, c.grad_output, pre.den);
    let want_grad = c.wants_grad(s.logits);
    let want_correct = c.aux.iter().any(|(n, _)| n == "correct");
    // Per-row (target, scale) words.
    let mut meta: Vec<u32> = Vec::with_capacity(2 * n);
    for (i, &y) in pre.targets.iter().enumerate() {
        let si = pre.sw.as_ref().map_or(1.0, |w| w[i]);
        let scale = (reducer.grad_scale(i) * si as f64) as f32;
        let t = if y == s.ignore_index { -1i32 } else { y as i32 };
        meta.push(t as u32);
        meta.push(scale.to_bits());
    }
    let wsum: f64 = pre
        .cw
        .as_ref()
        .map_or(classes as f64, |w| w.iter().map(|&v| v as f64).sum());
    let mut per_row = vec![(0.0f32, 0.0f32, 0.0f32); n];

    if n > 0 && classes > 0 {
        dev.scoped(id, || {
            run_chunks(
                dev,
                kernel,
                call,
                c,
                &meta,
                pre.cw.as_deref(),
                wsum as f32,
                (want_grad, want_correct),
                &mut per_row,
            )
        })?;
    }

    let losses: Vec<f64> = per_row
        .iter()
        .enumerate()
        .map(|(i, o)| {
            if pre.targets[i] == s.ignore_index {
                0.0
            } else {
                o.0 as f64 * pre.sw.as_ref().map_or(1.0, |w| w[i] as f64)
            }
        })
        .collect();
    reducer.write_loss(&losses, c.loss);
    if let Some(a) = c.take_aux("lse").as_mut() {
        for (i, o) in per_row.iter().enumerate() {
            a.data[i] = o.1;
        }
    }
    if let Some(a) = c.take_aux("correct").as_mut() {
        for (i, o) in per_row.iter().enumerate() {
            a.data[i] = o.2;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_chunks(
    dev: &GpuDevice,
    kernel: &RowKernel,
    call: &RowCall,
    c: &mut Compute<'_>,
    meta: &[u32],
    cw: Option<&[f32]>,
    wsum: f32,
    (want_grad, want_correct): (bool, bool),
    per_row: &mut [(f32, f32, f32)],
) -> Result<()> {
    let id = kernel.id;
    let s = &call.setup;
    let n = c.dim("N");
    let classes = c.dim("C");
    let Compute { inputs, grads, .. } = c;
    let x = inputs[s.logits]
        .as_mut()
        .ok_or_else(|| err!(Internal, "{id}: logits missing"))?;
    let x_stride = x.row_stride;
    let gslot = &mut grads[s.logits];
    let mode = match (&x.data, &*gslot) {
        (Data::Device(_), Grad::None | Grad::InPlace) => Mode::DeviceInPlace,
        (Data::Device(_), Grad::Device(_)) => Mode::DeviceOut,
        (Data::Device(_), Grad::Out(_)) => Mode::DeviceToHost,
        (_, Grad::Device(_)) => bail!(
            Unsupported,
            "{id}: a device gradient needs device logits (pass the logits as an lk_buffer tensor)"
        ),
        _ => Mode::Host,
    };
    let g_stride = match &*gslot {
        Grad::Device(o) => o.row_stride,
        _ => classes,
    };
    let slack = buffers::window_slack(dev);
    let maxb = dev.max_binding_bytes();
    let mut chunk = launch::rows_per_chunk(maxb, x_stride, classes, 4, slack, id)?;
    if matches!(mode, Mode::DeviceOut) {
        chunk = chunk.min(launch::rows_per_chunk(
            maxb, g_stride, classes, 4, slack, id,
        )?);
    }
    // Scratch rows are contiguous (stride = classes).
    chunk = chunk.min(launch::rows_per_chunk(maxb, classes, classes, 4, 0, id)?);
    let g_threads = group_threads(classes);
    let k_full = slices(n.min(chunk), classes, g_threads);
    // Per-(row, slice) partials: 32 bytes each.
    chunk = chunk.min((maxb / (32 * k_full as u64)).max(1) as usize);
    let k = k_full;
    let slice_len = classes.div_ceil(k);
    let (_bgl, playout) = dev.layout("rowwise", &layout_entries());
    let source = format!("{PRELUDE}\n{SKELETON}\n{}", kernel.snippet);
    let overrides = [
        ("LK_G", g_threads as f64),
        (
            "LK_IN_PLACE",
            if matches!(mode, Mode::DeviceOut | Mode::DeviceToHost) {
                0.0
            } else {
                1.0
            },
        ),
        ("LK_WANT_GRAD", if want_grad { 1.0 } else { 0.0 }),
        ("LK_CAP", if call.softcap > 0.0 { 1.0 } else { 0.0 }),
        ("LK_CW", if cw.is_some() { 1.0 } else { 0.0 }),
        ("LK_SWZ", if call.needs_swz { 1.0 } else { 0.0 }),
        ("LK_ARGMAX", if want_correct { 1.0 } else { 0.0 }),
    ];
    let kid = format!("rowwise/{id}");
    let pipe = |entry: &str| {
        dev.pipelines.get_with_layout(
            dev,
            &PipelineKey::new(&kid, &source, entry, launch::DEFAULT_WG, &overrides),
            &source,
            Some(&playout),
        )
    };
    let cw_buf = buffers::upload(dev, bytemuck::cast_slice(cw.unwrap_or(&[0.0f32])))?;
    let dummy = dev.pool.take(dev, 256, buffers::STORAGE)?;
    let mut params = [0f32; 16];
    for (p, v) in params.iter_mut().zip(&call.params) {
        *p = *v;
    }

    let mut r0 = 0usize;
    while r0 < n {
        let rows = chunk.min(n - r0);
        let r1 = r0 + rows;
        // Logits window (device) or scratch upload (host).
        let scratch: Option<Pooled<'_>>;
        let xw: Window<'_>;
        let dev_x = match &x.data {
            Data::Device(d) => Some(d.clone()),
            _ => None,
        };
        let xbuf_holder;
        match &dev_x {
            Some(d) => {
                xbuf_holder = d.buffer.wgpu();
                let start = ((d.offset + r0 * x_stride) * 4) as u64;
                let len = (((rows - 1) * x_stride + classes) * 4) as u64;
                xw = Window::new(dev, &xbuf_holder.buf, start, len);
                scratch = None;
            }
            None => {
                let src = x
                    .f32_data()
                    .ok_or_else(|| err!(Internal, "{id}: logits not f32"))?;
                // Contiguous rows go up straight from the caller's memory (no host copy:
                // first touches of fresh host memory are slow on some machines).
                let p = if x_stride == classes {
                    buffers::upload(dev, bytemuck::cast_slice(&src[r0 * classes..r1 * classes]))?
                } else {
                    let mut v = Vec::with_capacity(rows * classes);
                    for i in r0..r1 {
                        v.extend_from_slice(&src[i * x_stride..i * x_stride + classes]);
                    }
                    buffers::upload(dev, bytemuck::cast_slice(&v))?
                };
                scratch = Some(p);
                xw = Window::new(
                    dev,
                    scratch.as_ref().map(|p| p.buf()).unwrap_or(dummy.buf()),
                    0,
                    (rows * classes * 4) as u64,
                );
            }
        }
        let x_stride_k = if dev_x.is_some() { x_stride } else { classes };
        // Gradient window.
        let gscratch: Option<Pooled<'_>>;
        let gbuf_holder;
        let gw: Window<'_> = match (&mode, &*gslot) {
            (Mode::DeviceOut, Grad::Device(o)) => {
                gbuf_holder = Some(o.data.buffer.wgpu());
                gscratch = None;
                let start = ((o.data.offset + r0 * o.row_stride) * 4) as u64;
                let len = (((rows - 1) * o.row_stride + classes) * 4) as u64;
                let b = gbuf_holder
                    .as_ref()
                    .map(|b| &b.buf)
                    .ok_or_else(|| err!(Internal, "{id}: gradient buffer"))?;
                Window::new(dev, b, start, len)
            }
            (Mode::DeviceToHost, _) => {
                gbuf_holder = None;
                gscratch = Some(dev.pool.take(
                    dev,
                    (rows * classes * 4) as u64,
                    buffers::STORAGE,
                )?);
                Window::new(
                    dev,
                    gscratch.as_ref().map(|p| p.buf()).unwrap_or(dummy.buf()),
                    0,
                    (rows * classes * 4) as u64,
                )
            }
            _ => {
                gbuf_holder = None;
                gscratch = None;
                Window::whole(dummy.buf())
            }
        };
        let _ = &gbuf_holder;
        let g_stride_k = match &mode {
            Mode::DeviceOut => g_stride,
            _ => classes,
        };
        let meta_buf = buffers::upload(dev, bytemuck::cast_slice(&meta[2 * r0..2 * r1]))?;
        let part = dev
            .pool
            .take(dev, (rows * k * 32) as u64, buffers::STORAGE)?;
        let outr = dev.pool.take(dev, (rows * 16) as u64, buffers::STORAGE)?;
        let coefs = if k > 1 {
            Some(dev.pool.take(dev, (rows * 16) as u64, buffers::STORAGE)?)
        } else {
            None
        };
        let mut u: Vec<u32> = vec![
            rows as u32,
            classes as u32,
            k as u32,
            cw.is_some() as u32,
            xw.base,
            x_stride_k as u32,
            gw.base,
            g_stride_k as u32,
            call.softcap.to_bits(),
            wsum.to_bits(),
            slice_len as u32,
            0,
        ];
        u.extend(params.iter().map(|p| p.to_bits()));
        let ubuf = buffers::uniform(dev, bytemuck::cast_slice(&u));
        let bg = dev.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("rowwise"),
            layout: &_bgl,
            entries: &[
                entry(0, Window::whole(&ubuf)),
                entry(1, xw),
                entry(2, gw),
                entry(3, Window::whole(meta_buf.buf())),
                entry(4, Window::whole(cw_buf.buf())),
                entry(5, Window::whole(part.buf())),
                entry(6, Window::whole(outr.buf())),
                entry(
                    7,
                    Window::whole(coefs.as_ref().map_or(dummy.buf(), |p| p.buf())),
                ),
            ],
        });
        let mut enc = dev
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(id) });
        let gpw = (launch::DEFAULT_WG / g_threads) as u64;
        let groups_wg = ((rows * k) as u64).div_ceil(gpw);
        let maxd = dev.limits.max_compute_workgroups_per_dimension;
        let (gx, gy) = launch::grid(groups_wg, maxd)?;
        let (fx, fy) = launch::grid((rows as u64).div_ceil(launch::DEFAULT_WG as u64), maxd)?;
        let mut steps = Vec::new();
        if k == 1 {
            steps.push((pipe("fused")?, gx, gy));
        } else {
            steps.push((pipe("stats")?, gx, gy));
            steps.push((pipe("finish")?, fx, fy));
            if want_grad {
                steps.push((pipe("grad")?, gx, gy));
            }
        }
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(id),
                timestamp_writes: None,
            });
            pass.set_bind_group(0, &bg, &[]);
            for (p, x, y) in &steps {
                pass.set_pipeline(p);
                pass.dispatch_workgroups(*x, *y, 1);
            }
        }
        // Read back per-row results and, for host destinations, the gradient rows.
        let mut outv = vec![0u8; rows * 16];
        let host_grad = want_grad && matches!(mode, Mode::Host | Mode::DeviceToHost);
        // A contiguous host destination receives the rows straight from the readback
        // (no intermediate buffer); a strided one goes through `gv`.
        let (dst, ds): (&mut [f32], usize) = match (&mut x.data, &mut *gslot) {
            (_, Grad::Out(o)) if host_grad => (&mut *o.data, o.row_stride),
            (Data::F32InPlace(d), Grad::InPlace) if host_grad => (&mut **d, x_stride),
            _ if host_grad => bail!(Internal, "{id}: inconsistent gradient slot"),
            _ => (&mut [], 0),
        };
        let direct = host_grad && ds == classes;
        let mut gv = if host_grad && !direct {
            vec![0u8; rows * classes * 4]
        } else {
            Vec::new()
        };
        {
            let mut reads: Vec<(&wgpu::Buffer, u64, &mut [u8])> = vec![(outr.buf(), 0, &mut outv)];
            if host_grad {
                let src = match &mode {
                    Mode::Host => scratch.as_ref().map(|p| p.buf()),
                    _ => gscratch.as_ref().map(|p| p.buf()),
                }
                .ok_or_else(|| err!(Internal, "{id}: gradient scratch missing"))?;
                if direct {
                    let d = &mut dst[r0 * classes..r1 * classes];
                    reads.push((src, 0, bytemuck::cast_slice_mut(d)));
                } else {
                    reads.push((src, 0, &mut gv));
                }
            }
            buffers::submit_and_read(dev, enc, &mut reads)?;
        }
        let of: &[f32] = bytemuck::cast_slice(&outv);
        for i in 0..rows {
            per_row[r0 + i] = (of[4 * i], of[4 * i + 1], of[4 * i + 2]);
        }
        if host_grad && !direct {
            let gf: &[f32] = bytemuck::cast_slice(&gv);
            for i in 0..rows {
                dst[(r0 + i) * ds..(r0 + i) * ds + classes]
                    .copy_from_slice(&gf[i * classes..(i + 1) * classes]);
            }
        }
        r0 = r1;
    }
    Ok(())
}

fn entry(binding: u32, w: Window<'_>) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: w.resource(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_shape_follows_row_length() {
        // Small C: several rows per workgroup.
        assert_eq!(group_threads(7), 1);
        assert_eq!(group_threads(100), 16);
        // Large C: a whole workgroup per row.
        assert_eq!(group_threads(50_000), 256);
        // Rows split across workgroups only when few and long.
        assert_eq!(slices(4096, 128_256, 256), 1);
        assert!(slices(2, 128_256, 256) > 1);
        assert_eq!(slices(2, 1000, 128), 1);
    }
}
