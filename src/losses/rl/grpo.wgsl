// grpo under the per-sample contract (after the prelude and rl/family.wgsl): one invocation
// per row of [N, T]. Inputs: logps, mask, rewards (bound whole), old_logps (optional),
// ref_logps (optional). Host constant LK_C_DEN: the row denominator (grpo::GPU_HOST_CONSTS).
@group(0) @binding(1) var<storage, read> logps: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;
@group(0) @binding(3) var<storage, read> rewards: array<f32>;
@group(0) @binding(4) var<storage, read> old_logps: array<f32>;
@group(0) @binding(5) var<storage, read> ref_logps: array<f32>;
@group(0) @binding(6) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(7) var<storage, read_write> g_logps: array<f32>;

// Mean and Bessel-corrected std (0 for one element) of rewards[a..b), two passes.
fn grpo_stats(a: u32, b: u32) -> vec2<f32> {
    let cnt = b - a;
    var s = 0.0;
    for (var k = a; k < b; k++) {
        s += rewards[k];
    }
    let m = s / f32(max(cnt, 1u));
    if (cnt < 2u) {
        return vec2<f32>(m, 0.0);
    }
    var q = 0.0;
    for (var k = a; k < b; k++) {
        let d = rewards[k] - m;
        q += d * d;
    }
    return vec2<f32>(m, sqrt(q / f32(cnt - 1u)));
}

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let n = lk_dim(LK_DIM_N);
    let t = lk_dim(LK_DIM_T);
    let gi = lk.row_offset + i;
    // Group-relative advantage of this row (grpo::advantages).
    let g = u32(lk_param(LK_P_GROUP_SIZE));
    let g0 = gi / g * g;
    let grp = grpo_stats(g0, min(g0 + g, n));
    let scale = u32(lk_param(LK_P_SCALE_REWARDS));
    var a = rewards[gi] - grp.x;
    if (scale == LK_E_SCALE_REWARDS_GROUP) {
        a = a / (grp.y + 1e-4);
    } else if (scale == LK_E_SCALE_REWARDS_BATCH) {
        a = a / (grpo_stats(0u, n).y + 1e-4);
    }
    let beta = lk_param(LK_P_BETA);
    let lo = lk_param(LK_P_EPSILON_LOW);
    let hi = lk_param(LK_P_EPSILON_HIGH);
    let has_old = lk_present(LK_IN_OLD_LOGPS);
    let has_ref = lk_present(LK_IN_REF_LOGPS);
    let base = i * t;
    var count = 0.0;
    for (var k = 0u; k < t; k++) {
        count += mask[base + k];
    }
    let den = lk_rl_den(u32(lk_param(LK_P_LOSS_AGG)), count, lk_param(LK_C_DEN));
    var acc = lk_acc0();
    for (var k = 0u; k < t; k++) {
        let j = base + k;
        if (mask[j] == 0.0) {
            g_logps[j] = 0.0;
            continue;
        }
        let lp = logps[j];
        var delta = 0.0;
        if (has_old) {
            delta = lp - old_logps[j];
        }
        var r = lk_rl_clip(delta, a, lo, hi, 0.0, false);
        if (beta != 0.0 && has_ref) {
            // k3 estimator beta (e^rho - rho - 1), rho = ref - logp; d/dlogp = beta (1 - e^rho).
            let rho = ref_logps[j] - lp;
            let e = lk_expm1(rho);
            r += vec2<f32>(beta * (e - rho), -beta * e);
        }
        acc = lk_acc_add(acc, r.x);
        g_logps[j] = r.y / den;
    }
    lk_loss[i] = lk_acc(acc) / den;
}
