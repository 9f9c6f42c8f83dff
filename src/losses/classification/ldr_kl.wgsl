// ldr_kl on the per-sample contract (after prelude.wgsl, sample_prelude.wgsl, ldr.wgsl).
// l = lam (LSE(w) - log C).
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> g_logits: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let classes = lk_dim(LK_DIM_C);
    let base = i * classes;
    let t = labels[i];
    if (lk_ignored(t, classes, lk_param(LK_P_IGNORE_INDEX))) {
        ldr_zero_row(i, base, classes);
        return;
    }
    let y = u32(t);
    let lam = lk_param(LK_P_LAM);
    let margin = lk_param(LK_P_MARGIN);
    let norm = u32(lk_param(LK_P_NORMALIZE));
    let inv_lam = 1.0 / lam;
    let den = ldr_den(base, classes, norm);
    let e = ldr_lse(base, classes, y, norm, den, margin, inv_lam);
    lk_loss[i] = ldr_value(e, classes, lam);
    ldr_backward(base, classes, y, norm, den, margin, inv_lam, lk_lse(e));
}
