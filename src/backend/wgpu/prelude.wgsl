// losskit WGSL prelude: prepended to every losskit kernel, the one home of the shared math
// (plugin kernels get only the per-sample contract prelude, not this file).
//
// Numerics: WGSL gives no guarantee for inf or NaN, so nothing here relies on them.
// Maxima start from the finite sentinel LK_NEG_BIG, exponentials of differences are taken
// only for arguments <= 0, and tanh is written in a form that cannot overflow.

const LK_NEG_BIG: f32 = -3.0e38;

// exp(a - m) for a <= m (0 when a is the sentinel and m is not).
fn lk_exp_sub(a: f32, m: f32) -> f32 {
    return exp(min(a - m, 0.0));
}

// Merge two online-softmax states (m1, s1) and (m2, s2): max and rescaled sum.
fn lk_merge_ms(m1: f32, s1: f32, m2: f32, s2: f32) -> vec2<f32> {
    let m = max(m1, m2);
    return vec2<f32>(m, s1 * lk_exp_sub(m1, m) + s2 * lk_exp_sub(m2, m));
}

// tanh(x) without overflow: sign(x) * (1 - e^{-2|x|}) / (1 + e^{-2|x|}).
fn lk_tanh(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    let t = (1.0 - e) / (1.0 + e);
    return select(t, -t, x < 0.0);
}

// Soft-capping cap * tanh(z / cap); identity when cap <= 0.
fn lk_softcap(z: f32, cap: f32) -> f32 {
    if (cap > 0.0) {
        return cap * lk_tanh(z / cap);
    }
    return z;
}

// d softcap(z) / dz given the capped value zc: 1 - (zc / cap)^2 (1 when cap <= 0).
fn lk_softcap_grad(zc: f32, cap: f32) -> f32 {
    if (cap > 0.0) {
        let t = zc / cap;
        return 1.0 - t * t;
    }
    return 1.0;
}


// e^x - 1 without cancellation near 0 (a Taylor polynomial for |x| < 0.5, where its error
// is below 1e-9 relative) and without overflow (x is clamped to 88, e^88 < f32 max).
fn lk_expm1(x: f32) -> f32 {
    if (abs(x) < 0.5) {
        var t = 1.0 + x / 10.0;
        t = 1.0 + x / 9.0 * t;
        t = 1.0 + x / 8.0 * t;
        t = 1.0 + x / 7.0 * t;
        t = 1.0 + x / 6.0 * t;
        t = 1.0 + x / 5.0 * t;
        t = 1.0 + x / 4.0 * t;
        t = 1.0 + x / 3.0 * t;
        t = 1.0 + x / 2.0 * t;
        return x * t;
    }
    return exp(min(x, 88.0)) - 1.0;
}

// The shared scalar math. The CPU path works in f64; these f32 forms keep the two within
// the parity tolerance: no exp of a positive argument, log1p and expm1 without cancellation.

// log(1 + x) for x > -1 with full relative precision near 0. For |x| < 0.5 it is
// 2 atanh(t), t = x / (2 + x) (|t| <= 1/3, the series to t^19 is exact in f32), and needs no
// log: WGSL bounds log's error near 1 only absolutely (2^-21), which would make a form built
// on log(1 + x) (such as Goldberg's) lose its relative precision on some GPUs. Further out
// 1 + x is exact or large, and log(1 + x) is accurate.
fn lk_log1p(x: f32) -> f32 {
    if (abs(x) < 0.5) {
        let t = x / (2.0 + x);
        let t2 = t * t;
        var q = 1.0 / 19.0;
        q = 1.0 / 17.0 + t2 * q;
        q = 1.0 / 15.0 + t2 * q;
        q = 1.0 / 13.0 + t2 * q;
        q = 1.0 / 11.0 + t2 * q;
        q = 1.0 / 9.0 + t2 * q;
        q = 1.0 / 7.0 + t2 * q;
        q = 1.0 / 5.0 + t2 * q;
        q = 1.0 / 3.0 + t2 * q;
        q = 1.0 + t2 * q;
        return 2.0 * t * q;
    }
    return log(1.0 + x);
}

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}), without overflow.
fn lk_softplus(x: f32) -> f32 {
    return max(x, 0.0) + lk_log1p(exp(-abs(x)));
}

// The logistic function 1 / (1 + e^{-x}), from e^{-|x|} <= 1 only (one rounded division).
fn lk_sigmoid(x: f32) -> f32 {
    let e = exp(-abs(x));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}

// log sigmoid(x) = -softplus(-x).
fn lk_log_sigmoid(x: f32) -> f32 {
    return -lk_softplus(-x);
}

// log(1 - e^a) for a < 0: log(-expm1(a)) near 0, log1p(-e^a) below -ln 2.
fn lk_log1mexp(a: f32) -> f32 {
    if (a > -0.6931472) {
        return log(-lk_expm1(a));
    }
    return lk_log1p(-exp(a));
}

// x^y for x >= 0, y >= 0 with 0^0 = 1 and 0^y = 0 (y > 0); WGSL's pow is undefined at 0.
fn lk_pow0(x: f32, y: f32) -> f32 {
    if (y == 0.0) {
        return 1.0;
    }
    if (x <= 0.0) {
        return 0.0;
    }
    return pow(x, y);
}

// Blocked summation of a long stream of terms (one invocation's loop over T or C): terms go
// into a block of 64, full blocks into a block of 64 blocks, and those into the total; the
// value is tot + (mid + blk). Each term's rounding error is amplified only by the adds of its
// own levels, so the error is at most about (63 + 63 + n / 4096) ulp of the sum of |terms|
// (and a random walk of that in practice), against n ulp for a single running sum. Unlike
// Kahan's compensation, whose correction term is 0 in exact arithmetic, nothing here can be
// simplified away by a compiler that reassociates or contracts (fused multiply-adds only
// make the block adds more accurate). lk_acc_scale rescales the state (online log-sum-exp).
struct LkAcc {
    tot: f32,
    mid: f32,
    blk: f32,
    n: u32,
}

fn lk_acc0() -> LkAcc {
    return LkAcc(0.0, 0.0, 0.0, 0u);
}

fn lk_acc_add(a: LkAcc, x: f32) -> LkAcc {
    var r = a;
    r.blk += x;
    r.n += 1u;
    if ((r.n & 63u) == 0u) {
        r.mid += r.blk;
        r.blk = 0.0;
        if ((r.n & 4095u) == 0u) {
            r.tot += r.mid;
            r.mid = 0.0;
        }
    }
    return r;
}

fn lk_acc_scale(a: LkAcc, f: f32) -> LkAcc {
    return LkAcc(a.tot * f, a.mid * f, a.blk * f, a.n);
}

fn lk_acc(a: LkAcc) -> f32 {
    return a.tot + (a.mid + a.blk);
}
