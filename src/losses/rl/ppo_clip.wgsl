// ppo_clip under the per-sample contract (after the prelude and rl/family.wgsl): one
// invocation per row of [N, T]. dims[0] = (N, T). Parameters: 0 clip_low, 1 clip_high,
// 2 clip_ratio_c, 3 loss_agg, 4 max_len; constant 5 = the host's row denominator.
@group(0) @binding(1) var<storage, read> logps: array<f32>;
@group(0) @binding(2) var<storage, read> old_logps: array<f32>;
@group(0) @binding(3) var<storage, read> adv: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(6) var<storage, read_write> g_logps: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let t = lk.dims[0].y;
    let base = i * t;
    let lo = lk_rl_param(0u);
    let hi = lk_rl_param(1u);
    let cc = lk_rl_param(2u);
    var count = 0.0;
    for (var k = 0u; k < t; k++) {
        count += mask[base + k];
    }
    let den = lk_rl_den(u32(lk_rl_param(3u)), count, lk_rl_param(5u));
    var acc = lk_acc0();
    for (var k = 0u; k < t; k++) {
        let j = base + k;
        if (mask[j] == 0.0) {
            g_logps[j] = 0.0;
            continue;
        }
        let r = lk_rl_clip(logps[j] - old_logps[j], adv[j], lo, hi, cc, true);
        acc = lk_acc_add(acc, r.x);
        g_logps[j] = r.y / den;
    }
    lk_loss[i] = lk_acc(acc) / den;
}
