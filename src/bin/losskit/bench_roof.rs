//! The machine side of `losskit bench`: the STREAM-style in-place scale that serves as the
//! bandwidth roof, the threads' CPU clocks, and what the machine is.

use rayon::prelude::*;

/// `a[i] *= s` over all rayon threads, one contiguous part per thread (STREAM's static split).
pub fn scale_in_place(a: &mut [f32], s: f32) {
    let threads = rayon::current_num_threads().max(1);
    let part = a.len().div_ceil(threads).div_ceil(16) * 16;
    a.par_chunks_mut(part.max(16))
        .for_each(|c| scale_part(c, s));
}

fn scale_generic(a: &mut [f32], s: f32) {
    for v in a {
        *v *= s;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn scale_avx512(a: &mut [f32], s: f32) {
    scale_generic(a, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scale_avx2(a: &mut [f32], s: f32) {
    scale_generic(a, s)
}

/// The widest vector loop the CPU has, so the roof is not limited by instruction width.
fn scale_part(a: &mut [f32], s: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was detected at run time.
            return unsafe { scale_avx512(a, s) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the feature was detected at run time.
            return unsafe { scale_avx2(a, s) };
        }
    }
    scale_generic(a, s)
}

/// The CPU's model name (Linux), or the architecture.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// CPU time (ns) the calling thread has run, from `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`
/// (64-bit Linux; None elsewhere).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn thread_cpu_ns() -> Option<u64> {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut t = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable `struct timespec` (two 64-bit fields on 64-bit Linux)
    // for the duration of the call; the C library's clock_gettime only writes it.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
    (rc == 0).then(|| t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn thread_cpu_ns() -> Option<u64> {
    None
}

/// CPU time (ns) the calling thread and every rayon worker thread have run so far (each
/// thread reads its own clock). The calling thread counts because rayon runs a parallel
/// loop that never splits (one chunk) on the caller.
pub fn cpu_ns() -> Option<u64> {
    let workers: Option<u64> = rayon::broadcast(|_| thread_cpu_ns()).into_iter().sum();
    Some(workers? + thread_cpu_ns()?)
}

/// Available memory in bytes (Linux `MemAvailable`), if known.
pub fn mem_available() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let l = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
