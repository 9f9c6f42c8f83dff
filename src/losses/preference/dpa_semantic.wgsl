// dpa_semantic under the per-sample contract v1 (after the losskit prelude and
// family.wgsl): one invocation per pair. Inputs: policy chosen / rejected, reference chosen /
// rejected (optional), chosen / rejected lengths (optional). core and cond are 4-bit world
// masks (core & cond != 0 checked by the host).
// The host has checked the odds link's average log-probs are negative.
@group(0) @binding(1) var<storage, read> pc: array<f32>;
@group(0) @binding(2) var<storage, read> pr: array<f32>;
@group(0) @binding(3) var<storage, read> rc: array<f32>;
@group(0) @binding(4) var<storage, read> rr: array<f32>;
@group(0) @binding(5) var<storage, read> len_w: array<f32>;
@group(0) @binding(6) var<storage, read> len_l: array<f32>;
@group(0) @binding(7) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(8) var<storage, read_write> g_pc: array<f32>;
@group(0) @binding(9) var<storage, read_write> g_pr: array<f32>;

// (z, dz/dlogps) of one response.
fn link(lp: f32, rf: f32, len: f32) -> vec2<f32> {
    let beta = lk_param(LK_P_BETA);
    if (u32(lk_param(LK_P_LINK)) == LK_E_LINK_RATIO) {
        return vec2<f32>(beta * (lp - rf), beta);
    }
    let a = lp / len;
    return vec2<f32>(a - lk_log1mexp(a), -1.0 / (len * lk_expm1(a)));
}

// log sigma(z) of a true proposition, log sigma(-z) of a false one.
fn side(b: bool, z: f32) -> f32 {
    return lk_log_sigmoid(select(-z, z, b));
}

// d side / dz.
fn dside(b: bool, z: f32) -> f32 {
    return select(-lk_sigmoid(z), lk_sigmoid(-z), b);
}

// Max-shifted log-sum-exp of omega over the worlds of mask (never empty here) and the max.
fn masked_lse(omega: array<f32, 4>, mask: u32) -> f32 {
    var m = LK_NEG_BIG;
    for (var k = 0u; k < 4u; k++) {
        if (((mask >> k) & 1u) == 1u) {
            m = max(m, omega[k]);
        }
    }
    var s = 0.0;
    for (var k = 0u; k < 4u; k++) {
        if (((mask >> k) & 1u) == 1u) {
            s += exp(omega[k] - m);
        }
    }
    return m + log(s);
}

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let core = u32(lk_param(LK_P_CORE));
    let cond = u32(lk_param(LK_P_COND));
    let num = core & cond;
    var rw = 0.0;
    var rl = 0.0;
    if (lk_present(LK_IN_REF_CHOSEN_LOGPS)) {
        rw = rc[i];
        rl = rr[i];
    }
    var lw = 1.0;
    var ll = 1.0;
    if (lk_present(LK_IN_CHOSEN_LEN)) {
        lw = pf_len(len_w[i]);
    }
    if (lk_present(LK_IN_REJECTED_LEN)) {
        ll = pf_len(len_l[i]);
    }
    let w = link(pc[i], rw, lw);
    let l = link(pr[i], rl, ll);
    // World k = 2 b_w + b_l.
    var omega: array<f32, 4>;
    for (var k = 0u; k < 4u; k++) {
        omega[k] = side((k & 2u) != 0u, w.x) + side((k & 1u) != 0u, l.x);
    }
    let ld = masked_lse(omega, cond);
    let ln = masked_lse(omega, num);
    var gw = 0.0;
    var gl = 0.0;
    for (var k = 0u; k < 4u; k++) {
        var q = 0.0;
        if (((cond >> k) & 1u) == 1u) {
            q += exp(omega[k] - ld);
        }
        if (((num >> k) & 1u) == 1u) {
            q -= exp(omega[k] - ln);
        }
        gw += q * dside((k & 2u) != 0u, w.x);
        gl += q * dside((k & 1u) != 0u, l.x);
    }
    lk_loss[i] = ld - ln;
    g_pc[i] = gw * w.y;
    g_pr[i] = gl * l.y;
}
