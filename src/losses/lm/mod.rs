//! Language-model head family: losses that take the hidden states `e [N, D]` and the
//! classifier (un-embedding) matrix `c [V, D]` instead of logits, so that the `N x V` logit
//! matrix of a large vocabulary never has to exist in memory.
//!
//! The family's shared machinery is the tile matrix product [`matmul`], a thin wrapper over
//! the `gemm` crate (packed, cache-blocked micro-kernels, the instruction set chosen at run
//! time). Losses call it single-threaded on tiles and parallelise over tiles themselves, so
//! that the split of the work, and therefore every rounding, is fixed by the shapes alone:
//! the same input gives the same bits whatever the number of threads.

pub mod cut_cross_entropy;

/// `dst (m x n) = [dst +] lhs (m x k) · rhs (k x n)` in f32, on the calling thread.
///
/// Every matrix is given by a pointer to its element `(0, 0)` and its row and column strides
/// in elements. With `acc` the product is added to `dst`, otherwise `dst` is overwritten.
/// `k = 0` gives a zero product.
///
/// # Safety
/// Every element that the shapes and strides address must lie inside a live allocation of
/// its matrix; `dst` must not overlap `lhs` or `rhs`, and no other thread may read or write
/// the addressed part of `dst` during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    acc: bool,
    lhs: *const f32,
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: *const f32,
    rhs_rs: usize,
    rhs_cs: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            for i in 0..m {
                for j in 0..n {
                    // SAFETY: (i, j) is inside dst by the caller's contract.
                    unsafe { *dst.add(i * dst_rs + j) = 0.0 };
                }
            }
        }
        return;
    }
    // SAFETY: the shapes and strides stay inside the three matrices (caller's contract);
    // gemm computes dst = 1·dst + 1·lhs·rhs when `acc` (read_dst), else dst = lhs·rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            acc,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::matmul;

    #[test]
    fn matmul_matches_naive_with_strides_and_accumulation() {
        let (m, n, k) = (5, 7, 9);
        let lhs: Vec<f32> = (0..m * k).map(|x| ((x * 37) % 11) as f32 - 5.0).collect();
        // rhs given transposed in storage: rhs(kk, j) = store[j * k + kk].
        let store: Vec<f32> = (0..n * k).map(|x| ((x * 13) % 7) as f32 - 3.0).collect();
        let mut dst = vec![1.0f32; m * (n + 2)];
        // SAFETY: every index addressed is inside the three vectors.
        unsafe {
            matmul(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                n + 2,
                true,
                lhs.as_ptr(),
                k,
                1,
                store.as_ptr(),
                1,
                k,
            )
        };
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 1.0
                    + (0..k)
                        .map(|kk| lhs[i * k + kk] * store[j * k + kk])
                        .sum::<f32>();
                assert_eq!(dst[i * (n + 2) + j], want);
            }
            assert_eq!(dst[i * (n + 2) + n], 1.0);
        }
        let mut z = vec![3.0f32; 4];
        // SAFETY: k = 0, only dst (2 x 2) is touched.
        unsafe {
            matmul(
                2,
                2,
                0,
                z.as_mut_ptr(),
                2,
                false,
                lhs.as_ptr(),
                0,
                1,
                store.as_ptr(),
                1,
                1,
            )
        };
        assert_eq!(z, vec![0.0; 4]);
    }
}
