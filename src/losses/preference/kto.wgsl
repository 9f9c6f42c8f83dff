// kto under the per-sample contract v1 (after the losskit prelude and family.wgsl): one
// invocation per response. Inputs: logps, ref_logps, desirable (i32 0/1, checked by the
// host) [N]; kl_logps, kl_ref_logps [M] (optional, both or neither; bound whole, not per
// row).
@group(0) @binding(1) var<storage, read> logps: array<f32>;
@group(0) @binding(2) var<storage, read> ref_logps: array<f32>;
@group(0) @binding(3) var<storage, read> desirable: array<i32>;
@group(0) @binding(4) var<storage, read> kl_logps: array<f32>;
@group(0) @binding(5) var<storage, read> kl_ref_logps: array<f32>;
@group(0) @binding(6) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(7) var<storage, read_write> g_logps: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let beta = lk_param(LK_P_BETA);
    // KL reference point z0 = max(0, mean(kl_logps - kl_ref_logps)) for kto: every
    // invocation takes the same blocked sum in the same order (M is a batch's worth).
    var z0 = 0.0;
    let m = lk_dim(LK_DIM_M);
    if (u32(lk_param(LK_P_LOSS_TYPE)) == LK_E_LOSS_TYPE_KTO && lk_present(LK_IN_KL_LOGPS) && m > 0u) {
        var acc = lk_acc0();
        for (var j = 0u; j < m; j++) {
            acc = lk_acc_add(acc, kl_logps[j] - kl_ref_logps[j]);
        }
        z0 = max(lk_acc(acc) / f32(m), 0.0);
    }
    let x = beta * (logps[i] - ref_logps[i] - z0);
    let sp = lk_sigmoid(x);
    let d = beta * sp * lk_sigmoid(-x);
    if (desirable[i] == 1) {
        let wd = lk_param(LK_P_DESIRABLE_WEIGHT);
        lk_loss[i] = wd * lk_sigmoid(-x);
        g_logps[i] = -wd * d;
    } else {
        let wu = lk_param(LK_P_UNDESIRABLE_WEIGHT);
        lk_loss[i] = wu * sp;
        g_logps[i] = wu * d;
    }
}
