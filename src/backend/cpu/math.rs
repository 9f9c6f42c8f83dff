//! Scalar math: the branch-free f32 [`exp_f32`] that the vector kernels are built on, and
//! the numerically stable f64 helpers the per-row losses call ([`softplus`], [`sigmoid`],
//! [`log1mexp`]).

const EXP_HI: f32 = 88.722_83;
const EXP_LO: f32 = -87.336_55;

/// `e^x` in f32, within 2 ulp, branch-free so that loops over it vectorise. Returns 0 below
/// about -87.3 (the normal range), +inf above 88.7, and propagates NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    // clamp keeps NaN, so NaN flows through to the result.
    let xc = x.clamp(EXP_LO, EXP_HI);
    // k = round(x / ln 2) via the 1.5 * 2^23 trick (round half to even).
    const SHIFT: f32 = 12_582_912.0;
    // Fused multiply-adds: one rounding each, so the result is the same on every target
    // (hardware FMA where the CPU has it, the correctly rounded libm `fmaf` elsewhere).
    let t = xc.mul_add(std::f32::consts::LOG2_E, SHIFT);
    let k = t - SHIFT;
    let r = k.mul_add(-0.693_145_75, xc);
    let r = k.mul_add(-1.428_606_8e-6, r);
    let mut p = r.mul_add(1.388_888_9e-3, 8.333_334e-3);
    p = p.mul_add(r, 4.166_666_8e-2);
    p = p.mul_add(r, 1.666_666_7e-1);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    let bits = ((t.to_bits() as i32 - 0x4B40_0000 + 127) << 23) as u32;
    let v = p * f32::from_bits(bits);
    if x < EXP_LO {
        0.0
    } else if x > EXP_HI {
        f32::INFINITY
    } else {
        v
    }
}

/// [`exp_f32`] for arguments `<= 0` (or NaN), as in a softmax after subtracting the max:
/// the same bits for those arguments, two operations fewer (no upper clamp).
#[inline(always)]
pub(super) fn exp_nonpos(x: f32) -> f32 {
    // NaN < EXP_LO is false, so NaN flows through to the result.
    let xc = if x < EXP_LO { EXP_LO } else { x };
    const SHIFT: f32 = 12_582_912.0;
    let t = xc.mul_add(std::f32::consts::LOG2_E, SHIFT);
    let k = t - SHIFT;
    let r = k.mul_add(-0.693_145_75, xc);
    let r = k.mul_add(-1.428_606_8e-6, r);
    let mut p = r.mul_add(1.388_888_9e-3, 8.333_334e-3);
    p = p.mul_add(r, 4.166_666_8e-2);
    p = p.mul_add(r, 1.666_666_7e-1);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    let bits = ((t.to_bits() as i32 - 0x4B40_0000 + 127) << 23) as u32;
    let v = p * f32::from_bits(bits);
    if x < EXP_LO { 0.0 } else { v }
}

/// Numerically stable `softplus(x) = ln(1 + e^x)` in f64.
#[inline]
pub fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Logistic sigmoid in f64.
#[inline]
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 - e^x)` for `x <= 0`, accurate at both ends.
#[inline]
pub fn log1mexp(x: f64) -> f64 {
    if x > -std::f64::consts::LN_2 {
        (-x.exp_m1()).ln()
    } else {
        (-x.exp()).ln_1p()
    }
}

/// `log σ(x) = −softplus(−x)` in f64.
#[inline]
pub fn log_sigmoid(x: f64) -> f64 {
    -softplus(-x)
}

/// Max-shifted `log Σ_k e^{z_k}` in f64; entries may be −∞ (left out); −∞ for an empty set.
pub fn lse(z: &[f64]) -> f64 {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + z.iter().map(|&v| (v - m).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let a = exp_f32(x) as f64;
            let b = (x as f64).exp();
            worst = worst.max(((a - b) / b).abs());
            x += 0.013;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn exp_nonpos_is_exp_f32_for_nonpositive_arguments() {
        let mut x = 0.0f32;
        while x > -120.0 {
            assert_eq!(exp_nonpos(x).to_bits(), exp_f32(x).to_bits(), "x = {x}");
            x -= 0.0037;
        }
        for v in [
            -0.0f32,
            f32::NEG_INFINITY,
            -f32::MIN_POSITIVE,
            EXP_LO,
            -87.0,
        ] {
            assert_eq!(exp_nonpos(v).to_bits(), exp_f32(v).to_bits(), "x = {v}");
        }
        assert!(exp_nonpos(f32::NAN).is_nan());
    }
}
