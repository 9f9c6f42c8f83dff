//! Borrowed tensor views used by the Rust API and by every loss.
//!
//! Tensors are row-major. Every dimension but the first is contiguous; the first may have a
//! larger stride (`row_stride`, in elements), so a caller can pass rows that live inside a
//! wider buffer. No FFI types appear here: `ffi/` converts C `lk_tensor` views into these.

use crate::device::DeviceBuffer;
use crate::error::Result;
use crate::{bail, err};

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float (every float input and every output).
    F32,
    /// 64-bit signed integer (class targets).
    I64,
}

impl DType {
    /// Lower-case name, as used in specs and messages.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
        }
    }
}

/// The data of an input tensor.
#[derive(Debug)]
pub enum Data<'a> {
    /// Read-only f32 data.
    F32(&'a [f32]),
    /// Read-only i64 data.
    I64(&'a [i64]),
    /// f32 data that is also the destination of this input's gradient (in-place gradient).
    /// The matching gradient slot is [`Grad::InPlace`].
    F32InPlace(&'a mut [f32]),
    /// Elements in a device buffer (a WGPU context's `lk_buffer`); only the GPU backend
    /// reads these. An f32 device input may also receive its own gradient ([`Grad::InPlace`]).
    Device(DeviceData),
}

/// Where a device tensor's elements are.
#[derive(Clone, Debug)]
pub struct DeviceData {
    /// The buffer.
    pub buffer: DeviceBuffer,
    /// Element type.
    pub dtype: DType,
    /// Index (in elements) of the first element inside the buffer.
    pub offset: usize,
}

impl DeviceData {
    fn elem(&self) -> usize {
        match self.dtype {
            DType::F32 => 4,
            DType::I64 => 8,
        }
    }
    /// Elements the buffer holds from `offset` on.
    pub fn len(&self) -> usize {
        ((self.buffer.size() as usize) / self.elem()).saturating_sub(self.offset)
    }
    /// True when the buffer holds nothing from `offset` on.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Number of elements a row-major shape holds.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Elements in one row (everything but the first dimension); 1 for rank 0 and 1.
pub fn row_len(shape: &[usize]) -> usize {
    if shape.len() <= 1 {
        1
    } else {
        numel(&shape[1..])
    }
}

/// Rows (the first dimension); 1 for a scalar.
pub fn rows(shape: &[usize]) -> usize {
    shape.first().copied().unwrap_or(1)
}

/// Minimum number of elements a buffer needs for `shape` with `row_stride`.
pub fn required_len(shape: &[usize], row_stride: usize) -> usize {
    let n = numel(shape);
    if n == 0 {
        return 0;
    }
    (rows(shape) - 1) * row_stride + row_len(shape)
}

/// A borrowed input tensor.
#[derive(Debug)]
pub struct Tensor<'a> {
    /// The elements.
    pub data: Data<'a>,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Elements between the starts of consecutive rows (first dimension). Equal to
    /// [`row_len`] for a contiguous tensor.
    pub row_stride: usize,
}

impl<'a> Tensor<'a> {
    /// A contiguous f32 tensor.
    pub fn f32(data: &'a [f32], shape: &[usize]) -> Self {
        Tensor {
            data: Data::F32(data),
            shape: shape.to_vec(),
            row_stride: row_len(shape),
        }
    }
    /// A contiguous i64 tensor.
    pub fn i64(data: &'a [i64], shape: &[usize]) -> Self {
        Tensor {
            data: Data::I64(data),
            shape: shape.to_vec(),
            row_stride: row_len(shape),
        }
    }
    /// A contiguous f32 tensor whose buffer also receives its own gradient.
    pub fn f32_in_place(data: &'a mut [f32], shape: &[usize]) -> Self {
        Tensor {
            data: Data::F32InPlace(data),
            shape: shape.to_vec(),
            row_stride: row_len(shape),
        }
    }
    /// A contiguous tensor in a device buffer, starting at element `offset`.
    pub fn device(buffer: &DeviceBuffer, dtype: DType, offset: usize, shape: &[usize]) -> Self {
        Tensor {
            data: Data::Device(DeviceData {
                buffer: buffer.clone(),
                dtype,
                offset,
            }),
            shape: shape.to_vec(),
            row_stride: row_len(shape),
        }
    }
    /// Set the stride (in elements) between rows.
    pub fn with_row_stride(mut self, row_stride: usize) -> Self {
        self.row_stride = row_stride;
        self
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        match &self.data {
            Data::I64(_) => DType::I64,
            Data::Device(d) => d.dtype,
            _ => DType::F32,
        }
    }
    /// True when the elements live in a device buffer.
    pub fn is_device(&self) -> bool {
        matches!(self.data, Data::Device(_))
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    /// Rows (first dimension).
    pub fn rows(&self) -> usize {
        rows(&self.shape)
    }
    /// Elements per row.
    pub fn row_len(&self) -> usize {
        row_len(&self.shape)
    }
    /// Read-only f32 data (also for an in-place tensor), or None for i64.
    pub fn f32_data(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(d) => Some(d),
            Data::F32InPlace(d) => Some(d),
            Data::I64(_) | Data::Device(_) => None,
        }
    }
    /// i64 data, or None for f32.
    pub fn i64_data(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I64(d) => Some(d),
            _ => None,
        }
    }
    /// Length of the underlying buffer.
    pub fn buffer_len(&self) -> usize {
        match &self.data {
            Data::F32(d) => d.len(),
            Data::I64(d) => d.len(),
            Data::F32InPlace(d) => d.len(),
            Data::Device(d) => d.len(),
        }
    }
    /// The f32 elements as one contiguous vector (copies when strided).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        let d = self.f32_data().unwrap_or(&[]);
        gather_rows(d, self.rows(), self.row_len(), self.row_stride)
    }
    /// The i64 elements as one contiguous vector (copies when strided).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        let d = self.i64_data().unwrap_or(&[]);
        gather_rows(d, self.rows(), self.row_len(), self.row_stride)
    }
    /// Check the buffer holds the shape with this stride.
    pub fn check_len(&self, what: &str) -> Result<()> {
        check_layout(&self.shape, self.row_stride, self.buffer_len(), what)
    }
    /// The f32 elements as one contiguous vector, downloading device data.
    pub fn read_f32(&self) -> Result<Vec<f32>> {
        match &self.data {
            Data::Device(d) => {
                let n = required_len(&self.shape, self.row_stride);
                let v = d.buffer.read_f32(d.offset, n)?;
                Ok(gather_rows(
                    &v,
                    self.rows(),
                    self.row_len(),
                    self.row_stride,
                ))
            }
            _ => Ok(self.to_f32_vec()),
        }
    }
    /// The i64 elements as one contiguous vector, downloading device data.
    pub fn read_i64(&self) -> Result<Vec<i64>> {
        match &self.data {
            Data::Device(d) => {
                let n = required_len(&self.shape, self.row_stride);
                let v = d.buffer.read_i64(d.offset, n)?;
                Ok(gather_rows(
                    &v,
                    self.rows(),
                    self.row_len(),
                    self.row_stride,
                ))
            }
            _ => Ok(self.to_i64_vec()),
        }
    }
}

fn gather_rows<T: Copy>(d: &[T], n: usize, len: usize, stride: usize) -> Vec<T> {
    if n * len == 0 {
        return Vec::new();
    }
    if stride == len {
        return d[..n * len].to_vec();
    }
    let mut out = Vec::with_capacity(n * len);
    for i in 0..n {
        out.extend_from_slice(&d[i * stride..i * stride + len]);
    }
    out
}

/// Validate that a buffer of `buf_len` elements holds `shape` with `row_stride`.
pub fn check_layout(shape: &[usize], row_stride: usize, buf_len: usize, what: &str) -> Result<()> {
    if numel(shape) > 0 && shape.len() >= 2 && row_stride < row_len(shape) {
        bail!(
            Unsupported,
            "{what}: row stride {row_stride} is smaller than the row length {}",
            row_len(shape)
        );
    }
    let need = required_len(shape, row_stride);
    if buf_len < need {
        return Err(err!(
            BufferTooSmall,
            "{what}: buffer holds {buf_len} elements, shape {shape:?} needs {need}"
        ));
    }
    Ok(())
}

/// A borrowed f32 output tensor.
#[derive(Debug)]
pub struct TensorMut<'a> {
    /// The elements (written by the computation).
    pub data: &'a mut [f32],
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Elements between the starts of consecutive rows.
    pub row_stride: usize,
}

impl<'a> TensorMut<'a> {
    /// A contiguous output tensor.
    pub fn new(data: &'a mut [f32], shape: &[usize]) -> Self {
        TensorMut {
            data,
            shape: shape.to_vec(),
            row_stride: row_len(shape),
        }
    }
    /// Set the stride (in elements) between rows.
    pub fn with_row_stride(mut self, row_stride: usize) -> Self {
        self.row_stride = row_stride;
        self
    }
    /// Check the buffer holds the shape with this stride.
    pub fn check_len(&self, what: &str) -> Result<()> {
        check_layout(&self.shape, self.row_stride, self.data.len(), what)
    }
    /// Fill the logical elements with `v`.
    pub fn fill(&mut self, v: f32) {
        let n = rows(&self.shape);
        let len = row_len(&self.shape);
        if numel(&self.shape) == 0 {
            return;
        }
        for i in 0..n {
            self.data[i * self.row_stride..i * self.row_stride + len].fill(v);
        }
    }
}

/// Where the gradient of one input goes.
#[derive(Debug, Default)]
pub enum Grad<'a> {
    /// Not wanted (or the input is not differentiable).
    #[default]
    None,
    /// Into this buffer, shaped like the input.
    Out(TensorMut<'a>),
    /// Over the input's own buffer (the input's data is [`Data::F32InPlace`], or an f32
    /// [`Data::Device`]).
    InPlace,
    /// Into a device buffer, shaped like the input.
    Device(DeviceOut),
}

/// A gradient destination in a device buffer.
#[derive(Clone, Debug)]
pub struct DeviceOut {
    /// Where (f32).
    pub data: DeviceData,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Elements between the starts of consecutive rows.
    pub row_stride: usize,
}

impl DeviceOut {
    /// A contiguous f32 destination starting at element `offset`.
    pub fn new(buffer: &DeviceBuffer, offset: usize, shape: &[usize]) -> Self {
        DeviceOut {
            data: DeviceData {
                buffer: buffer.clone(),
                dtype: DType::F32,
                offset,
            },
            shape: shape.to_vec(),
            row_stride: row_len(shape),
        }
    }
    /// Set the stride (in elements) between rows.
    pub fn with_row_stride(mut self, row_stride: usize) -> Self {
        self.row_stride = row_stride;
        self
    }
    /// Check the buffer holds the shape with this stride.
    pub fn check_len(&self, what: &str) -> Result<()> {
        check_layout(&self.shape, self.row_stride, self.data.len(), what)
    }
}

impl Grad<'_> {
    /// True when a gradient is requested.
    pub fn wanted(&self) -> bool {
        !matches!(self, Grad::None)
    }
}
