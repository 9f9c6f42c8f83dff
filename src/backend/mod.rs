//! Compute backends: the CPU executors, and (behind the `wgpu` feature) the GPU backend.
//!
//! [`DeviceInfo`] and [`BackendKind`] exist in every build, so the C API is the same with
//! and without the `wgpu` feature (a build without it reports the backend unavailable).

pub mod cpu;
pub mod pairwise;

/// Which backend a context computes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Choose: the GPU when a real adapter exists and the problem is large enough, else CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// wgpu compute shaders.
    Wgpu,
}

impl BackendKind {
    /// From the C value (0 auto, 1 cpu, 2 wgpu).
    pub fn from_i32(v: i32) -> Option<Self> {
        match v {
            0 => Some(BackendKind::Auto),
            1 => Some(BackendKind::Cpu),
            2 => Some(BackendKind::Wgpu),
            _ => None,
        }
    }
    /// Parse `auto|cpu|wgpu`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(BackendKind::Auto),
            "cpu" => Some(BackendKind::Cpu),
            "wgpu" | "gpu" => Some(BackendKind::Wgpu),
            _ => None,
        }
    }
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Auto => "auto",
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
        }
    }
}

#[cfg(feature = "wgpu")]
pub mod wgpu;

use crate::registry::Text;

/// The GPU adapter a context computes on and its key limits (see `lk_context_device_*`).
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Adapter name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: Text,
    /// Graphics API: `vulkan`, `metal`, `dx12`.
    pub backend: Text,
    /// `discrete_gpu`, `integrated_gpu`, `virtual_gpu`, `cpu` (software) or `other`.
    pub device_type: Text,
    /// Driver name and version text.
    pub driver: Text,
    /// A software adapter (device type `cpu`).
    pub software: bool,
    /// Largest storage-buffer binding the device allows, in bytes.
    pub max_storage_binding_bytes: u64,
    /// Largest buffer the device allows, in bytes.
    pub max_buffer_bytes: u64,
    /// Largest range losskit binds at once (rows are chunked to fit), in bytes.
    pub max_binding_bytes: u64,
    /// Most invocations in one workgroup.
    pub max_workgroup_invocations: u32,
    /// Most workgroups along one dispatch dimension.
    pub max_workgroups_per_dimension: u32,
    /// Workgroup memory, in bytes.
    pub max_workgroup_storage_bytes: u32,
}

impl DeviceInfo {
    /// A limit by name (`max_storage_buffer_binding_size`, `max_buffer_size`,
    /// `max_binding_bytes`, `max_compute_invocations_per_workgroup`,
    /// `max_compute_workgroups_per_dimension`, `max_compute_workgroup_storage_size`).
    pub fn limit(&self, name: &str) -> Option<u64> {
        Some(match name {
            "max_storage_buffer_binding_size" => self.max_storage_binding_bytes,
            "max_buffer_size" => self.max_buffer_bytes,
            "max_binding_bytes" => self.max_binding_bytes,
            "max_compute_invocations_per_workgroup" => self.max_workgroup_invocations as u64,
            "max_compute_workgroups_per_dimension" => self.max_workgroups_per_dimension as u64,
            "max_compute_workgroup_storage_size" => self.max_workgroup_storage_bytes as u64,
            _ => return None,
        })
    }
}

/// A device-resident buffer (`lk_buffer`): created by a WGPU context, written and read by
/// the caller, and referred to by tensors ([`crate::Data::Device`], [`crate::Grad::Device`]) so
/// inputs and gradients can stay on the GPU between calls. Cheap to clone (shared handle).
#[derive(Clone)]
pub struct DeviceBuffer {
    #[cfg(feature = "wgpu")]
    pub(crate) inner: std::sync::Arc<self::wgpu::buffers::BufInner>,
    #[cfg(not(feature = "wgpu"))]
    never: std::convert::Infallible,
}

impl std::fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBuffer")
            .field("bytes", &self.size())
            .finish()
    }
}

impl DeviceBuffer {
    /// Size in bytes (as created).
    pub fn size(&self) -> u64 {
        #[cfg(feature = "wgpu")]
        {
            self.inner.size
        }
        #[cfg(not(feature = "wgpu"))]
        match self.never {}
    }
    /// Copy `data` into the buffer at byte `offset` (offset and length multiples of 4).
    pub fn write(&self, offset: u64, data: &[u8]) -> crate::Result<()> {
        #[cfg(feature = "wgpu")]
        {
            self.inner.write(offset, data)
        }
        #[cfg(not(feature = "wgpu"))]
        {
            let _ = (offset, data);
            match self.never {}
        }
    }
    /// Copy bytes at byte `offset` into `out` (waits for computes submitted before).
    pub fn read(&self, offset: u64, out: &mut [u8]) -> crate::Result<()> {
        #[cfg(feature = "wgpu")]
        {
            self.inner.read(offset, out)
        }
        #[cfg(not(feature = "wgpu"))]
        {
            let _ = (offset, out);
            match self.never {}
        }
    }
    /// Write f32 values at element `offset`.
    pub fn write_f32(&self, offset: usize, v: &[f32]) -> crate::Result<()> {
        self.write((offset * 4) as u64, f32_bytes(v))
    }
    /// Write i64 values at element `offset`.
    pub fn write_i64(&self, offset: usize, v: &[i64]) -> crate::Result<()> {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_ne_bytes()).collect();
        self.write((offset * 8) as u64, &b)
    }
    /// Read `n` f32 values at element `offset`.
    pub fn read_f32(&self, offset: usize, n: usize) -> crate::Result<Vec<f32>> {
        let mut b = vec![0u8; n * 4];
        self.read((offset * 4) as u64, &mut b)?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    /// Read `n` i64 values at element `offset`.
    pub fn read_i64(&self, offset: usize, n: usize) -> crate::Result<Vec<i64>> {
        let mut b = vec![0u8; n * 8];
        self.read((offset * 8) as u64, &mut b)?;
        Ok(b.chunks_exact(8)
            .map(|c| i64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
    /// True when both handles refer to the same device buffer.
    pub fn same(&self, other: &DeviceBuffer) -> bool {
        #[cfg(feature = "wgpu")]
        {
            std::sync::Arc::ptr_eq(&self.inner, &other.inner)
        }
        #[cfg(not(feature = "wgpu"))]
        {
            let _ = other;
            match self.never {}
        }
    }
}

fn f32_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no invalid bit patterns or padding; the byte view covers exactly the
    // same memory, with alignment 1.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}
