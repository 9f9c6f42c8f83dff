// ppo_clip under the per-sample contract (after the prelude and rl/family.wgsl): one
// invocation per row of [N, T]. Host constant LK_C_DEN: the row denominator
// (ppo_clip::GPU_HOST_CONSTS).
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
    let t = lk_dim(LK_DIM_T);
    let base = i * t;
    let lo = lk_param(LK_P_CLIP_LOW);
    let hi = lk_param(LK_P_CLIP_HIGH);
    let cc = lk_param(LK_P_CLIP_RATIO_C);
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
        let r = lk_rl_clip(logps[j] - old_logps[j], adv[j], lo, hi, cc, true);
        acc = lk_acc_add(acc, r.x);
        g_logps[j] = r.y / den;
    }
    lk_loss[i] = lk_acc(acc) / den;
}
