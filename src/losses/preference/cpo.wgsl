// cpo under the per-sample contract v1 (after the losskit prelude and family.wgsl): one
// invocation per pair. Inputs: policy chosen / rejected log-probs, chosen / rejected lengths
// (optional); cpo_alpha weighs the NLL term, alpha shapes the AlphaPO reward.
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
    let kind = u32(lk_param(LK_P_LOSS_TYPE));
    let nll = lk_param(LK_P_CPO_ALPHA);
    let alpha = lk_param(LK_P_ALPHA);
    var lw = 1.0;
    var ll = 1.0;
    if (lk_present(LK_IN_CHOSEN_LEN)) {
        lw = pf_len(len_w[i]);
    }
    if (lk_present(LK_IN_REJECTED_LEN)) {
        ll = pf_len(len_l[i]);
    }
    // ipo scores are average log-probs; sigmoid and hinge use the sums.
    var jw = 1.0;
    var jl = 1.0;
    if (kind == LK_E_LOSS_TYPE_IPO) {
        jw = 1.0 / lw;
        jl = 1.0 / ll;
    }
    let rw = pf_alpha_reward(alpha, pc[i] * jw);
    let rl = pf_alpha_reward(alpha, pr[i] * jl);
    let delta = rw.x - rl.x;
    var m: vec2<f32>;
    if (kind == LK_E_LOSS_TYPE_IPO) {
        let d = delta - 1.0 / (2.0 * beta);
        m = vec2<f32>(d * d, 2.0 * d);
    } else {
        let h = pf_margin_loss(kind == LK_E_LOSS_TYPE_HINGE, lk_param(LK_P_LABEL_SMOOTHING), beta * delta);
        m = vec2<f32>(h.x, beta * h.y);
    }
    lk_loss[i] = m.x - nll * pc[i] / lw;
    g_pc[i] = m.y * rw.y * jw - nll / lw;
    g_pr[i] = -m.y * rl.y * jl;
}
