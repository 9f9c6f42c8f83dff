// osp_spce under the per-sample contract v1 (after the losskit prelude and family.wgsl): one
// invocation per pair. Inputs: policy chosen / rejected, reference chosen / rejected
// log-probs, strength p (checked in [0, 1] by the host). Parameter 0: beta.
@group(0) @binding(1) var<storage, read> pc: array<f32>;
@group(0) @binding(2) var<storage, read> pr: array<f32>;
@group(0) @binding(3) var<storage, read> rc: array<f32>;
@group(0) @binding(4) var<storage, read> rr: array<f32>;
@group(0) @binding(5) var<storage, read> strength: array<f32>;
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
    let s = strength[i];
    let x = beta * ((pc[i] - rc[i]) - (pr[i] - rr[i]));
    let g = beta * (lk_sigmoid(x) - s);
    lk_loss[i] = s * lk_softplus(-x) + (1.0 - s) * lk_softplus(x);
    g_pc[i] = g;
    g_pr[i] = -g;
}
