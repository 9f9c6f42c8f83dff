// symmetric_ce on the per-sample contract (after prelude.wgsl and sample_prelude.wgsl).
// lp = log_softmax(s), lq = log_softmax(t), p, q their exps:
// l = -(1-a) sum q lp - a sum p lq; dl/ds = (1-a)(p - q) - a p (lq - B), B = sum p lq;
// dl/dt = a (q - p) - (1-a) q (lp - A), A = sum q lp.
@group(0) @binding(1) var<storage, read> s_in: array<f32>;
@group(0) @binding(2) var<storage, read> t_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> g_s: array<f32>;
@group(0) @binding(5) var<storage, read_write> g_t: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let classes = lk_dim(LK_DIM_C);
    let al = lk_param(LK_P_ALPHA);
    let base = i * classes;
    var es = lk_lse0();
    var et = lk_lse0();
    for (var c = 0u; c < classes; c++) {
        es = lk_lse_add(es, s_in[base + c]);
        et = lk_lse_add(et, t_in[base + c]);
    }
    let ls = lk_lse(es);
    let lt = lk_lse(et);
    var qa = lk_sum0();
    var pb = lk_sum0();
    for (var c = 0u; c < classes; c++) {
        let lp = s_in[base + c] - ls;
        let lq = t_in[base + c] - lt;
        qa = lk_sum_add(qa, exp(lq) * lp);
        pb = lk_sum_add(pb, exp(lp) * lq);
    }
    lk_loss[i] = -(1.0 - al) * qa.s - al * pb.s;
    for (var c = 0u; c < classes; c++) {
        let lp = s_in[base + c] - ls;
        let lq = t_in[base + c] - lt;
        let p = exp(lp);
        let q = exp(lq);
        g_s[base + c] = (1.0 - al) * (p - q) - al * p * (lq - pb.s);
        g_t[base + c] = al * (q - p) - (1.0 - al) * q * (lp - qa.s);
    }
}
