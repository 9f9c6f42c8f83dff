// dpo under the per-sample contract v1, after the losskit prelude and family.wgsl. One
// invocation per pair. Inputs: policy chosen / rejected, reference chosen / rejected,
// chosen / rejected length, pair weight (the last four optional). Every loss type is a case
// of one switch, as in dpo.rs.
@group(0) @binding(1) var<storage, read> pc: array<f32>;
@group(0) @binding(2) var<storage, read> pr: array<f32>;
@group(0) @binding(3) var<storage, read> rc: array<f32>;
@group(0) @binding(4) var<storage, read> rr: array<f32>;
@group(0) @binding(5) var<storage, read> len_w: array<f32>;
@group(0) @binding(6) var<storage, read> len_l: array<f32>;
@group(0) @binding(7) var<storage, read> pair_w: array<f32>;
@group(0) @binding(8) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(9) var<storage, read_write> g_pc: array<f32>;
@group(0) @binding(10) var<storage, read_write> g_pr: array<f32>;

// Loss, d/ds_w, d/ds_l, and the direct d/dlr_w, d/dlr_l of the apo terms.
struct Terms {
    loss: f32,
    gw: f32,
    gl: f32,
    dw: f32,
    dl: f32,
}

// A loss of the margin x = beta (s_w - s_l) given as (loss, dloss/dx).
fn on_margin(lg: vec2<f32>, beta: f32) -> Terms {
    return Terms(lg.x, beta * lg.y, -beta * lg.y, 0.0, 0.0);
}

// Score phi(r) and phi'(r) of the f-divergence f (exponents clamped: no inf in a kernel).
fn phi(f: u32, alpha: f32, r: f32) -> vec2<f32> {
    switch f {
        case LK_E_F_DIVERGENCE_FORWARD_KL: {
            let e = exp(min(-r, 88.0));
            return vec2<f32>(-e, e);
        }
        case LK_E_F_DIVERGENCE_JS_DIVERGENCE: {
            return vec2<f32>(lk_log_sigmoid(r), lk_sigmoid(-r));
        }
        case LK_E_F_DIVERGENCE_ALPHA_DIVERGENCE: {
            let t = -alpha * r;
            let e = exp(min(t, 80.0));
            return vec2<f32>(-e / alpha, select(0.0, e, t < 80.0));
        }
        case LK_E_F_DIVERGENCE_REVERSE_KL, default: {
            return vec2<f32>(r, 1.0);
        }
    }
}

fn loss_type(kind: u32, sw: f32, sl: f32, lrw: f32, lrl: f32, lw: f32, ll: f32) -> Terms {
    let beta = lk_param(LK_P_BETA);
    let eps = lk_param(LK_P_LABEL_SMOOTHING);
    let x = beta * (sw - sl);
    switch kind {
        case LK_E_LOSS_TYPE_SIGMOID: {
            // sigmoid (cDPO smoothing eps)
            let lg = vec2<f32>(
                (1.0 - eps) * lk_softplus(-x) + eps * lk_softplus(x),
                -(1.0 - eps) * lk_sigmoid(-x) + eps * lk_sigmoid(x),
            );
            return on_margin(lg, beta);
        }
        case LK_E_LOSS_TYPE_HINGE: {
            // hinge
            return on_margin(vec2<f32>(max(1.0 - x, 0.0), select(0.0, -1.0, x < 1.0)), beta);
        }
        case LK_E_LOSS_TYPE_IPO: {
            // ipo
            let d = sw / lw - sl / ll - 1.0 / (2.0 * beta);
            return Terms(d * d, 2.0 * d / lw, -2.0 * d / ll, 0.0, 0.0);
        }
        case LK_E_LOSS_TYPE_EXO_PAIR: {
            // exo_pair
            let p = lk_sigmoid(x);
            let q = lk_sigmoid(-x);
            let l = p * (lk_log_sigmoid(x) - lk_log1p(-eps)) + q * (lk_log_sigmoid(-x) - log(eps));
            return on_margin(vec2<f32>(l, p * q * (x - log((1.0 - eps) / eps))), beta);
        }
        case LK_E_LOSS_TYPE_NCA_PAIR: {
            // nca_pair
            let a = beta * sw;
            let b = beta * sl;
            return Terms(
                lk_softplus(-a) + 0.5 * lk_softplus(a) + 0.5 * lk_softplus(b),
                beta * (-lk_sigmoid(-a) + 0.5 * lk_sigmoid(a)),
                0.5 * beta * lk_sigmoid(b),
                0.0,
                0.0,
            );
        }
        case LK_E_LOSS_TYPE_ROBUST: {
            // robust
            let k = 1.0 / (1.0 - 2.0 * eps);
            let lg = vec2<f32>(
                ((1.0 - eps) * lk_softplus(-x) - eps * lk_softplus(x)) * k,
                (-(1.0 - eps) * lk_sigmoid(-x) - eps * lk_sigmoid(x)) * k,
            );
            return on_margin(lg, beta);
        }
        case LK_E_LOSS_TYPE_BCO_PAIR: {
            // bco_pair
            let delta = lk_param(LK_P_BCO_DELTA);
            let a = beta * sw - delta;
            let b = beta * sl - delta;
            return Terms(
                lk_softplus(-a) + lk_softplus(b),
                -beta * lk_sigmoid(-a),
                beta * lk_sigmoid(b),
                0.0,
                0.0,
            );
        }
        case LK_E_LOSS_TYPE_SPPO_HARD: {
            // sppo_hard
            let h = 1.0 / (2.0 * beta);
            let a = sw - h;
            let b = sl + h;
            return Terms(a * a + b * b, 2.0 * a, 2.0 * b, 0.0, 0.0);
        }
        case LK_E_LOSS_TYPE_APO_ZERO: {
            // apo_zero
            let pw = lk_sigmoid(beta * lrw);
            let pl = lk_sigmoid(beta * lrl);
            let dw = beta * pw * lk_sigmoid(-beta * lrw);
            let dl = beta * pl * lk_sigmoid(-beta * lrl);
            return Terms(1.0 - pw + pl, 0.0, 0.0, -dw, dl);
        }
        case LK_E_LOSS_TYPE_APO_DOWN: {
            // apo_down
            let pw = lk_sigmoid(beta * lrw);
            let dw = beta * pw * lk_sigmoid(-beta * lrw);
            let p = lk_sigmoid(x);
            var t = on_margin(vec2<f32>(lk_sigmoid(-x), -p * lk_sigmoid(-x)), beta);
            t.loss += pw;
            t.dw = dw;
            return t;
        }
        case LK_E_LOSS_TYPE_DISCOPOP: {
            // discopop: mu = sigmoid(x / tau), e = exp(log sigmoid(x / tau) - x)
            let tau = lk_param(LK_P_DISCOPOP_TAU);
            let mu = lk_sigmoid(x / tau);
            let nmu = lk_sigmoid(-x / tau);
            let e = exp(min(lk_log_sigmoid(x / tau) - x, 88.0));
            let sp = lk_softplus(-x);
            let l = nmu * sp + e;
            let g = -(mu * nmu / tau) * sp - nmu * lk_sigmoid(-x) + e * (nmu / tau - 1.0);
            return on_margin(vec2<f32>(l, g), beta);
        }
        case LK_E_LOSS_TYPE_SIGMOID_NORM, default: {
            let xn = beta * (sw / lw - sl / ll);
            let g = -beta * lk_sigmoid(-xn);
            return Terms(lk_softplus(-xn), g / lw, -g / ll, 0.0, 0.0);
        }
    }
}

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    var lrw = pc[i];
    var lrl = pr[i];
    if (lk_present(LK_IN_REF_CHOSEN_LOGPS)) {
        lrw -= rc[i];
        lrl -= rr[i];
    }
    var lw = 1.0;
    var ll = 1.0;
    if (lk_present(LK_IN_CHOSEN_LEN)) {
        lw = pf_len(len_w[i]);
    }
    if (lk_present(LK_IN_REJECTED_LEN)) {
        ll = pf_len(len_l[i]);
    }
    var w = 1.0;
    if (lk_present(LK_IN_PAIR_WEIGHT)) {
        w = pair_w[i];
    }
    let f = u32(lk_param(LK_P_F_DIVERGENCE));
    let alpha = lk_param(LK_P_F_ALPHA);
    let sw = phi(f, alpha, lrw);
    let sl = phi(f, alpha, lrl);
    let t = loss_type(u32(lk_param(LK_P_LOSS_TYPE)), sw.x, sl.x, lrw, lrl, lw, ll);
    lk_loss[i] = w * t.loss;
    g_pc[i] = w * (t.gw * sw.y + t.dw);
    g_pr[i] = w * (t.gl * sl.y + t.dl);
}
