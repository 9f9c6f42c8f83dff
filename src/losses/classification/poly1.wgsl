// poly1 for the row-wise skeleton (backend/wgpu/rowwise.wgsl). lk_param(0) = epsilon.
// u = z_y - LSE = log p_y (<= 0): l = -u - eps expm1(u);
// dl/dz_c = A (p_c - [c = y]) with A = 1 + eps p_y, so a = d = A, b = 0.
fn lk_row_loss(st: LkRowStats) -> LkRowCoef {
    let eps = lk_param(0u);
    let u = min(st.zy - st.lse, 0.0);
    let aa = 1.0 + eps * exp(u);
    return LkRowCoef(-u - eps * lk_expm1(u), aa, 0.0, aa);
}
