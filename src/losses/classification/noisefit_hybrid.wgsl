// noisefit_hybrid on the per-sample contract (after prelude.wgsl and sample_prelude.wgsl).
// lt = log softmax(z/T), l1 = log softmax(n1), l2 = log softmax(n2),
// v = lt - (l1 + l2)/2, w = l2 - l1; l = a (LSE(z) - z_y) + (1-a) sum t v + lc sum q2 w;
// dl/dz = a (softmax(z) - e_y) + [not detached] ((1-a)/T) t (v - sum t v);
// dl/dn1 = (1-a)/2 (q1 - t) + lc (q1 - q2); dl/dn2 = (1-a)/2 (q2 - t) + lc q2 (w - sum q2 w).
@group(0) @binding(1) var<storage, read> z_in: array<f32>;
@group(0) @binding(2) var<storage, read> n1_in: array<f32>;
@group(0) @binding(3) var<storage, read> n2_in: array<f32>;
@group(0) @binding(4) var<storage, read> labels: array<i32>;
@group(0) @binding(5) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(6) var<storage, read_write> g_z: array<f32>;
@group(0) @binding(7) var<storage, read_write> g_n1: array<f32>;
@group(0) @binding(8) var<storage, read_write> g_n2: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let classes = lk_dim(LK_DIM_C);
    let base = i * classes;
    let tg = labels[i];
    if (lk_ignored(tg, classes, lk_param(LK_P_IGNORE_INDEX))) {
        lk_loss[i] = 0.0;
        for (var c = 0u; c < classes; c++) {
            g_z[base + c] = 0.0;
            g_n1[base + c] = 0.0;
            g_n2[base + c] = 0.0;
        }
        return;
    }
    let y = u32(tg);
    let al = lk_param(LK_P_ALPHA);
    let lc = lk_param(LK_P_LAMBDA_CONSISTENCY);
    let k = 1.0 / lk_param(LK_P_TEMPERATURE);
    let detach = lk_param(LK_P_DETACH_TARGETS) != 0.0;
    var e0 = lk_lse0();
    var et = lk_lse0();
    var e1 = lk_lse0();
    var e2 = lk_lse0();
    for (var c = 0u; c < classes; c++) {
        let zc = z_in[base + c];
        e0 = lk_lse_add(e0, zc);
        et = lk_lse_add(et, zc * k);
        e1 = lk_lse_add(e1, n1_in[base + c]);
        e2 = lk_lse_add(e2, n2_in[base + c]);
    }
    let l0 = lk_lse(e0);
    let ltl = lk_lse(et);
    let l1l = lk_lse(e1);
    let l2l = lk_lse(e2);
    var soft = lk_sum0();
    var cons = lk_sum0();
    for (var c = 0u; c < classes; c++) {
        let lt = z_in[base + c] * k - ltl;
        let l1 = n1_in[base + c] - l1l;
        let l2 = n2_in[base + c] - l2l;
        soft = lk_sum_add(soft, exp(lt) * (lt - 0.5 * (l1 + l2)));
        cons = lk_sum_add(cons, exp(l2) * (l2 - l1));
    }
    let ce = l0 - z_in[base + y];
    lk_loss[i] = al * ce + (1.0 - al) * soft.s + lc * cons.s;
    let half = 0.5 * (1.0 - al);
    let soft_k = select((1.0 - al) * k, 0.0, detach);
    for (var c = 0u; c < classes; c++) {
        let zc = z_in[base + c];
        let lt = zc * k - ltl;
        let l1 = n1_in[base + c] - l1l;
        let l2 = n2_in[base + c] - l2l;
        let t = exp(lt);
        let q1 = exp(l1);
        let q2 = exp(l2);
        var hard = exp(zc - l0);
        if (c == y) {
            hard = lk_expm1(min(zc - l0, 0.0));
        }
        let v = lt - 0.5 * (l1 + l2);
        g_z[base + c] = al * hard + soft_k * t * (v - soft.s);
        g_n1[base + c] = half * (q1 - t) + lc * (q1 - q2);
        g_n2[base + c] = half * (q2 - t) + lc * q2 * ((l2 - l1) - cons.s);
    }
}
