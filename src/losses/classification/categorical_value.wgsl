// categorical_value on the per-sample contract (after prelude.wgsl and sample_prelude.wgsl).
// q = the encoding of labels[i] over the M bins (as Encoder::encode in categorical_value.rs);
// l = LSE(z) - sum_j q_j z_j, dl/dz = softmax(z) - q.
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;
@group(0) @binding(3) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> g_logits: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let m = lk_dim(LK_DIM_M);
    let base = i * m;
    let two_hot = u32(lk_param(LK_P_KIND)) == LK_E_KIND_TWO_HOT;
    let v_min = lk_param(LK_P_V_MIN);
    let v_max = lk_param(LK_P_V_MAX);
    let zeta = (v_max - v_min) / f32(m);
    var e = lk_lse0();
    for (var j = 0u; j < m; j++) {
        e = lk_lse_add(e, logits[base + j]);
    }
    let lse = lk_lse(e);
    var qz = lk_sum0();
    if (two_hot) {
        let c0 = v_min + 0.5 * zeta;
        let y = clamp(labels[i], c0, v_min + (f32(m) - 0.5) * zeta);
        let s = (y - c0) / zeta;
        let lo = min(u32(max(floor(s), 0.0)), m - 2u);
        let f = s - f32(lo);
        for (var j = 0u; j < m; j++) {
            var q = 0.0;
            if (j == lo) {
                q = 1.0 - f;
            } else if (j == lo + 1u) {
                q = f;
            }
            let z = logits[base + j];
            qz = lk_sum_add(qz, q * z);
            g_logits[base + j] = exp(z - lse) - q;
        }
    } else {
        let y = clamp(labels[i], v_min, v_max);
        let k = 1.0 / (1.4142135 * lk_param(LK_P_SIGMA_RATIO) * zeta);
        let f0 = lk_erf((v_min - y) * k);
        let total = lk_erf((v_max - y) * k) - f0;
        var prev = f0;
        for (var j = 0u; j < m; j++) {
            var edge = v_max;
            if (j + 1u < m) {
                edge = v_min + f32(j + 1u) * zeta;
            }
            let f = lk_erf((edge - y) * k);
            let q = (f - prev) / total;
            prev = f;
            let z = logits[base + j];
            qz = lk_sum_add(qz, q * z);
            g_logits[base + j] = exp(z - lse) - q;
        }
    }
    lk_loss[i] = lse - qz.s;
}
