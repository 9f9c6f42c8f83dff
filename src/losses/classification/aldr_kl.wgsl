// aldr_kl on the per-sample contract (after prelude.wgsl, sample_prelude.wgsl, ldr.wgsl).
// lambda_prev is optional (lam0 when absent). KL = log C + sum q^ log q^ with
// q^ = softmax(w(lam_bar)); lam = lam0 - lam0 KL / (alpha log C);
// l = lam (LSE(w(lam)) - log C) - (alpha log C / (2 lam0)) (lam - lam0)^2, lam detached.
// lambda_out = lam (ignored rows: lam_bar).
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read> lambda_prev: array<f32>;
@group(0) @binding(4) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> g_logits: array<f32>;
@group(0) @binding(6) var<storage, read_write> lambda_out: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let classes = lk_dim(LK_DIM_C);
    let base = i * classes;
    let lam0 = lk_param(LK_P_LAM0);
    var lam_bar = lam0;
    if (lk_present(LK_IN_LAMBDA_PREV)) {
        lam_bar = lambda_prev[i];
    }
    let t = labels[i];
    if (lk_ignored(t, classes, lk_param(LK_P_IGNORE_INDEX))) {
        ldr_zero_row(i, base, classes);
        lambda_out[i] = lam_bar;
        return;
    }
    let y = u32(t);
    let alpha = lk_param(LK_P_ALPHA);
    let margin = lk_param(LK_P_MARGIN);
    let norm = u32(lk_param(LK_P_NORMALIZE));
    let log_c = log(f32(classes));
    let den = ldr_den(base, classes, norm);
    // q^ = softmax(w(lam_bar)) and its negative entropy.
    let inv_bar = 1.0 / lam_bar;
    let e1 = ldr_lse(base, classes, y, norm, den, margin, inv_bar);
    let lse1 = lk_lse(e1);
    let gy = ldr_g(logits[base + y], norm, den);
    var ne = lk_sum0();
    for (var c = 0u; c < classes; c++) {
        let lq = ldr_w(ldr_g(logits[base + c], norm, den), gy, c == y, margin, inv_bar) - lse1;
        ne = lk_sum_add(ne, exp(lq) * lq);
    }
    let kl = log_c + ne.s;
    let lam = lam0 - lam0 * kl / (alpha * log_c);
    let pull = alpha * log_c / (2.0 * lam0);
    let inv_lam = 1.0 / lam;
    let e2 = ldr_lse(base, classes, y, norm, den, margin, inv_lam);
    lk_loss[i] = ldr_value(e2, classes, lam) - pull * (lam - lam0) * (lam - lam0);
    lambda_out[i] = lam;
    ldr_backward(base, classes, y, norm, den, margin, inv_lam, lk_lse(e2));
}
