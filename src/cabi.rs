//! The C-layout types shared by the C API (`crate::ffi`) and the plugin ABI
//! (`crate::plugin::abi`): the DLPack-compatible tensor view and its device and dtype
//! descriptors. Both headers declare them from here.

use std::ffi::c_void;

/// DLPack device type of host memory (kDLCPU).
pub const LK_DEVICE_CPU: i32 = 1;
/// DLPack device type of page-locked host memory (kDLCUDAHost); read as host memory.
pub const LK_DEVICE_CUDA_HOST: i32 = 3;
/// Device type of a tensor whose `data` is an `lk_buffer *` (a device-resident buffer of a
/// WGPU context) and whose `byte_offset` is the offset inside that buffer. The value is
/// DLPack's kDLExtDev (12), reserved by DLPack for extension devices.
pub const LK_DEVICE_LKBUFFER: i32 = 12;
/// DLPack type code of signed integers (kDLInt).
pub const LK_DTYPE_CODE_INT: u8 = 0;
/// DLPack type code of IEEE floats (kDLFloat).
pub const LK_DTYPE_CODE_FLOAT: u8 = 2;
/// Largest tensor rank losskit accepts.
pub const LK_MAX_NDIM: i32 = 8;

/// Where a tensor lives; the same layout as DLPack's `DLDevice`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct lk_device {
    /// LK_DEVICE_CPU (1) for host memory.
    pub device_type: i32,
    /// Device ordinal (0 for the host).
    pub device_id: i32,
}

/// Element type; the same layout as DLPack's `DLDataType`. losskit takes f32
/// (`{LK_DTYPE_CODE_FLOAT, 32, 1}`) and i64 (`{LK_DTYPE_CODE_INT, 64, 1}`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct lk_dtype {
    /// Type code (LK_DTYPE_CODE_FLOAT or LK_DTYPE_CODE_INT).
    pub code: u8,
    /// Bits per element (32 for f32, 64 for i64).
    pub bits: u8,
    /// Vector lanes (always 1).
    pub lanes: u16,
}

/// A borrowed tensor view, layout-compatible with DLPack's `DLTensor`, so a `DLTensor *`
/// can be passed as an `lk_tensor *` unchanged.
///
/// Row-major: `strides` NULL means contiguous. Strides, when given, are in elements: every
/// dimension but the first must be contiguous; the first may have a larger stride (rows
/// inside a wider buffer). An optional input is absent when `data` is NULL (and the shape
/// is not empty). The view is borrowed for the duration of the call only.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lk_tensor {
    /// First element (before byte_offset). NULL = absent (optional inputs / unwanted outputs).
    pub data: *mut c_void,
    /// Where the data lives: LK_DEVICE_CPU, or LK_DEVICE_LKBUFFER with `data` an lk_buffer.
    pub device: lk_device,
    /// Rank (0..=LK_MAX_NDIM).
    pub ndim: i32,
    /// Element type.
    pub dtype: lk_dtype,
    /// `ndim` sizes; may be NULL when ndim is 0.
    pub shape: *const i64,
    /// `ndim` strides in elements, or NULL for contiguous row-major.
    pub strides: *const i64,
    /// Bytes from `data` to the first element.
    pub byte_offset: u64,
}
