// Helpers of the classification kernels on the per-sample contract (losses/classification/
// gpu.rs), after the contract prelude and prelude.wgsl. One invocation handles one row.

// Whether row target t is ignored: validated targets outside [0, classes) can only be
// ignore_index; inside it, the target equals the ignore_index parameter `ii`.
fn lk_ignored(t: i32, classes: u32, ii: f32) -> bool {
    return t < 0 || u32(t) >= classes || f32(t) == ii;
}

// A long-row sum: the blocked accumulator of the prelude (LkAcc) with its current value in
// s (s is only read, never fed back, so the blocking cannot be undone by the compiler).
struct LkSum {
    s: f32,
    a: LkAcc,
}

fn lk_sum0() -> LkSum {
    return LkSum(0.0, lk_acc0());
}

fn lk_sum_add(a: LkSum, x: f32) -> LkSum {
    let r = lk_acc_add(a.a, x);
    return LkSum(lk_acc(r), r);
}

// Online log-sum-exp: running maximum m and the blocked sum of exp(x - m) (value in s).
struct LkLse {
    m: f32,
    s: f32,
    a: LkAcc,
}

fn lk_lse0() -> LkLse {
    return LkLse(LK_NEG_BIG, 0.0, lk_acc0());
}

fn lk_lse_add(a: LkLse, x: f32) -> LkLse {
    var m = a.m;
    var acc = a.a;
    var e = 1.0;
    if (x > m) {
        acc = lk_acc_scale(acc, lk_exp_sub(m, x));
        m = x;
    } else {
        e = exp(x - m);
    }
    acc = lk_acc_add(acc, e);
    return LkLse(m, lk_acc(acc), acc);
}

// The log-sum-exp of the state.
fn lk_lse(a: LkLse) -> f32 {
    return a.m + log(a.s);
}

// erfc(x) for x >= 0: the Chebyshev-fitted form t·exp(-x² + P(t)), t = 1/(1 + x/2), with
// a fractional error below 1.2e-7 everywhere (Numerical Recipes' erfcc coefficients).
fn lk_erfc_pos(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * x);
    var p = 0.17087277;
    p = -0.82215223 + t * p;
    p = 1.48851587 + t * p;
    p = -1.13520398 + t * p;
    p = 0.27886807 + t * p;
    p = -0.18628806 + t * p;
    p = 0.09678418 + t * p;
    p = 0.37409196 + t * p;
    p = 1.00002368 + t * p;
    p = -1.26551223 + t * p;
    return t * exp(max(-x * x + p, -100.0));
}

// erf(x) for any finite x.
fn lk_erf(x: f32) -> f32 {
    let e = 1.0 - lk_erfc_pos(abs(x));
    return select(e, -e, x < 0.0);
}

// A u32 key that orders floats like Rust's f32::total_cmp (-NaN < -inf < ... < inf < NaN).
fn lk_order_key(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}
