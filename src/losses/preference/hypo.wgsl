// hypo under the per-sample contract v1 (after the losskit prelude and family.wgsl): one
// invocation per pair. Inputs: policy chosen / rejected, reference chosen / rejected
// log-probs [B], online and online reference log-probs [B, K] (K >= 2, checked by the
// host). The online gradient is the leave-one-out REINFORCE estimator, as on the CPU.
@group(0) @binding(1) var<storage, read> pc: array<f32>;
@group(0) @binding(2) var<storage, read> pr: array<f32>;
@group(0) @binding(3) var<storage, read> rc: array<f32>;
@group(0) @binding(4) var<storage, read> rr: array<f32>;
@group(0) @binding(5) var<storage, read> online: array<f32>;
@group(0) @binding(6) var<storage, read> online_ref: array<f32>;
@group(0) @binding(7) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(8) var<storage, read_write> g_pc: array<f32>;
@group(0) @binding(9) var<storage, read_write> g_pr: array<f32>;
@group(0) @binding(10) var<storage, read_write> g_online: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let beta = lk_param(LK_P_BETA);
    let lam = lk_param(LK_P_LAM);
    let k = lk_dim(LK_DIM_K);
    let kf = f32(k);
    let x = beta * ((pc[i] - rc[i]) - (pr[i] - rr[i]));
    let gd = -beta * lk_sigmoid(-x);
    g_pc[i] = gd;
    g_pr[i] = -gd;
    // Blocked sum of kappa_j = online_j - online_ref_j.
    let base = i * k;
    var acc = lk_acc0();
    for (var j = 0u; j < k; j++) {
        acc = lk_acc_add(acc, online[base + j] - online_ref[base + j]);
    }
    let total = lk_acc(acc);
    for (var j = 0u; j < k; j++) {
        let kj = online[base + j] - online_ref[base + j];
        g_online[base + j] = lam / kf * (kj - (total - kj) / (kf - 1.0));
    }
    lk_loss[i] = lk_softplus(-x) + lam * total / kf;
}
