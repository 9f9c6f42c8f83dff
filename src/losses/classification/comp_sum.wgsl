// comp_sum for the row-wise skeleton (backend/wgpu/rowwise.wgsl). lk_param(0) = k = 1 - tau.
// The math is comp_sum_coef (smooth_adv_comp_sum's kernel calls it with its member's k).
// L = LSE - z_y (>= 0): l = phi(L) = expm1(k L) / k (L at k = 0);
// dl/dz_c = phi'(L) (p_c - [c = y]) with phi'(L) = e^{k L}, so a = d = e^{k L}, b = 0.
// Past the f32 range (k > 0 only) the loss saturates at 3e38 and e^{k L} at e^88 instead of
// overflowing (WGSL gives no infinities).
fn lk_row_loss(st: LkRowStats) -> LkRowCoef {
    return comp_sum_coef(st, lk_param(0u));
}

fn comp_sum_coef(st: LkRowStats, k: f32) -> LkRowCoef {
    let l = max(st.lse - st.zy, 0.0);
    let kl = k * l;
    var loss = l;
    if (k != 0.0) {
        if (k > 0.0 && kl - log(k) > 88.0) {
            loss = -LK_NEG_BIG;
        } else {
            loss = lk_expm1(kl) / k;
        }
    }
    let aa = exp(min(kl, 88.0));
    return LkRowCoef(loss, aa, 0.0, aa);
}
