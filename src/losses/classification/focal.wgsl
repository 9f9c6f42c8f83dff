// focal for the row-wise skeleton (backend/wgpu/rowwise.wgsl). lk_param(0) = gamma.
// u = z_y - LSE = log p_y (<= 0), q = 1 - p_y = -expm1(u), alpha = w_y:
// l = -alpha q^gamma u (0^0 = 1);
// D = dl/du = alpha q^gamma (gamma p_y r - 1) with r = u / q (-1 at q = 0), finite for
// every gamma >= 0 (no q^(gamma-1) factor);
// dl/dz_c = -D p_c + D [c = y], so a = -D, b = 0, d = -D.
fn lk_row_loss(st: LkRowStats) -> LkRowCoef {
    let gamma = lk_param(0u);
    let u = min(st.zy - st.lse, 0.0);
    let q = -lk_expm1(u);
    let p = exp(u);
    let qg = lk_pow0(q, gamma);
    let r = select(-1.0, u / q, q > 0.0);
    let dd = st.wy * qg * (gamma * p * r - 1.0);
    return LkRowCoef(-st.wy * qg * u, -dd, 0.0, -dd);
}
