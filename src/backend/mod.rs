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

pub use crate::device::DeviceBuffer;
use crate::text::Text;

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
