// orpo under the per-sample contract v1 (after the losskit prelude and family.wgsl): one
// invocation per pair. Inputs: policy chosen / rejected log-probs, chosen / rejected lengths.
// Parameter 0: lam. The host has checked that both average log-probs are negative.
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
    let lam = lk_param(LK_P_LAM);
    let lw = pf_len(len_w[i]);
    let ll = pf_len(len_l[i]);
    let aw = pc[i] / lw;
    let al = pr[i] / ll;
    // log odds ratio
    let o = (aw - al) - (lk_log1mexp(aw) - lk_log1mexp(al));
    let s = lk_sigmoid(-o);
    lk_loss[i] = -aw + lam * lk_softplus(-o);
    g_pc[i] = (-1.0 + lam * s / lk_expm1(aw)) / lw;
    g_pr[i] = -lam * s / lk_expm1(al) / ll;
}
