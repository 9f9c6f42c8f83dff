//! Workgroup sizing, validated against the device limits, and dispatch grids.

use super::GpuDevice;
use crate::bail;
use crate::error::Result;

/// The default workgroup size of losskit's kernels (best measured on lavapipe; a common
/// good choice on GPUs).
pub const DEFAULT_WG: u32 = 256;

/// Check a 1-D workgroup size against the device (`> 0`, within the per-dimension and
/// per-workgroup invocation limits).
pub fn check_workgroup(dev: &GpuDevice, size: u32) -> Result<()> {
    let l = &dev.limits;
    if size == 0 {
        bail!(Internal, "workgroup size 0");
    }
    if size > l.max_compute_workgroup_size_x || size > l.max_compute_invocations_per_workgroup {
        bail!(
            Unsupported,
            "workgroup size {size} exceeds the device's limits (x {}, invocations {})",
            l.max_compute_workgroup_size_x,
            l.max_compute_invocations_per_workgroup
        );
    }
    Ok(())
}

/// The workgroup size to use: `want`, lowered to the largest power of two the device allows.
pub fn workgroup_size(dev: &GpuDevice, want: u32) -> u32 {
    let cap = dev
        .limits
        .max_compute_workgroup_size_x
        .min(dev.limits.max_compute_invocations_per_workgroup)
        .max(1);
    let mut w = want.max(1);
    while w > cap {
        w /= 2;
    }
    w
}

/// A dispatch grid `(x, y)` covering `groups` workgroups with at most `max_dim` per
/// dimension. Kernels linearise it as `wid.y * nwg.x + wid.x` and skip ids `>= groups`.
pub fn grid(groups: u64, max_dim: u32) -> Result<(u32, u32)> {
    if groups == 0 {
        return Ok((0, 0));
    }
    let m = max_dim.max(1) as u64;
    if groups <= m {
        return Ok((groups as u32, 1));
    }
    let y = groups.div_ceil(m);
    if y > m {
        bail!(
            Unsupported,
            "{groups} workgroups exceed the device's dispatch grid ({m} x {m})"
        );
    }
    Ok((m as u32, y as u32))
}

/// Rows per chunk so that a bound range of `rows` rows, `stride` elements apart, each `len`
/// elements long, plus `slack` bytes of alignment padding, fits in `max_bytes`; at least 1.
/// Errors when a single row does not fit.
pub fn rows_per_chunk(
    max_bytes: u64,
    stride: usize,
    len: usize,
    elem: usize,
    slack: u64,
    what: &str,
) -> Result<usize> {
    let row_bytes = (len * elem) as u64;
    if row_bytes + slack > max_bytes {
        bail!(
            Unsupported,
            "{what}: one row ({row_bytes} bytes) exceeds the device's largest binding ({max_bytes} bytes)"
        );
    }
    if stride == 0 {
        return Ok(usize::MAX);
    }
    let step = (stride * elem) as u64;
    Ok((1 + (max_bytes - slack - row_bytes) / step) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_splits_large_counts() {
        assert_eq!(grid(0, 65535).unwrap(), (0, 0));
        assert_eq!(grid(10, 65535).unwrap(), (10, 1));
        assert_eq!(grid(65536, 65535).unwrap(), (65535, 2));
        assert!(grid(u64::MAX, 65535).is_err());
    }

    #[test]
    fn chunk_rows_fit_the_binding() {
        // 1000-element rows of f32, contiguous: 4000 bytes each.
        let r = rows_per_chunk(40_000, 1000, 1000, 4, 0, "t").unwrap();
        assert_eq!(r, 10);
        // Slack for alignment costs a row here.
        assert_eq!(rows_per_chunk(40_000, 1000, 1000, 4, 256, "t").unwrap(), 9);
        // A strided layout: rows 1500 apart, 1000 long.
        let r = rows_per_chunk(40_000, 1500, 1000, 4, 0, "t").unwrap();
        assert!(((r - 1) * 1500 + 1000) * 4 <= 40_000);
        assert!((r * 1500 + 1000) * 4 > 40_000);
        assert!(rows_per_chunk(100, 1000, 1000, 4, 0, "t").is_err());
    }
}
