// steer under the per-sample contract (after the prelude, rl/family.wgsl and
// steer_omega.wgsl): one invocation per row of [N, T]. Host constants (steer::GPU_HOST_CONSTS):
// LK_C_DEN the row denominator, LK_C_OMEGA_MIN and LK_C_OMEGA_MAX the min and max of Omega
// over the masked tokens (pass 1).
@group(0) @binding(1) var<storage, read> logps: array<f32>;
@group(0) @binding(2) var<storage, read> old_logps: array<f32>;
@group(0) @binding(3) var<storage, read> adv: array<f32>;
@group(0) @binding(4) var<storage, read> entropy: array<f32>;
@group(0) @binding(5) var<storage, read> mask: array<f32>;
@group(0) @binding(6) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(7) var<storage, read_write> g_logps: array<f32>;

// The detached token weight (steer::weights) from Omega and the call's min and max.
fn steer_weight(o: f32, lo: f32, hi: f32) -> f32 {
    let wmin = lk_param(LK_P_WEIGHT_MIN);
    let wmax = lk_param(LK_P_WEIGHT_MAX);
    if (u32(lk_param(LK_P_MAPPING)) == LK_E_MAPPING_EXP) {
        let k = -log(wmin) / max(hi, 0.02);
        return clamp(exp(-k * o), wmin, 1.0);
    }
    if (hi > lo) {
        return clamp(wmax - (o - lo) * (wmax - wmin) / (hi - lo), wmin, wmax);
    }
    return 0.5 * (wmin + wmax);
}

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
    let omin = lk_param(LK_C_OMEGA_MIN);
    let omax = lk_param(LK_C_OMEGA_MAX);
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
        let w = steer_weight(steer_omega(logps[j], old_logps[j], adv[j], entropy[j]), omin, omax);
        let r = lk_rl_clip(logps[j] - old_logps[j], adv[j], lo, hi, cc, true);
        acc = lk_acc_add(acc, w * r.x);
        g_logps[j] = w * r.y / den;
    }
    lk_loss[i] = lk_acc(acc) / den;
}
