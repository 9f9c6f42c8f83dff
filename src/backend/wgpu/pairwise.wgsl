// Tiled pairwise kernels (host side: pairwise.rs), after the losskit prelude.
//
// pair_fwd:  out[i, j] = sum_k term(a_ik, a2_ik, b_jk, b2_jk)   (or the max over k, with
//            its first arg-max in idx), a 16 x 16 output tile per workgroup, looping over
//            k in tiles of 16 held in workgroup memory.
// pair_grad: out[r, k] = sum_p deriv(c1_rp, c2_rp, own_rk, partner_pk), a 16 (rows) x 16
//            (features) tile per workgroup, looping over partners in tiles of 16.
// Both sum in f32 over blocks of 64 (features or partners) and add the block sums into a
// second accumulator, in one fixed order per output element: no atomics, deterministic.
// The rest are small row / element kernels used around them.

struct PwU {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    a_rs: u32,
    a_ks: u32,
    b_rs: u32,
    b_ks: u32,
    c_rs: u32,
    c_ps: u32,
    o_rs: u32,
    pad: u32,
    f0: f32,
    f1: f32,
    f2: f32,
    f3: f32,
}

@group(0) @binding(0) var<uniform> u: PwU;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> a2: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> b2: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> out2: array<f32>;
@group(0) @binding(7) var<storage, read_write> idx: array<u32>;

// The term (pair_fwd) or derivative (pair_grad) selected by the pipeline.
override OP: u32 = 0u;

const PT: u32 = 16u;
const PS: u32 = 17u;
const BLOCK: u32 = 64u;

var<workgroup> ta: array<f32, 272>;
var<workgroup> ta2: array<f32, 272>;
var<workgroup> tb: array<f32, 272>;
var<workgroup> tb2: array<f32, 272>;
var<workgroup> ti: array<u32, 272>;

// Forward terms: 0 product, 1 squared difference, 2 absolute difference, 3 |x - w|^p
// (p = f0), 4 max |x - w| (arg-max), 5 Canberra (eps = f0), 6 quadratic form
// (x2 - w2)(x - w), 7 Bray-Curtis (sum |x - w| into out, sum |x + w| into out2).
fn fwd_term(x: f32, x2: f32, w: f32, w2: f32) -> f32 {
    switch OP {
        case 0u: { return x * w; }
        case 1u: { let d = x - w; return d * d; }
        case 3u: { return lk_pow0(abs(x - w), u.f0); }
        case 5u: { return abs(x - w) / max(abs(x) + abs(w), u.f0); }
        case 6u: { return (x2 - w2) * (x - w); }
        default: { return abs(x - w); }
    }
}

@compute @workgroup_size(16, 16)
fn pair_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = wid.y * PT + lid.y;
    let j = wid.x * PT + lid.x;
    let ra = wid.y * PT + lid.y;
    let rb = wid.x * PT + lid.y;
    var tot = 0.0;
    var blk = 0.0;
    var tot2 = 0.0;
    var blk2 = 0.0;
    var best = -1.0;
    var arg = 0u;
    var k0 = 0u;
    loop {
        if (k0 >= u.k) {
            break;
        }
        let kk = k0 + lid.x;
        var va = 0.0;
        var va2 = 0.0;
        var vb = 0.0;
        var vb2 = 0.0;
        if (kk < u.k && ra < u.m) {
            va = a[ra * u.a_rs + kk * u.a_ks];
            if (OP == 6u) {
                va2 = a2[ra * u.a_rs + kk * u.a_ks];
            }
        }
        if (kk < u.k && rb < u.n) {
            vb = b[rb * u.b_rs + kk * u.b_ks];
            if (OP == 6u) {
                vb2 = b2[rb * u.b_rs + kk * u.b_ks];
            }
        }
        ta[lid.y * PS + lid.x] = va;
        ta2[lid.y * PS + lid.x] = va2;
        tb[lid.y * PS + lid.x] = vb;
        tb2[lid.y * PS + lid.x] = vb2;
        workgroupBarrier();
        let kn = min(PT, u.k - k0);
        for (var q = 0u; q < kn; q++) {
            let x = ta[lid.y * PS + q];
            let w = tb[lid.x * PS + q];
            if (OP == 4u) {
                let v = abs(x - w);
                if (v > best) {
                    best = v;
                    arg = k0 + q;
                }
            } else if (OP == 7u) {
                blk += abs(x - w);
                blk2 += abs(x + w);
            } else {
                blk += fwd_term(x, ta2[lid.y * PS + q], w, tb2[lid.x * PS + q]);
            }
        }
        workgroupBarrier();
        k0 += PT;
        if (k0 % BLOCK == 0u || k0 >= u.k) {
            tot += blk;
            blk = 0.0;
            tot2 += blk2;
            blk2 = 0.0;
        }
    }
    if (i < u.m && j < u.n) {
        let o = i * u.o_rs + j;
        if (OP == 4u) {
            out[o] = select(best, 0.0, u.k == 0u);
            idx[o] = arg;
        } else {
            out[o] = tot;
            if (OP == 7u) {
                out2[o] = tot2;
            }
        }
    }
}

// Derivative terms (x from the left matrix, w from the right): 0 product (dx = c w,
// dw = c x), 1 difference (dx = c s (x - w), s = f0), 2 sign, 3 sign |d|^(p-1) (p = f0),
// 4 sign at the arg-max feature only, 5 Canberra (eps = f0), 6 Bray-Curtis (two
// coefficients). flags bit 0: left (own rows are x) or right (own rows are w).
fn grad_term(left: bool, c1: f32, c2: f32, x: f32, w: f32) -> f32 {
    let d = x - w;
    switch OP {
        case 0u: {
            return select(c1 * x, c1 * w, left);
        }
        case 1u: {
            return select(c1 * u.f0 * (w - x), c1 * u.f0 * d, left);
        }
        case 3u: {
            let v = c1 * sign(d) * lk_pow0(abs(d), u.f0 - 1.0);
            return select(-v, v, left);
        }
        case 5u: {
            let m = abs(x) + abs(w);
            let e = u.f0;
            if (m >= e) {
                if (left) {
                    return c1 * (sign(d) / m - abs(d) * sign(x) / (m * m));
                }
                return c1 * (-sign(d) / m - abs(d) * sign(w) / (m * m));
            }
            if (left) {
                return c1 * sign(d) / e;
            }
            return -c1 * sign(d) / e;
        }
        case 6u: {
            if (left) {
                return c1 * sign(d) + c2 * sign(x + w);
            }
            return -c1 * sign(d) + c2 * sign(x + w);
        }
        default: {
            // 2 and 4.
            return select(-c1 * sign(d), c1 * sign(d), left);
        }
    }
}

// Bindings: a = own matrix (rows m, features k, row stride a_rs), b = partner matrix
// (rows n, row stride b_rs), a2 / b2 = coefficients c1 / c2 of (own r, partner p) at
// r * c_rs + p * c_ps (idx likewise for op 4), out[r * o_rs + k].
@compute @workgroup_size(16, 16)
fn pair_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = wid.y * PT + lid.y;
    let kf = wid.x * PT + lid.x;
    let left = (u.flags & 1u) != 0u;
    var own = 0.0;
    if (r < u.m && kf < u.k) {
        own = a[r * u.a_rs + kf];
    }
    var tot = 0.0;
    var blk = 0.0;
    var p0 = 0u;
    loop {
        if (p0 >= u.n) {
            break;
        }
        let pp = p0 + lid.x;
        var c1 = 0.0;
        var c2 = 0.0;
        var ix = 0xffffffffu;
        if (r < u.m && pp < u.n) {
            let at = r * u.c_rs + pp * u.c_ps;
            c1 = a2[at];
            if (OP == 6u) {
                c2 = b2[at];
            }
            if (OP == 4u) {
                ix = idx[at];
            }
        }
        let pq = p0 + lid.y;
        var pv = 0.0;
        if (pq < u.n && kf < u.k) {
            pv = b[pq * u.b_rs + kf];
        }
        ta[lid.y * PS + lid.x] = c1;
        ta2[lid.y * PS + lid.x] = c2;
        ti[lid.y * PS + lid.x] = ix;
        tb[lid.y * PS + lid.x] = pv;
        workgroupBarrier();
        let pn = min(PT, u.n - p0);
        for (var q = 0u; q < pn; q++) {
            let k1 = ta[lid.y * PS + q];
            let k2 = ta2[lid.y * PS + q];
            if (k1 == 0.0 && k2 == 0.0) {
                continue;
            }
            if (OP == 4u && ti[lid.y * PS + q] != kf) {
                continue;
            }
            let other = tb[q * PS + lid.x];
            if (left) {
                blk += grad_term(true, k1, k2, own, other);
            } else {
                blk += grad_term(false, k1, k2, other, own);
            }
        }
        workgroupBarrier();
        p0 += PT;
        if (p0 % BLOCK == 0u || p0 >= u.n) {
            tot += blk;
            blk = 0.0;
        }
    }
    if (r < u.m && kf < u.k) {
        out[r * u.o_rs + kf] = tot;
    }
}

fn lin(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}

// Row r of a [m, k] matrix a: out = a / max(||a||, 1e-12), out2[r] = ||a||.
@compute @workgroup_size(256)
fn norm_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let r = lin(wid, nwg, li);
    if (r >= u.m) {
        return;
    }
    var tot = 0.0;
    var blk = 0.0;
    for (var k = 0u; k < u.k; k++) {
        let v = a[r * u.k + k];
        blk += v * v;
        if ((k + 1u) % BLOCK == 0u) {
            tot += blk;
            blk = 0.0;
        }
    }
    let nr = sqrt(tot + blk);
    let den = max(nr, 1e-12);
    for (var k = 0u; k < u.k; k++) {
        out[r * u.k + k] = a[r * u.k + k] / den;
    }
    out2[r] = nr;
}

// Chain rule through the row normalisation, in place on out [m, k]: a = unit rows, a2 =
// norms.
@compute @workgroup_size(256)
fn thru_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let r = lin(wid, nwg, li);
    if (r >= u.m) {
        return;
    }
    let nr = a2[r];
    if (nr >= 1e-12) {
        var tot = 0.0;
        var blk = 0.0;
        for (var k = 0u; k < u.k; k++) {
            blk += out[r * u.k + k] * a[r * u.k + k];
            if ((k + 1u) % BLOCK == 0u) {
                tot += blk;
                blk = 0.0;
            }
        }
        let dot = tot + blk;
        for (var k = 0u; k < u.k; k++) {
            let at = r * u.k + k;
            out[at] = (out[at] - dot * a[at]) / nr;
        }
    } else {
        for (var k = 0u; k < u.k; k++) {
            out[r * u.k + k] = out[r * u.k + k] / 1e-12;
        }
    }
}

fn lk_sigmoid(z: f32) -> f32 {
    if (z >= 0.0) {
        return 1.0 / (1.0 + exp(-z));
    }
    let e = exp(z);
    return e / (1.0 + e);
}

// out[e] = sigmoid(a[e] / f0) for e < m.
@compute @workgroup_size(256)
fn soft_bits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let e = lin(wid, nwg, li);
    if (e >= u.m) {
        return;
    }
    out[e] = lk_sigmoid(a[e] / u.f0);
}

// out[e] *= a[e] (1 - a[e]) / f0 for e < m (the sigmoid's chain rule).
@compute @workgroup_size(256)
fn sigmoid_chain(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let e = lin(wid, nwg, li);
    if (e >= u.m) {
        return;
    }
    let v = a[e];
    out[e] = out[e] * (v * (1.0 - v) / u.f0);
}

// out[x, y] = f0 (a[x, y] + a[y, x]) for a square [k, k] matrix (m = k * k elements).
@compute @workgroup_size(256)
fn sym(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) li: u32) {
    let e = lin(wid, nwg, li);
    if (e >= u.m) {
        return;
    }
    let x = e / u.k;
    let y = e % u.k;
    out[e] = u.f0 * (a[x * u.k + y] + a[y * u.k + x]);
}

// out[e] = f0 (a[e] + a2[e]) for e < m.
@compute @workgroup_size(256)
fn add_scaled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let e = lin(wid, nwg, li);
    if (e >= u.m) {
        return;
    }
    out[e] = u.f0 * (a[e] + a2[e]);
}

// ½(1 - ‖x̂‖²) of a row normalised by max(‖x‖, 1e-12), from its norm (0 for unit rows).
fn half_defect(nr: f32) -> f32 {
    if (nr >= 1e-12) {
        return 0.0;
    }
    let q = nr / 1e-12;
    return 0.5 * (1.0 - q * q);
}

// Cosine distances without cancellation, in place over out [m / k, k] holding ‖x̂_i - ŵ_j‖²:
// out = ½ out + h(x_i) + h(w_j) (= 1 - x̂_i·ŵ_j), with the norms in a (rows) and a2 (columns).
@compute @workgroup_size(256)
fn cos_dist(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let e = lin(wid, nwg, li);
    if (e >= u.m) {
        return;
    }
    let i = e / u.k;
    let j = e % u.k;
    out[e] = 0.5 * out[e] + half_defect(a[i]) + half_defect(a2[j]);
}
