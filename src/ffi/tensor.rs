//! `lk_tensor`, a DLPack-compatible tensor view, and its conversion into [`Compute`].

use std::ffi::c_char;

use super::buffer::lk_buffer;
use crate::bail;
use crate::compute::Compute;
use crate::device::DeviceBuffer;
use crate::error::Result;
use crate::reduction::Reduction;
use crate::tensor::{self, DType, Data, DeviceData, DeviceOut, Grad, Tensor, TensorMut};

pub use crate::cabi::{
    LK_DEVICE_CPU, LK_DEVICE_CUDA_HOST, LK_DEVICE_LKBUFFER, LK_DTYPE_CODE_FLOAT, LK_DTYPE_CODE_INT,
    LK_MAX_NDIM, lk_device, lk_dtype, lk_tensor,
};

/// A named auxiliary output of a compute call (e.g. "lse"): a f32 tensor to fill.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lk_aux_output {
    /// Name of the auxiliary output (see lk_loss_describe_aux).
    pub name: *const c_char,
    /// Destination, f32, shaped as the loss's spec says.
    pub tensor: lk_tensor,
}

struct Raw {
    ptr: *mut u8,
    dtype: DType,
    shape: Vec<usize>,
    row_stride: usize,
    len: usize,
    what: String,
    write: bool,
    /// A device tensor: the buffer and the element offset inside it.
    device: Option<(DeviceBuffer, usize)>,
}

impl Raw {
    fn byte_range(&self) -> (usize, usize) {
        let el = match self.dtype {
            DType::F32 => 4,
            DType::I64 => 8,
        };
        let s = self.ptr as usize;
        (s, s + self.len * el)
    }
}

/// Read a tensor view. `Ok(None)` = absent (data NULL with a non-empty shape).
///
/// # Safety
/// `t`'s shape/strides must point to `ndim` values, and its data to memory covering the
/// described elements, for the duration of the call.
unsafe fn raw(t: &lk_tensor, what: &str, write: bool) -> Result<Option<Raw>> {
    if t.ndim < 0 || t.ndim > LK_MAX_NDIM {
        bail!(
            InvalidArg,
            "{what}: ndim = {} outside [0, {LK_MAX_NDIM}]",
            t.ndim
        );
    }
    let nd = t.ndim as usize;
    if nd > 0 && t.shape.is_null() {
        bail!(NullArg, "{what}: shape is NULL with ndim = {nd}");
    }
    let dims: &[i64] = if nd == 0 {
        &[]
    } else {
        // SAFETY: non-NULL and `nd` long per the caller's contract.
        unsafe { std::slice::from_raw_parts(t.shape, nd) }
    };
    let mut shape = Vec::with_capacity(nd);
    let mut total: usize = 1;
    for (k, &d) in dims.iter().enumerate() {
        if d < 0 {
            bail!(ShapeMismatch, "{what}: shape[{k}] = {d} is negative");
        }
        total = total
            .checked_mul(d as usize)
            .ok_or_else(|| crate::err!(InvalidArg, "{what}: shape {dims:?} overflows"))?;
        shape.push(d as usize);
    }
    if t.data.is_null() && total != 0 {
        return Ok(None);
    }
    let dtype = match (t.dtype.code, t.dtype.bits, t.dtype.lanes) {
        (LK_DTYPE_CODE_FLOAT, 32, 1) => DType::F32,
        (LK_DTYPE_CODE_INT, 64, 1) => DType::I64,
        (c, b, l) => bail!(
            DType,
            "{what}: dtype {{code {c}, bits {b}, lanes {l}}} is not supported (f32 or i64)"
        ),
    };
    let mut device = None;
    match t.device.device_type {
        LK_DEVICE_CPU | LK_DEVICE_CUDA_HOST => {}
        LK_DEVICE_LKBUFFER => {
            if t.data.is_null() {
                bail!(NullArg, "{what}: data (an lk_buffer) is NULL");
            }
            // SAFETY: for LK_DEVICE_LKBUFFER the caller passes a live lk_buffer as data.
            let b = unsafe { &*(t.data as *const lk_buffer) };
            let el = match dtype {
                DType::F32 => 4,
                DType::I64 => 8,
            };
            if !t.byte_offset.is_multiple_of(el) {
                bail!(
                    InvalidArg,
                    "{what}: byte_offset {} is not a multiple of the element size {el}",
                    t.byte_offset
                );
            }
            device = Some((b.inner.clone(), (t.byte_offset / el) as usize));
        }
        d => bail!(
            Unsupported,
            "{what}: device type {d} is not supported (host memory is {LK_DEVICE_CPU}, lk_buffer is {LK_DEVICE_LKBUFFER})"
        ),
    }
    let row_len = tensor::row_len(&shape);
    let mut row_stride = row_len;
    if !t.strides.is_null() && nd > 0 {
        // SAFETY: non-NULL and `nd` long per the caller's contract.
        let st = unsafe { std::slice::from_raw_parts(t.strides, nd) };
        let mut expect: i64 = 1;
        for k in (1..nd).rev() {
            if shape[k] > 1 && st[k] != expect {
                bail!(
                    Unsupported,
                    "{what}: strides {st:?} for shape {dims:?}: only the first dimension may be non-contiguous"
                );
            }
            expect = expect.saturating_mul(dims[k]);
        }
        if shape[0] > 1 {
            if st[0] < 0 || (st[0] as usize) < row_len || (nd == 1 && st[0] != 1) {
                bail!(
                    Unsupported,
                    "{what}: stride {} of the first dimension is not supported (row length {row_len})",
                    st[0]
                );
            }
            row_stride = st[0] as usize;
        }
    }
    let len = tensor::required_len(&shape, row_stride);
    if device.is_some() {
        return Ok(Some(Raw {
            ptr: std::ptr::null_mut(),
            dtype,
            shape,
            row_stride,
            len,
            what: what.to_string(),
            write,
            device,
        }));
    }
    let ptr = if total == 0 {
        std::ptr::null_mut()
    } else {
        (t.data as *mut u8).wrapping_add(t.byte_offset as usize)
    };
    let align = match dtype {
        DType::F32 => 4,
        DType::I64 => 8,
    };
    if total != 0 && !(ptr as usize).is_multiple_of(align) {
        bail!(
            InvalidArg,
            "{what}: data + byte_offset is not {align}-byte aligned"
        );
    }
    Ok(Some(Raw {
        ptr,
        dtype,
        shape,
        row_stride,
        len,
        what: what.to_string(),
        write,
        device: None,
    }))
}

/// # Safety
/// `r` describes live memory of `r.len` elements (or is empty).
unsafe fn slice<'a, T>(r: &Raw) -> &'a [T] {
    if r.len == 0 {
        return &[];
    }
    // SAFETY: non-empty views point to `len` valid, aligned elements per the caller.
    unsafe { std::slice::from_raw_parts(r.ptr as *const T, r.len) }
}

/// # Safety
/// As [`slice`], and nothing else refers to the memory during the call.
unsafe fn slice_mut<'a>(r: &Raw) -> &'a mut [f32] {
    if r.len == 0 {
        return &mut [];
    }
    // SAFETY: non-empty views point to `len` valid, aligned f32 per the caller, and the
    // overlap check guarantees exclusivity.
    unsafe { std::slice::from_raw_parts_mut(r.ptr as *mut f32, r.len) }
}

fn same_view(a: &Raw, b: &Raw) -> bool {
    let place = match (&a.device, &b.device) {
        (None, None) => a.ptr == b.ptr,
        (Some((x, ox)), Some((y, oy))) => x.same(y) && ox == oy,
        _ => false,
    };
    place && a.shape == b.shape && a.row_stride == b.row_stride && a.dtype == b.dtype
}

/// Whether two views may touch the same bytes (host memory, or one device buffer).
fn overlaps(a: &Raw, b: &Raw) -> bool {
    match (&a.device, &b.device) {
        (None, None) => {
            let (sa, ea) = a.byte_range();
            let (sb, eb) = b.byte_range();
            sa < eb && sb < ea
        }
        (Some((x, ox)), Some((y, oy))) => {
            if !x.same(y) {
                return false;
            }
            let el = |r: &Raw| match r.dtype {
                DType::F32 => 4,
                DType::I64 => 8,
            };
            let (sa, sb) = (ox * el(a), oy * el(b));
            let (ea, eb) = (sa + a.len * el(a), sb + b.len * el(b));
            a.len > 0 && b.len > 0 && sa < eb && sb < ea
        }
        _ => false,
    }
}

fn host_only(r: &Raw, what: &str) -> Result<()> {
    if r.device.is_some() {
        bail!(
            Unsupported,
            "{what} must be host memory (device buffers are for inputs and gradients)"
        );
    }
    Ok(())
}

/// Build a [`Compute`] from C arguments, checking pointers, dtypes, layouts and that no
/// output overlaps another buffer (except a gradient written exactly over its own input).
///
/// # Safety
/// Every tensor must describe live memory for the call; see `lk_loss_compute`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn build_compute<'a>(
    id: &str,
    inputs: &[lk_tensor],
    reduction: Reduction,
    grad_output: Option<&lk_tensor>,
    loss_out: &lk_tensor,
    grads: &[lk_tensor],
    aux: &[lk_aux_output],
) -> Result<Compute<'a>> {
    let mut in_raw = Vec::with_capacity(inputs.len());
    for (k, t) in inputs.iter().enumerate() {
        // SAFETY: forwarded caller contract.
        in_raw.push(unsafe { raw(t, &format!("{id}: inputs[{k}]"), false) }?);
    }
    let mut g_raw = Vec::with_capacity(grads.len());
    for (k, t) in grads.iter().enumerate() {
        // SAFETY: forwarded caller contract.
        let r = unsafe { raw(t, &format!("{id}: grads[{k}]"), true) }?;
        if let Some(r) = &r {
            if r.dtype != DType::F32 {
                bail!(DType, "{}: gradients are f32", r.what);
            }
        }
        g_raw.push(r);
    }
    // SAFETY: forwarded caller contract.
    let Some(out_raw) = unsafe { raw(loss_out, &format!("{id}: loss_out"), true) }? else {
        bail!(NullArg, "{id}: loss_out data is NULL");
    };
    host_only(&out_raw, &format!("{id}: loss_out"))?;
    if out_raw.dtype != DType::F32 {
        bail!(DType, "{id}: loss_out must be f32");
    }
    if out_raw.shape.len() > 1 {
        bail!(
            ShapeMismatch,
            "{id}: loss_out must have rank 0 or 1, got shape {:?}",
            out_raw.shape
        );
    }
    let go_raw = match grad_output {
        None => None,
        // SAFETY: forwarded caller contract.
        Some(t) => unsafe { raw(t, &format!("{id}: grad_output"), false) }?,
    };
    if let Some(g) = &go_raw {
        host_only(g, &format!("{id}: grad_output"))?;
        if g.dtype != DType::F32 || g.shape.len() > 1 {
            bail!(
                DType,
                "{id}: grad_output must be an f32 scalar or vector, got {} {:?}",
                g.dtype.name(),
                g.shape
            );
        }
    }
    let mut aux_raw = Vec::with_capacity(aux.len());
    for (k, a) in aux.iter().enumerate() {
        // SAFETY: forwarded caller contract.
        let name = unsafe { super::str_arg(a.name, &format!("{id}: aux[{k}].name")) }?;
        // SAFETY: forwarded caller contract.
        let Some(r) = unsafe { raw(&a.tensor, &format!("{id}: aux output '{name}'"), true) }?
        else {
            bail!(NullArg, "{id}: aux output '{name}' data is NULL");
        };
        if r.dtype != DType::F32 {
            bail!(DType, "{id}: aux output '{name}' must be f32");
        }
        host_only(&r, &format!("{id}: aux output '{name}'"))?;
        aux_raw.push((name.to_string(), r));
    }

    // In-place gradients: the gradient view is exactly the input view.
    let mut in_place = vec![false; inputs.len().max(grads.len())];
    for (k, g) in g_raw.iter().enumerate() {
        if let (Some(g), Some(Some(i))) = (g, in_raw.get(k)) {
            if same_view(g, i) && i.dtype == DType::F32 && g.len > 0 {
                in_place[k] = true;
            }
        }
    }
    // Overlap check between every written region and every other region.
    let mut regions: Vec<(usize, &Raw)> = Vec::new();
    for (k, r) in in_raw.iter().enumerate() {
        if let Some(r) = r {
            regions.push((k, r));
        }
    }
    for (k, r) in g_raw.iter().enumerate() {
        if let Some(r) = r {
            if !in_place[k] {
                regions.push((usize::MAX, r));
            }
        }
    }
    regions.push((usize::MAX, &out_raw));
    if let Some(g) = &go_raw {
        regions.push((usize::MAX, g));
    }
    for (_, r) in &aux_raw {
        regions.push((usize::MAX, r));
    }
    for a in 0..regions.len() {
        for b in a + 1..regions.len() {
            let (ra, rb) = (regions[a].1, regions[b].1);
            if !(ra.write
                || rb.write
                || in_place_input(&in_place, regions[a].0)
                || in_place_input(&in_place, regions[b].0))
            {
                continue;
            }
            if overlaps(ra, rb) {
                bail!(
                    InvalidArg,
                    "{} overlaps {} (an output may only alias its own input, exactly, for an in-place gradient)",
                    ra.what,
                    rb.what
                );
            }
        }
    }

    // SAFETY: validated above; exclusivity of written memory checked.
    let loss = unsafe { slice_mut(&out_raw) };
    let mut c = Compute::new(reduction, loss);
    for (k, r) in in_raw.iter().enumerate() {
        let t = match r {
            None => None,
            Some(Raw {
                device: Some((b, off)),
                dtype,
                shape,
                row_stride,
                ..
            }) => Some(Tensor {
                data: Data::Device(DeviceData {
                    buffer: b.clone(),
                    dtype: *dtype,
                    offset: *off,
                }),
                shape: shape.clone(),
                row_stride: *row_stride,
            }),
            Some(r) => {
                let data = match (r.dtype, in_place[k]) {
                    // SAFETY: validated view; exclusive (in place).
                    (DType::F32, true) => Data::F32InPlace(unsafe { slice_mut(r) }),
                    // SAFETY: validated view.
                    (DType::F32, false) => Data::F32(unsafe { slice(r) }),
                    // SAFETY: validated view.
                    (DType::I64, _) => Data::I64(unsafe { slice(r) }),
                };
                Some(Tensor {
                    data,
                    shape: r.shape.clone(),
                    row_stride: r.row_stride,
                })
            }
        };
        c.inputs.push(t);
    }
    for (k, r) in g_raw.iter().enumerate() {
        let g = match r {
            None => Grad::None,
            Some(_) if in_place[k] => Grad::InPlace,
            Some(Raw {
                device: Some((b, off)),
                shape,
                row_stride,
                ..
            }) => Grad::Device(DeviceOut {
                data: DeviceData {
                    buffer: b.clone(),
                    dtype: DType::F32,
                    offset: *off,
                },
                shape: shape.clone(),
                row_stride: *row_stride,
            }),
            Some(r) => Grad::Out(TensorMut {
                // SAFETY: validated view; exclusive.
                data: unsafe { slice_mut(r) },
                shape: r.shape.clone(),
                row_stride: r.row_stride,
            }),
        };
        c.grads.push(g);
    }
    if let Some(g) = &go_raw {
        // SAFETY: validated view.
        c.grad_output = Some(unsafe { slice(g) });
    }
    for (name, r) in &aux_raw {
        c.aux.push((
            name.clone(),
            TensorMut {
                // SAFETY: validated view; exclusive.
                data: unsafe { slice_mut(r) },
                shape: r.shape.clone(),
                row_stride: r.row_stride,
            },
        ));
    }
    Ok(c)
}

fn in_place_input(in_place: &[bool], k: usize) -> bool {
    k != usize::MAX && in_place.get(k).copied().unwrap_or(false)
}
