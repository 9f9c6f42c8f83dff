// rpo under the per-sample contract v1 (after the losskit prelude and family.wgsl): one
// invocation per pair. Inputs: policy chosen / rejected, reference chosen / rejected
// log-probs, chosen length (optional).
@group(0) @binding(1) var<storage, read> pc: array<f32>;
@group(0) @binding(2) var<storage, read> pr: array<f32>;
@group(0) @binding(3) var<storage, read> rc: array<f32>;
@group(0) @binding(4) var<storage, read> rr: array<f32>;
@group(0) @binding(5) var<storage, read> len_w: array<f32>;
@group(0) @binding(6) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(7) var<storage, read_write> g_pc: array<f32>;
@group(0) @binding(8) var<storage, read_write> g_pr: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let beta = lk_param(LK_P_BETA);
    let eta = lk_param(LK_P_ETA);
    let x = beta * ((pc[i] - rc[i]) - (pr[i] - rr[i]));
    var k = eta * beta;
    if (u32(lk_param(LK_P_SFT_NORM)) == LK_E_SFT_NORM_TOKEN_MEAN) {
        var lw = 1.0;
        if (lk_present(LK_IN_CHOSEN_LEN)) {
            lw = pf_len(len_w[i]);
        }
        k = eta / lw;
    }
    let s = lk_sigmoid(-x);
    lk_loss[i] = lk_softplus(-x) - k * pc[i];
    g_pc[i] = -beta * s - k;
    g_pr[i] = beta * s;
}
