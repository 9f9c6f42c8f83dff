// grpo under the per-sample contract (after the prelude and rl/family.wgsl): one invocation
// per row of [N, T]. dims[0] = (N, T). Inputs: 1 logps, 2 mask, 3 rewards (bound whole),
// 4 old_logps (optional), 5 ref_logps (optional). Parameters: 0 group_size, 1 scale_rewards
// (group|batch|none), 2 beta, 3 epsilon_low, 4 epsilon_high, 5 loss_agg, 6 max_len;
// constant 7 = the host's row denominator.
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
    let n = lk.dims[0].x;
    let t = lk.dims[0].y;
    let gi = lk.row_offset + i;
    // Group-relative advantage of this row (grpo::advantages).
    let g = u32(lk_rl_param(0u));
    let g0 = gi / g * g;
    let grp = grpo_stats(g0, min(g0 + g, n));
    let scale = u32(lk_rl_param(1u));
    var a = rewards[gi] - grp.x;
    if (scale == 0u) {
        a = a / (grp.y + 1e-4);
    } else if (scale == 1u) {
        a = a / (grpo_stats(0u, n).y + 1e-4);
    }
    let beta = lk_rl_param(2u);
    let lo = lk_rl_param(3u);
    let hi = lk_rl_param(4u);
    let has_old = (lk.present & (1u << 3u)) != 0u;
    let has_ref = (lk.present & (1u << 4u)) != 0u;
    let base = i * t;
    var count = 0.0;
    for (var k = 0u; k < t; k++) {
        count += mask[base + k];
    }
    let den = lk_rl_den(u32(lk_rl_param(5u)), count, lk_rl_param(7u));
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
