// harmonic: the per-row part on the GPU (after the losskit prelude). One workgroup per row
// of the raw pairwise reductions [N, C] (from the tiled pairwise kernels): distances,
// logits -n log d, the row's log-sum-exp, the loss, and the backward coefficients written
// over the raw values (a1 into raw, a2 into raw2 for Bray-Curtis).
//
// Accuracy: the log-sum-exp is split as m + log1p(S) with S the sum over every class but
// the (first) arg-max, so that p_y - 1 = -S / (1 + S) and the loss log1p(S) keep their
// relative precision when the target's probability is close to 1.

struct HU {
    rows: u32,
    classes: u32,
    want_grad: u32,
    pad: u32,
    n: f32,
    eps: f32,
    p: f32,
    pad2: f32,
}

@group(0) @binding(0) var<uniform> h: HU;
@group(0) @binding(1) var<storage, read_write> raw: array<f32>;
@group(0) @binding(2) var<storage, read_write> raw2: array<f32>;
@group(0) @binding(3) var<storage, read> tgt: array<i32>;
@group(0) @binding(4) var<storage, read> scl: array<f32>;
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;

// Metric index in the spec's enum order.
override METRIC: u32 = 0u;

const HW: u32 = 256u;

var<workgroup> wm: array<f32, 256>;
var<workgroup> wk: array<u32, 256>;
var<workgroup> wsum: array<f32, 256>;

fn dist(r: f32, r2: f32) -> f32 {
    switch METRIC {
        case 2u: { return lk_pow0(r, 1.0 / h.p) + h.eps; }
        case 5u: { return r / (r2 + h.eps) + h.eps; }
        case 8u: { return sqrt(max(r, 0.0) + h.eps); }
        default: { return r + h.eps; }
    }
}

@compute @workgroup_size(256)
fn rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = wid.y * nwg.x + wid.x;
    if (i >= h.rows) {
        return;
    }
    let cn = h.classes;
    let base = i * cn;
    // Row maximum of the logits and its first arg-max.
    var m = LK_NEG_BIG;
    var km = 0xffffffffu;
    for (var j = li; j < cn; j += HW) {
        let l = -h.n * log(dist(raw[base + j], raw2[base + j]));
        if (l > m) {
            m = l;
            km = j;
        }
    }
    wm[li] = m;
    wk[li] = km;
    workgroupBarrier();
    for (var s = HW / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            let m2 = wm[li + s];
            let k2 = wk[li + s];
            if (m2 > wm[li] || (m2 == wm[li] && k2 < wk[li])) {
                wm[li] = m2;
                wk[li] = k2;
            }
        }
        workgroupBarrier();
    }
    let mx = wm[0];
    let kx = wk[0];
    // S = sum over the other classes of exp(l - m).
    var acc = 0.0;
    for (var j = li; j < cn; j += HW) {
        if (j != kx) {
            let l = -h.n * log(dist(raw[base + j], raw2[base + j]));
            acc += lk_exp_sub(l, mx);
        }
    }
    wsum[li] = acc;
    workgroupBarrier();
    for (var s = HW / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            wsum[li] = wsum[li] + wsum[li + s];
        }
        workgroupBarrier();
    }
    let ss = wsum[0];
    let lp1 = lk_log1p(ss);
    let lse = mx + lp1;
    let y = tgt[i];
    let live = y >= 0;
    let yu = u32(max(y, 0));
    if (li == 0u) {
        var l = 0.0;
        if (live) {
            let ly = -h.n * log(dist(raw[base + yu], raw2[base + yu]));
            if (yu == kx) {
                l = lp1;
            } else {
                l = (mx - ly) + lp1;
            }
        }
        loss[i] = l;
    }
    if (h.want_grad == 0u) {
        return;
    }
    let sc = scl[i];
    for (var j = li; j < cn; j += HW) {
        let r = raw[base + j];
        let r2 = raw2[base + j];
        var c1 = 0.0;
        var c2 = 0.0;
        if (live) {
            let d = dist(r, r2);
            let l = -h.n * log(d);
            var pm: f32;
            if (j == yu) {
                if (yu == kx) {
                    pm = -ss / (1.0 + ss);
                } else {
                    pm = exp(min(l - lse, 0.0)) - 1.0;
                }
            } else {
                pm = exp(min(l - lse, 0.0));
            }
            let g = sc * -h.n * pm / d;
            switch METRIC {
                case 2u: {
                    let rr = lk_pow0(r, 1.0 / h.p);
                    if (rr > 0.0) {
                        c1 = g * pow(rr, 1.0 - h.p);
                    }
                }
                case 4u: {
                    c1 = -g;
                }
                case 5u: {
                    let den = r2 + h.eps;
                    c1 = g / den;
                    c2 = -g * r / (den * den);
                }
                case 8u: {
                    if (r > 0.0) {
                        c1 = g / d;
                    }
                }
                default: {
                    c1 = g;
                }
            }
        }
        raw[base + j] = c1;
        if (METRIC == 5u) {
            raw2[base + j] = c2;
        }
    }
}
