// rpo under the per-sample contract v1 (after the losskit prelude and family.wgsl): one
// invocation per pair. Inputs: policy chosen / rejected, reference chosen / rejected
// log-probs, chosen length (optional). Parameters: 0 beta, 1 eta, 2 sft_norm (0 sum_beta,
// 1 token_mean).
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
    let beta = pf_param(0u);
    let eta = pf_param(1u);
    let x = beta * ((pc[i] - rc[i]) - (pr[i] - rr[i]));
    var k = eta * beta;
    if (pf_param(2u) == 1.0) {
        var lw = 1.0;
        if (pf_present(4u)) {
            lw = pf_len(len_w[i]);
        }
        k = eta / lw;
    }
    let s = pf_sigmoid(-x);
    lk_loss[i] = pf_softplus(-x) - k * pc[i];
    g_pc[i] = -beta * s - k;
    g_pr[i] = beta * s;
}
