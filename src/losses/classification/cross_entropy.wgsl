// cross_entropy for the row-wise skeleton (backend/wgpu/rowwise.wgsl).
// lk_param(0) = label_smoothing eps, lk_param(1) = z_loss_coef kappa.
// l = (1-eps) w_y (L - z'_y) + (eps/C) (W L - sum_c w_c z'_c) + kappa w_y L^2
// dl/dz'_c = a p_c + b w_c - d [c = y] with
//   a = (1-eps) w_y + (eps/C) W + 2 kappa w_y L,  b = -eps/C,  d = (1-eps) w_y.
fn lk_row_loss(st: LkRowStats) -> LkRowCoef {
    let eps = lk_param(0u);
    let kappa = lk_param(1u);
    let ec = eps / st.classes;
    let loss = (1.0 - eps) * st.wy * (st.lse - st.zy)
        + ec * (st.wsum * st.lse - st.swz)
        + kappa * st.wy * st.lse * st.lse;
    let a = (1.0 - eps) * st.wy + ec * st.wsum + 2.0 * kappa * st.wy * st.lse;
    return LkRowCoef(loss, a, -ec, (1.0 - eps) * st.wy);
}
