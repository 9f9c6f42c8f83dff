// sparsepo under the per-sample contract with a leading axis (PerSampleWgsl::with_leading_axis),
// after the losskit prelude: one invocation per pair. The [2, B, T] inputs are chunk-local
// [2, rows, T] (block 0 chosen, block 1 rejected).
@group(0) @binding(1) var<storage, read> lp: array<f32>;
@group(0) @binding(2) var<storage, read> rf: array<f32>;
@group(0) @binding(3) var<storage, read> kl: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read> mu: array<f32>;
@group(0) @binding(6) var<storage, read> md: array<f32>;
@group(0) @binding(7) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(8) var<storage, read_write> g_lp: array<f32>;
@group(0) @binding(9) var<storage, read_write> g_kl: array<f32>;
@group(0) @binding(10) var<storage, read_write> g_mu: array<f32>;
@group(0) @binding(11) var<storage, read_write> g_md: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let rows = lk.rows;
    if (i >= rows) {
        return;
    }
    let t = lk_dim(LK_DIM_T);
    let beta = lk_param(LK_P_BETA);
    let one_mask = u32(lk_param(LK_P_MASK_MODE)) == LK_E_MASK_MODE_COMMON;
    let l1u = lk_param(LK_P_L1_REWARD);
    let l1d = lk_param(LK_P_L1_KL);
    let has_mu = lk_present(LK_IN_REWARD_MASK);
    let has_md = lk_present(LK_IN_KL_MASK) && !one_mask;
    // L1 weights of the reward and KL masks (common: one mask, half of each).
    var wu = l1u;
    var wd = l1d;
    if (one_mask) {
        wu = 0.5 * (l1u + l1d);
        wd = 0.0;
    }
    var u = lk_acc0();
    var d = lk_acc0();
    var pen = lk_acc0();
    for (var blk = 0u; blk < 2u; blk++) {
        let s = select(-1.0, 1.0, blk == 0u);
        for (var j = 0u; j < t; j++) {
            let e = (blk * rows + i) * t + j;
            if (mask[e] == 0.0) {
                continue;
            }
            var m_u = 1.0;
            if (has_mu) {
                m_u = mu[e];
                pen = lk_acc_add(pen, wu * abs(m_u));
            }
            var m_d = 1.0;
            if (one_mask) {
                m_d = m_u;
            } else if (has_md) {
                m_d = md[e];
                pen = lk_acc_add(pen, wd * abs(m_d));
            }
            u = lk_acc_add(u, s * m_u * (lp[e] - rf[e]));
            d = lk_acc_add(d, s * m_d * kl[e]);
        }
    }
    let z = beta * (lk_acc(u) - lk_acc(d));
    let gz = -beta * lk_sigmoid(-z);
    for (var blk = 0u; blk < 2u; blk++) {
        let s = select(-1.0, 1.0, blk == 0u);
        for (var j = 0u; j < t; j++) {
            let e = (blk * rows + i) * t + j;
            let on = mask[e] != 0.0;
            var m_u = 1.0;
            if (has_mu) {
                m_u = mu[e];
            }
            var m_d = 1.0;
            if (one_mask) {
                m_d = m_u;
            } else if (has_md) {
                m_d = md[e];
            }
            g_lp[e] = select(0.0, s * gz * m_u, on);
            g_kl[e] = select(0.0, -s * gz * m_d, on);
            if (has_mu) {
                var r = lp[e] - rf[e];
                if (one_mask) {
                    r -= kl[e];
                }
                g_mu[e] = select(0.0, s * gz * r + wu * sign(m_u), on);
            }
            if (has_md) {
                g_md[e] = select(0.0, -s * gz * kl[e] + wd * sign(m_d), on);
            }
        }
    }
    lk_loss[i] = lk_softplus(-z) + lk_acc(pen);
}
