// spherical_z_loss on the per-sample contract (after prelude.wgsl and sample_prelude.wgsl).
// Row o: mu = mean(o), sigma = population
// standard deviation (two passes, blocked sums), st = sigma + 1e-12, zy = (o_y - mu)/st,
// t = a (b - zy), l = softplus(t)/a, dl/do_k = -(sigmoid(t)/st) ([k=y] - 1/C
// - zy (o_k - mu)/(C sigma)). A row whose logits are all equal has sigma = 0 on the f64
// path: it is detected exactly (max == min), zy = 0 and the gradient is zero.
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
        lk_loss[i] = 0.0;
        for (var c = 0u; c < classes; c++) {
            g_logits[base + c] = 0.0;
        }
        return;
    }
    let y = u32(t);
    let a = lk_param(LK_P_A);
    let b = lk_param(LK_P_B);
    let cn = f32(classes);
    var sum = lk_sum0();
    var lo = logits[base];
    var hi = logits[base];
    for (var c = 0u; c < classes; c++) {
        let v = logits[base + c];
        sum = lk_sum_add(sum, v);
        lo = min(lo, v);
        hi = max(hi, v);
    }
    let mu = sum.s / cn;
    if (hi == lo) {
        lk_loss[i] = lk_softplus(a * b) / a;
        for (var c = 0u; c < classes; c++) {
            g_logits[base + c] = 0.0;
        }
        return;
    }
    var ss = lk_sum0();
    for (var c = 0u; c < classes; c++) {
        let d = logits[base + c] - mu;
        ss = lk_sum_add(ss, d * d);
    }
    let sigma = sqrt(ss.s / cn);
    let st = sigma + 1e-12;
    let zy = (logits[base + y] - mu) / st;
    let tt = a * (b - zy);
    lk_loss[i] = lk_softplus(tt) / a;
    let k0 = -lk_sigmoid(tt) / st;
    let k1 = zy / (cn * sigma);
    let inv_c = 1.0 / cn;
    for (var c = 0u; c < classes; c++) {
        let e = select(0.0, 1.0, c == y);
        g_logits[base + c] = k0 * (e - inv_c - k1 * (logits[base + c] - mu));
    }
}
