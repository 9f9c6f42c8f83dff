// Preference family helpers, placed after the per-sample contract prelude and the losskit
// prelude (whose lk_softplus, lk_sigmoid, lk_log1p, lk_expm1 they use) in front of every
// preference kernel (see preference/mod.rs): what only this family needs.

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
        (1.0 - eps) * lk_softplus(-x) + eps * lk_softplus(x),
        -(1.0 - eps) * lk_sigmoid(-x) + eps * lk_sigmoid(x),
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
