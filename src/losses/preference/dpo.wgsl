// dpo under the per-sample contract v1, after the losskit prelude and family.wgsl. One
// invocation per pair. Inputs 0..6: policy chosen / rejected, reference chosen / rejected,
// chosen / rejected length, pair weight (the last four optional). Parameters: 0 loss_type
// (choice index), 1 beta, 2 label_smoothing, 3 f_divergence (choice index), 4 f_alpha,
// 5 discopop_tau, 6 bco_delta. Every loss type is a case of one switch, as in dpo.rs.
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
        case 1u: {
            let e = exp(min(-r, 88.0));
            return vec2<f32>(-e, e);
        }
        case 2u: {
            return vec2<f32>(pf_log_sigmoid(r), pf_sigmoid(-r));
        }
        case 3u: {
            let t = -alpha * r;
            let e = exp(min(t, 80.0));
            return vec2<f32>(-e / alpha, select(0.0, e, t < 80.0));
        }
        default: {
            return vec2<f32>(r, 1.0);
        }
    }
}

fn loss_type(kind: u32, sw: f32, sl: f32, lrw: f32, lrl: f32, lw: f32, ll: f32) -> Terms {
    let beta = pf_param(1u);
    let eps = pf_param(2u);
    let x = beta * (sw - sl);
    switch kind {
        case 0u: {
            // sigmoid (cDPO smoothing eps)
            let lg = vec2<f32>(
                (1.0 - eps) * pf_softplus(-x) + eps * pf_softplus(x),
                -(1.0 - eps) * pf_sigmoid(-x) + eps * pf_sigmoid(x),
            );
            return on_margin(lg, beta);
        }
        case 1u: {
            // hinge
            return on_margin(vec2<f32>(max(1.0 - x, 0.0), select(0.0, -1.0, x < 1.0)), beta);
        }
        case 2u: {
            // ipo
            let d = sw / lw - sl / ll - 1.0 / (2.0 * beta);
            return Terms(d * d, 2.0 * d / lw, -2.0 * d / ll, 0.0, 0.0);
        }
        case 3u: {
            // exo_pair
            let p = pf_sigmoid(x);
            let q = pf_sigmoid(-x);
            let l = p * (pf_log_sigmoid(x) - pf_log1p(-eps)) + q * (pf_log_sigmoid(-x) - log(eps));
            return on_margin(vec2<f32>(l, p * q * (x - log((1.0 - eps) / eps))), beta);
        }
        case 4u: {
            // nca_pair
            let a = beta * sw;
            let b = beta * sl;
            return Terms(
                pf_softplus(-a) + 0.5 * pf_softplus(a) + 0.5 * pf_softplus(b),
                beta * (-pf_sigmoid(-a) + 0.5 * pf_sigmoid(a)),
                0.5 * beta * pf_sigmoid(b),
                0.0,
                0.0,
            );
        }
        case 5u: {
            // robust
            let k = 1.0 / (1.0 - 2.0 * eps);
            let lg = vec2<f32>(
                ((1.0 - eps) * pf_softplus(-x) - eps * pf_softplus(x)) * k,
                (-(1.0 - eps) * pf_sigmoid(-x) - eps * pf_sigmoid(x)) * k,
            );
            return on_margin(lg, beta);
        }
        case 6u: {
            // bco_pair
            let delta = pf_param(6u);
            let a = beta * sw - delta;
            let b = beta * sl - delta;
            return Terms(
                pf_softplus(-a) + pf_softplus(b),
                -beta * pf_sigmoid(-a),
                beta * pf_sigmoid(b),
                0.0,
                0.0,
            );
        }
        case 7u: {
            // sppo_hard
            let h = 1.0 / (2.0 * beta);
            let a = sw - h;
            let b = sl + h;
            return Terms(a * a + b * b, 2.0 * a, 2.0 * b, 0.0, 0.0);
        }
        case 8u: {
            // apo_zero
            let pw = pf_sigmoid(beta * lrw);
            let pl = pf_sigmoid(beta * lrl);
            let dw = beta * pw * pf_sigmoid(-beta * lrw);
            let dl = beta * pl * pf_sigmoid(-beta * lrl);
            return Terms(1.0 - pw + pl, 0.0, 0.0, -dw, dl);
        }
        case 9u: {
            // apo_down
            let pw = pf_sigmoid(beta * lrw);
            let dw = beta * pw * pf_sigmoid(-beta * lrw);
            let p = pf_sigmoid(x);
            var t = on_margin(vec2<f32>(pf_sigmoid(-x), -p * pf_sigmoid(-x)), beta);
            t.loss += pw;
            t.dw = dw;
            return t;
        }
        case 10u: {
            // discopop: mu = sigmoid(x / tau), e = exp(log sigmoid(x / tau) - x)
            let tau = pf_param(5u);
            let mu = pf_sigmoid(x / tau);
            let nmu = pf_sigmoid(-x / tau);
            let e = exp(min(pf_log_sigmoid(x / tau) - x, 88.0));
            let sp = pf_softplus(-x);
            let l = nmu * sp + e;
            let g = -(mu * nmu / tau) * sp - nmu * pf_sigmoid(-x) + e * (nmu / tau - 1.0);
            return on_margin(vec2<f32>(l, g), beta);
        }
        default: {
            // sigmoid_norm
            let xn = beta * (sw / lw - sl / ll);
            let g = -beta * pf_sigmoid(-xn);
            return Terms(pf_softplus(-xn), g / lw, -g / ll, 0.0, 0.0);
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
    if (pf_present(2u)) {
        lrw -= rc[i];
        lrl -= rr[i];
    }
    var lw = 1.0;
    var ll = 1.0;
    if (pf_present(4u)) {
        lw = pf_len(len_w[i]);
    }
    if (pf_present(5u)) {
        ll = pf_len(len_l[i]);
    }
    var w = 1.0;
    if (pf_present(6u)) {
        w = pair_w[i];
    }
    let f = u32(pf_param(3u));
    let alpha = pf_param(4u);
    let sw = phi(f, alpha, lrw);
    let sl = phi(f, alpha, lrl);
    let t = loss_type(u32(pf_param(0u)), sw.x, sl.x, lrw, lrl, lw, ll);
    lk_loss[i] = w * t.loss;
    g_pc[i] = w * (t.gw * sw.y + t.dw);
    g_pr[i] = w * (t.gl * sl.y + t.dl);
}
