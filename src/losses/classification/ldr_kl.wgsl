// ldr_kl on the per-sample contract (after prelude.wgsl, sample_prelude.wgsl, ldr.wgsl).
// dims = (N, C); params: lam, margin, normalize, ignore_index. l = lam (LSE(w) - log C).
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
    let classes = lk.dims[0].y;
    let base = i * classes;
    let t = labels[i];
    if (lk_ignored(t, classes, lk_p(3u))) {
        ldr_zero_row(i, base, classes);
        return;
    }
    let y = u32(t);
    let lam = lk_p(0u);
    let margin = lk_p(1u);
    let norm = u32(lk_p(2u));
    let inv_lam = 1.0 / lam;
    let den = ldr_den(base, classes, norm);
    let e = ldr_lse(base, classes, y, norm, den, margin, inv_lam);
    lk_loss[i] = ldr_value(e, classes, lam);
    ldr_backward(base, classes, y, norm, den, margin, inv_lam, lk_lse(e));
}
