//! Compute backends: the CPU executors, and (behind the `wgpu` feature) the GPU backend.

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
