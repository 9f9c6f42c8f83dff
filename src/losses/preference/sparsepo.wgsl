// sparsepo under the per-sample contract with a leading axis (PerSampleWgsl::with_leading_axis),
// after the losskit prelude: one invocation per pair. The [2, B, T] inputs are chunk-local
// [2, rows, T] (block 0 chosen, block 1 rejected); dims[0] = (B, T). Parameters: 0 beta,
// 1 mask_mode (independent|common), 2 l1_reward, 3 l1_kl.
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

// Logistic function without overflow.
fn sp_sigmoid(x: f32) -> f32 {
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let rows = lk.rows;
    if (i >= rows) {
        return;
    }
    let t = lk.dims[0].y;
    let beta = lk.params[0].x;
    let one_mask = lk.params[0].y == 1.0;
    let l1u = lk.params[0].z;
    let l1d = lk.params[0].w;
    let has_mu = (lk.present & (1u << 4u)) != 0u;
    let has_md = (lk.present & (1u << 5u)) != 0u && !one_mask;
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
    let gz = -beta * sp_sigmoid(-z);
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
