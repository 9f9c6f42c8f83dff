// kd_kl under the per-sample kernel contract v1 (backend/wgpu/per_sample.rs), after the
// losskit prelude. One invocation per row; T is the temperature.
// q = softmax(t/T), lq = t/T - LSE(t/T), lp = s/T - LSE(s/T):
// l = T^2 sum_c q_c (lq_c - lp_c) (a class with q_c = 0 adds 0: exp(lq) = 0 times finite),
// dl/ds_c = T (exp(lp_c) - q_c). The host applies the reduction and the upstream gradient.
@group(0) @binding(1) var<storage, read> student: array<f32>;
@group(0) @binding(2) var<storage, read> teacher: array<f32>;
@group(0) @binding(3) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> g_student: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let classes = lk_dim(LK_DIM_C);
    let temp = lk_param(LK_P_TEMPERATURE);
    let k = 1.0 / temp;
    let base = i * classes;
    // One pass: online max and sum of exponentials of both scaled rows.
    var ms = LK_NEG_BIG;
    var ss = 0.0;
    var mt = LK_NEG_BIG;
    var st = 0.0;
    for (var c = 0u; c < classes; c++) {
        let zs = student[base + c] * k;
        let zt = teacher[base + c] * k;
        if (zs > ms) {
            ss = ss * lk_exp_sub(ms, zs) + 1.0;
            ms = zs;
        } else {
            ss += exp(zs - ms);
        }
        if (zt > mt) {
            st = st * lk_exp_sub(mt, zt) + 1.0;
            mt = zt;
        } else {
            st += exp(zt - mt);
        }
    }
    let ls = ms + log(ss);
    let lt = mt + log(st);
    var kl = 0.0;
    for (var c = 0u; c < classes; c++) {
        let lp = student[base + c] * k - ls;
        let lq = teacher[base + c] * k - lt;
        let q = exp(lq);
        kl += q * (lq - lp);
        g_student[base + c] = temp * (exp(lp) - q);
    }
    lk_loss[i] = temp * temp * kl;
}
