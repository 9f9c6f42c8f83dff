// spo_degree under the per-sample contract v1 (after the losskit prelude and family.wgsl):
// one invocation per row. Inputs: variant_logps [N, K], variant_ref_logps [N, K] (optional),
// variant_len [N, K] (optional); K >= 2, checked by the host.
@group(0) @binding(1) var<storage, read> logps: array<f32>;
@group(0) @binding(2) var<storage, read> ref_logps: array<f32>;
@group(0) @binding(3) var<storage, read> lens: array<f32>;
@group(0) @binding(4) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> g_logps: array<f32>;

// z_j and dz_j/dlogps_j of entry e.
fn score(e: u32) -> vec2<f32> {
    let beta = lk_param(LK_P_BETA);
    if (u32(lk_param(LK_P_SCORE)) == LK_E_SCORE_AVG) {
        var len = 1.0;
        if (lk_present(LK_IN_VARIANT_LEN)) {
            len = pf_len(lens[e]);
        }
        return vec2<f32>(beta * logps[e] / len, beta / len);
    }
    var rf = 0.0;
    if (lk_present(LK_IN_VARIANT_REF_LOGPS)) {
        rf = ref_logps[e];
    }
    return vec2<f32>(beta * (logps[e] - rf), beta);
}

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let k = lk_dim(LK_DIM_K);
    let lam = lk_param(LK_P_WEIGHT);
    let base = i * k;
    if (u32(lk_param(LK_P_OBJECTIVE)) == LK_E_OBJECTIVE_CE) {
        // ce: lam (LSE(z) - z_0), gradient lam (softmax(z) - [j = 0]) dz/ds.
        var mx = LK_NEG_BIG;
        for (var j = 0u; j < k; j++) {
            mx = max(mx, score(base + j).x);
        }
        var s = 0.0;
        for (var j = 0u; j < k; j++) {
            s += exp(score(base + j).x - mx);
        }
        let lse = mx + log(s);
        for (var j = 0u; j < k; j++) {
            let z = score(base + j);
            g_logps[base + j] = lam * z.y * (exp(z.x - lse) - select(0.0, 1.0, j == 0u));
        }
        lk_loss[i] = lam * (lse - score(base).x);
        return;
    }
    // Plackett-Luce: stage t has L_t = LSE_{j >= t} z_j. The suffix log-sum-exps are built
    // from the back (online max and sum) and parked in the row's gradient slots.
    var m = LK_NEG_BIG;
    var s = 0.0;
    var loss = 0.0;
    for (var jj = 0u; jj < k; jj++) {
        let j = k - 1u - jj;
        let z = score(base + j).x;
        if (z > m) {
            s = s * lk_exp_sub(m, z) + 1.0;
            m = z;
        } else {
            s += exp(z - m);
        }
        let lt = m + log(s);
        g_logps[base + j] = lt;
        if (j + 2u <= k) {
            loss += lt - z;
        }
    }
    // Gradient of entry j: sum over the stages t <= min(j, K - 2) of softmax(z_{t:})_j, minus
    // 1 for j <= K - 2. Going down from j = K - 1, slot j is read before it is overwritten
    // and the slots t < j still hold L_t.
    for (var jj = 0u; jj < k; jj++) {
        let j = k - 1u - jj;
        let z = score(base + j);
        let top = min(j, k - 2u);
        var acc = 0.0;
        for (var t = 0u; t <= top; t++) {
            acc += exp(z.x - g_logps[base + t]);
        }
        if (j + 2u <= k) {
            acc -= 1.0;
        }
        g_logps[base + j] = lam * z.y * acc;
    }
    lk_loss[i] = lam * loss;
}
