// LDR-KL row helpers shared by ldr_kl.wgsl and aldr_kl.wgsl (which declare `logits` and
// `g_logits`; both specs have the enum `normalize`, whose LK_E_NORMALIZE_* choices `norm`
// holds). The normalised row is g = N(f); the scaled margins are
// w_c = (g_c - g_y + margin [c != y]) / lam.

const LDR_L1_FLOOR: f32 = 1e-12;

// The row normaliser: mean softplus(f), max(mean |f|, 1e-12), or 1.
fn ldr_den(base: u32, classes: u32, norm: u32) -> f32 {
    if (norm == LK_E_NORMALIZE_NONE) {
        return 1.0;
    }
    var s = lk_sum0();
    for (var c = 0u; c < classes; c++) {
        let f = logits[base + c];
        s = lk_sum_add(s, select(abs(f), lk_softplus(f), norm == LK_E_NORMALIZE_SOFTPLUS_MEAN));
    }
    let mean = s.s / f32(max(classes, 1u));
    if (norm == LK_E_NORMALIZE_SOFTPLUS_MEAN) {
        return mean;
    }
    return max(mean, LDR_L1_FLOOR);
}

// g_c from f_c.
fn ldr_g(f: f32, norm: u32, den: f32) -> f32 {
    if (norm == LK_E_NORMALIZE_SOFTPLUS_MEAN) {
        return lk_softplus(f) * (1.0 / den);
    }
    if (norm == LK_E_NORMALIZE_L1_MEAN) {
        return f / den;
    }
    return f;
}

// w_c = (g_c - g_y + margin [c != y]) * inv_lam.
fn ldr_w(g: f32, gy: f32, is_y: bool, margin: f32, inv_lam: f32) -> f32 {
    return (g - gy + select(margin, 0.0, is_y)) * inv_lam;
}

// The online log-sum-exp state of w over the row.
fn ldr_lse(base: u32, classes: u32, y: u32, norm: u32, den: f32, margin: f32, inv_lam: f32) -> LkLse {
    let gy = ldr_g(logits[base + y], norm, den);
    var e = lk_lse0();
    for (var c = 0u; c < classes; c++) {
        e = lk_lse_add(e, ldr_w(ldr_g(logits[base + c], norm, den), gy, c == y, margin, inv_lam));
    }
    return e;
}

// lam * (LSE(w) - log C), with log(s / C) so that a nearly uniform row does not cancel.
fn ldr_value(e: LkLse, classes: u32, lam: f32) -> f32 {
    return lam * (e.m + log(e.s / f32(classes)));
}

// Write dl/df for dl/dg = softmax(w) - e_y, chained through the normalisation.
fn ldr_backward(base: u32, classes: u32, y: u32, norm: u32, den: f32, margin: f32, inv_lam: f32, lse: f32) {
    let gy = ldr_g(logits[base + y], norm, den);
    let l1_small = norm == LK_E_NORMALIZE_L1_MEAN && !(den > LDR_L1_FLOOR);
    var v = lk_sum0();
    if (norm != 0u && !l1_small) {
        for (var c = 0u; c < classes; c++) {
            let g = ldr_g(logits[base + c], norm, den);
            let u = exp(ldr_w(g, gy, c == y, margin, inv_lam) - lse) - select(0.0, 1.0, c == y);
            v = lk_sum_add(v, u * g);
        }
    }
    let vc = v.s / f32(classes);
    for (var c = 0u; c < classes; c++) {
        let f = logits[base + c];
        let g = ldr_g(f, norm, den);
        let u = exp(ldr_w(g, gy, c == y, margin, inv_lam) - lse) - select(0.0, 1.0, c == y);
        var d = u;
        if (norm == LK_E_NORMALIZE_SOFTPLUS_MEAN) {
            d = lk_sigmoid(f) * (u - vc) / den;
        } else if (norm == LK_E_NORMALIZE_L1_MEAN) {
            if (l1_small) {
                d = u / LDR_L1_FLOOR;
            } else {
                d = (u - sign(f) * vc) / den;
            }
        }
        g_logits[base + c] = d;
    }
}

// Zero loss and gradient of an ignored row.
fn ldr_zero_row(i: u32, base: u32, classes: u32) {
    lk_loss[i] = 0.0;
    for (var c = 0u; c < classes; c++) {
        g_logits[base + c] = 0.0;
    }
}
