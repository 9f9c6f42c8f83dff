//! [`DeviceBuffer`]: a device-resident buffer (`lk_buffer`) as an opaque handle.
//!
//! Tensor views ([`crate::Data::Device`], [`crate::Grad::Device`]) refer to device buffers
//! without knowing the backend that made them: a backend implements [`DeviceMemory`] for its
//! buffers and gets its own type back with [`DeviceBuffer::memory_as`] or [`DeviceBuffer::memory_ref`].

use std::any::Any;
use std::sync::Arc;

use crate::error::Result;

/// What a backend's device buffer offers the rest of the library.
pub trait DeviceMemory: Any + Send + Sync {
    /// Size in bytes (as created).
    fn size(&self) -> u64;
    /// Copy `data` into the buffer at byte `offset`.
    fn write(&self, offset: u64, data: &[u8]) -> Result<()>;
    /// Copy bytes at byte `offset` into `out` (waits for computes submitted before).
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<()>;
}

/// A device-resident buffer (`lk_buffer`): created by a WGPU context, written and read by
/// the caller, and referred to by tensors ([`crate::Data::Device`], [`crate::Grad::Device`]) so
/// inputs and gradients can stay on the GPU between calls. Cheap to clone (shared handle).
#[derive(Clone)]
pub struct DeviceBuffer {
    inner: Arc<dyn DeviceMemory>,
}

impl std::fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBuffer")
            .field("bytes", &self.size())
            .finish()
    }
}

impl DeviceBuffer {
    /// Wrap a backend's buffer.
    pub fn from_memory(m: Arc<dyn DeviceMemory>) -> Self {
        DeviceBuffer { inner: m }
    }
    /// The backend's own buffer, when this buffer was made by that backend.
    pub fn memory_as<T: DeviceMemory>(&self) -> Option<Arc<T>> {
        let any: Arc<dyn Any + Send + Sync> = self.inner.clone();
        any.downcast::<T>().ok()
    }
    /// A reference to the backend's own buffer, when this buffer was made by that backend.
    pub fn memory_ref<T: DeviceMemory>(&self) -> Option<&T> {
        let any: &dyn Any = &*self.inner;
        any.downcast_ref::<T>()
    }
    /// Size in bytes (as created).
    pub fn size(&self) -> u64 {
        self.inner.size()
    }
    /// Copy `data` into the buffer at byte `offset` (offset and length multiples of 4).
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.inner.write(offset, data)
    }
    /// Copy bytes at byte `offset` into `out` (waits for computes submitted before).
    pub fn read(&self, offset: u64, out: &mut [u8]) -> Result<()> {
        self.inner.read(offset, out)
    }
    /// Write f32 values at element `offset`.
    pub fn write_f32(&self, offset: usize, v: &[f32]) -> Result<()> {
        self.write((offset * 4) as u64, f32_bytes(v))
    }
    /// Write i64 values at element `offset`.
    pub fn write_i64(&self, offset: usize, v: &[i64]) -> Result<()> {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_ne_bytes()).collect();
        self.write((offset * 8) as u64, &b)
    }
    /// Read `n` f32 values at element `offset`.
    pub fn read_f32(&self, offset: usize, n: usize) -> Result<Vec<f32>> {
        let mut b = vec![0u8; n * 4];
        self.read((offset * 4) as u64, &mut b)?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    /// Read `n` i64 values at element `offset`.
    pub fn read_i64(&self, offset: usize, n: usize) -> Result<Vec<i64>> {
        let mut b = vec![0u8; n * 8];
        self.read((offset * 8) as u64, &mut b)?;
        Ok(b.chunks_exact(8)
            .map(|c| i64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
    /// True when both handles refer to the same device buffer.
    pub fn same(&self, other: &DeviceBuffer) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

fn f32_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no invalid bit patterns or padding; the byte view covers exactly the
    // same memory, with alignment 1.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}
