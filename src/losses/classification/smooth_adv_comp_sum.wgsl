// smooth_adv_comp_sum on the per-sample contract (after prelude.wgsl, sample_prelude.wgsl
// and comp_sum.wgsl, whose comp_sum_coef gives phi(L) and phi'(L) of the member; its row-wise
// lk_row_loss is unused here). d = adv - z, r_c = d_y - d_c,
// R = M sqrt(sum (r_c/M)^2) with M = max |r_c|, S = sum r_c; l = phi(L) + nu R;
// dl/dadv_c = nu ([c=y] S - r_c)/R (0 when R = 0); dl/dz_c = phi'(L)(p_c - [c=y]) - dl/dadv_c.
@group(0) @binding(1) var<storage, read> z_in: array<f32>;
@group(0) @binding(2) var<storage, read> a_in: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<i32>;
@group(0) @binding(4) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> g_z: array<f32>;
@group(0) @binding(6) var<storage, read_write> g_a: array<f32>;

// The row-wise skeleton's interface of comp_sum.wgsl (only lse, zy are read).
struct LkRowStats {
    lse: f32,
    zy: f32,
    swz: f32,
    wsum: f32,
    wy: f32,
    classes: f32,
}

struct LkRowCoef {
    loss: f32,
    a: f32,
    b: f32,
    d: f32,
}

// comp_sum's only parameter: k = 1 - tau of the member `kind` (as Member::from_params).
fn member_k() -> f32 {
    let kind = u32(lk_param(LK_P_KIND));
    var tau = 1.0;
    if (kind == LK_E_KIND_SUM_EXP) {
        tau = 0.0;
    } else if (kind == LK_E_KIND_GCE) {
        tau = 1.0 + lk_param(LK_P_Q);
    } else if (kind == LK_E_KIND_MAE) {
        tau = 2.0;
    } else if (kind == LK_E_KIND_GENERAL) {
        tau = lk_param(LK_P_TAU);
    }
    return 1.0 - tau;
}

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
            g_a[base + c] = 0.0;
        }
        return;
    }
    let y = u32(tg);
    let nu = lk_param(LK_P_NU);
    var e = lk_lse0();
    for (var c = 0u; c < classes; c++) {
        e = lk_lse_add(e, z_in[base + c]);
    }
    let lse = lk_lse(e);
    let rc = comp_sum_coef(LkRowStats(lse, z_in[base + y], 0.0, 0.0, 0.0, f32(classes)), member_k());
    let dy = a_in[base + y] - z_in[base + y];
    var big = 0.0;
    for (var c = 0u; c < classes; c++) {
        big = max(big, abs(dy - (a_in[base + c] - z_in[base + c])));
    }
    var norm = 0.0;
    var sr = lk_sum0();
    if (big > 0.0) {
        var ss = lk_sum0();
        for (var c = 0u; c < classes; c++) {
            let r = dy - (a_in[base + c] - z_in[base + c]);
            let u = r / big;
            ss = lk_sum_add(ss, u * u);
            sr = lk_sum_add(sr, r);
        }
        norm = big * sqrt(ss.s);
    }
    lk_loss[i] = rc.loss + nu * norm;
    var coef = 0.0;
    if (norm > 0.0) {
        coef = nu / norm;
    }
    for (var c = 0u; c < classes; c++) {
        let zc = z_in[base + c];
        let r = dy - (a_in[base + c] - zc);
        let is_y = c == y;
        let dr = coef * (select(0.0, sr.s, is_y) - r);
        g_a[base + c] = dr;
        g_z[base + c] = rc.a * (exp(zc - lse) - select(0.0, 1.0, is_y)) - dr;
    }
}
