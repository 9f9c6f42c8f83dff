// simpo under the per-sample contract v1 (after the losskit prelude and family.wgsl): one
// invocation per pair. Inputs: policy chosen / rejected log-probs, chosen / rejected lengths;
// alpha shapes the AlphaPO reward.
@group(0) @binding(1) var<storage, read> pc: array<f32>;
@group(0) @binding(2) var<storage, read> pr: array<f32>;
@group(0) @binding(3) var<storage, read> len_w: array<f32>;
@group(0) @binding(4) var<storage, read> len_l: array<f32>;
@group(0) @binding(5) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(6) var<storage, read_write> g_pc: array<f32>;
@group(0) @binding(7) var<storage, read_write> g_pr: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let beta = lk_param(LK_P_BETA);
    let alpha = lk_param(LK_P_ALPHA);
    let sft = lk_param(LK_P_SFT_WEIGHT);
    let lw = pf_len(len_w[i]);
    let ll = pf_len(len_l[i]);
    let aw = pc[i] / lw;
    let al = pr[i] / ll;
    let rw = pf_alpha_reward(alpha, aw);
    let rl = pf_alpha_reward(alpha, al);
    let m = pf_margin_loss(u32(lk_param(LK_P_LOSS_TYPE)) == LK_E_LOSS_TYPE_HINGE, lk_param(LK_P_LABEL_SMOOTHING), beta * (rw.x - rl.x - lk_param(LK_P_GAMMA_BETA_RATIO)));
    lk_loss[i] = m.x - sft * aw;
    g_pc[i] = (m.y * beta * rw.y - sft) / lw;
    g_pr[i] = -m.y * beta * rl.y / ll;
}
