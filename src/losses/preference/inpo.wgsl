// inpo under the per-sample contract v1 (after the losskit prelude and family.wgsl): one
// invocation per pair. Inputs: policy, reference and previous-iterate log-probs of the
// chosen and rejected responses.
@group(0) @binding(1) var<storage, read> pc: array<f32>;
@group(0) @binding(2) var<storage, read> pr: array<f32>;
@group(0) @binding(3) var<storage, read> rc: array<f32>;
@group(0) @binding(4) var<storage, read> rr: array<f32>;
@group(0) @binding(5) var<storage, read> prev_c: array<f32>;
@group(0) @binding(6) var<storage, read> prev_r: array<f32>;
@group(0) @binding(7) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(8) var<storage, read_write> g_pc: array<f32>;
@group(0) @binding(9) var<storage, read_write> g_pr: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let eta = lk_param(LK_P_ETA);
    let et = eta * lk_param(LK_P_TAU);
    let h = (pc[i] - pr[i]) - et * (rc[i] - rr[i]) - (1.0 - et) * (prev_c[i] - prev_r[i]);
    let d = h - eta / 2.0;
    lk_loss[i] = d * d;
    g_pc[i] = 2.0 * d;
    g_pr[i] = -2.0 * d;
}
