// Preference family helpers, placed after the per-sample contract prelude and the losskit
// prelude in front of every preference kernel (see preference/mod.rs). The CPU path works in
// f64; these are the f32 forms that keep the two within the parity tolerance: no exp of a
// positive argument that could overflow, log1p and expm1 without cancellation near 0.

// Parameter k of the loss (spec order; enum = choice index, bool = 0/1).
fn pf_param(k: u32) -> f32 {
    return lk.params[k / 4u][k % 4u];
}

// Whether input k was given.
fn pf_present(k: u32) -> bool {
    return ((lk.present >> k) & 1u) == 1u;
}

// Size of shape letter k (letters in order of first appearance over the inputs).
fn pf_dim(k: u32) -> u32 {
    return lk.dims[k / 4u][k % 4u];
}

// log(1 + x) for x > -1 without the cancellation of log(1 + x) near 0: the ratio
// x / ((1 + x) - 1) corrects the rounding of 1 + x (Goldberg's log1p).
fn pf_log1p(x: f32) -> f32 {
    let u = 1.0 + x;
    if (u == 1.0) {
        return x;
    }
    return log(u) * (x / (u - 1.0));
}

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}).
fn pf_softplus(x: f32) -> f32 {
    return max(x, 0.0) + pf_log1p(exp(-abs(x)));
}

// The logistic function, from e^{-|x|} <= 1 only.
fn pf_sigmoid(x: f32) -> f32 {
    let e = exp(-abs(x));
    let r = 1.0 / (1.0 + e);
    return select(e * r, r, x >= 0.0);
}

// log sigmoid(x) = -softplus(-x).
fn pf_log_sigmoid(x: f32) -> f32 {
    return -pf_softplus(-x);
}

// log(1 - e^a) for a < 0: log(-expm1(a)) near 0, log1p(-e^a) below -ln 2.
fn pf_log1mexp(a: f32) -> f32 {
    if (a > -0.6931472) {
        return log(-lk_expm1(a));
    }
    return pf_log1p(-exp(a));
}

// relu'(x) = 1[x > 0].
fn pf_step(x: f32) -> f32 {
    return select(0.0, 1.0, x > 0.0);
}

// A token count as the losses use it: max(len, 1).
fn pf_len(x: f32) -> f32 {
    return max(x, 1.0);
}

// Margin loss of x as (loss, dloss/dx): hinge relu(1 - x), or the sigmoid loss with label
// smoothing eps, (1 - eps) softplus(-x) + eps softplus(x).
fn pf_margin_loss(hinge: bool, eps: f32, x: f32) -> vec2<f32> {
    if (hinge) {
        return vec2<f32>(max(1.0 - x, 0.0), select(0.0, -1.0, x < 1.0));
    }
    return vec2<f32>(
        (1.0 - eps) * pf_softplus(-x) + eps * pf_softplus(x),
        -(1.0 - eps) * pf_sigmoid(-x) + eps * pf_sigmoid(x),
    );
}

// AlphaPO reward r(a) = -expm1(-alpha a) / alpha (a when alpha = 0) and r'(a) = e^{-alpha a}
// (the exponent clamped at 88, where the f32 CPU result overflows).
fn pf_alpha_reward(alpha: f32, a: f32) -> vec2<f32> {
    if (alpha == 0.0) {
        return vec2<f32>(a, 1.0);
    }
    let t = min(-alpha * a, 88.0);
    return vec2<f32>(-lk_expm1(t) / alpha, exp(t));
}
