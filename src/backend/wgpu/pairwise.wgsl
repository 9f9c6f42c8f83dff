// Tiled pairwise kernels (host side: pairwise.rs), after the losskit prelude.
//
// pair_fwd:  out[i, j] = sum_k term(a_ik, a2_ik, b_jk, b2_jk)   (or the max over k, with
//            its first arg-max in idx), a (16 RM) x (16 CM) output tile per workgroup
//            (RM x CM outputs per invocation), looping over k in tiles of KT held in
//            workgroup memory.
// pair_grad: out[r, k] = sum_p deriv(c1_rp, c2_rp, own_rk, partner_pk), a (16 RM) rows x
//            (16 CM) features tile per workgroup, looping over partners in tiles of KT.
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
// Register micro-tile of each of the 16 x 16 invocations: RM rows x CM columns (pair_fwd:
// rows of a x rows of b; pair_grad: own rows x features), 1 or 4 each, so that a workgroup
// covers (16 RM) x (16 CM) outputs; small axes keep 1 to avoid idle lanes.
override RM: u32 = 1u;
override CM: u32 = 1u;

// Depth of the k (pair_fwd) or partner (pair_grad) tiles held in workgroup memory.
const KT: u32 = 8u;
const KS: u32 = 9u;
const BLOCK: u32 = 64u;

var<workgroup> ta: array<f32, 576>;
var<workgroup> ta2: array<f32, 576>;
var<workgroup> tb: array<f32, 576>;
var<workgroup> tb2: array<f32, 576>;
var<workgroup> ti: array<u32, 576>;

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

// Workgroup tile (16 RM) x (16 CM); invocation (ly, lx) owns rows ly + 16 r and columns
// lx + 16 c. Each k tile of KT features is loaded as (16 RM) x KT and (16 CM) x KT values.
@compute @workgroup_size(16, 16)
fn pair_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let row0 = wid.y * 16u * RM;
    let col0 = wid.x * 16u * CM;
    var tot: array<f32, 16>;
    var blk: array<f32, 16>;
    var tot2: array<f32, 16>;
    var blk2: array<f32, 16>;
    var arg: array<u32, 16>;
    for (var e = 0u; e < 16u; e++) {
        tot[e] = 0.0;
        blk[e] = 0.0;
        tot2[e] = 0.0;
        blk2[e] = 0.0;
        arg[e] = 0u;
        if (OP == 4u) {
            blk[e] = -1.0;
        }
    }
    var k0 = 0u;
    loop {
        if (k0 >= u.k) {
            break;
        }
        for (var e = li; e < 16u * RM * KT; e += 256u) {
            let rr = e / KT;
            let kk = k0 + e % KT;
            let gr = row0 + rr;
            var v = 0.0;
            var v2 = 0.0;
            if (kk < u.k && gr < u.m) {
                v = a[gr * u.a_rs + kk * u.a_ks];
                if (OP == 6u) {
                    v2 = a2[gr * u.a_rs + kk * u.a_ks];
                }
            }
            ta[rr * KS + e % KT] = v;
            ta2[rr * KS + e % KT] = v2;
        }
        for (var e = li; e < 16u * CM * KT; e += 256u) {
            let rr = e / KT;
            let kk = k0 + e % KT;
            let gr = col0 + rr;
            var v = 0.0;
            var v2 = 0.0;
            if (kk < u.k && gr < u.n) {
                v = b[gr * u.b_rs + kk * u.b_ks];
                if (OP == 6u) {
                    v2 = b2[gr * u.b_rs + kk * u.b_ks];
                }
            }
            tb[rr * KS + e % KT] = v;
            tb2[rr * KS + e % KT] = v2;
        }
        workgroupBarrier();
        let kn = min(KT, u.k - k0);
        for (var q = 0u; q < kn; q++) {
            var xs: array<f32, 4>;
            var x2s: array<f32, 4>;
            var ws: array<f32, 4>;
            var w2s: array<f32, 4>;
            for (var r = 0u; r < RM; r++) {
                xs[r] = ta[(lid.y + 16u * r) * KS + q];
                if (OP == 6u) {
                    x2s[r] = ta2[(lid.y + 16u * r) * KS + q];
                }
            }
            for (var c = 0u; c < CM; c++) {
                ws[c] = tb[(lid.x + 16u * c) * KS + q];
                if (OP == 6u) {
                    w2s[c] = tb2[(lid.x + 16u * c) * KS + q];
                }
            }
            for (var r = 0u; r < RM; r++) {
                for (var c = 0u; c < CM; c++) {
                    let e = r * 4u + c;
                    if (OP == 4u) {
                        let v = abs(xs[r] - ws[c]);
                        if (v > blk[e]) {
                            blk[e] = v;
                            arg[e] = k0 + q;
                        }
                    } else if (OP == 7u) {
                        blk[e] += abs(xs[r] - ws[c]);
                        blk2[e] += abs(xs[r] + ws[c]);
                    } else {
                        blk[e] += fwd_term(xs[r], x2s[r], ws[c], w2s[c]);
                    }
                }
            }
        }
        workgroupBarrier();
        k0 += KT;
        if (OP != 4u && (k0 % BLOCK == 0u || k0 >= u.k)) {
            for (var e = 0u; e < 16u; e++) {
                tot[e] += blk[e];
                blk[e] = 0.0;
                tot2[e] += blk2[e];
                blk2[e] = 0.0;
            }
        }
    }
    for (var r = 0u; r < RM; r++) {
        for (var c = 0u; c < CM; c++) {
            let i = row0 + lid.y + 16u * r;
            let j = col0 + lid.x + 16u * c;
            let e = r * 4u + c;
            if (i < u.m && j < u.n) {
                let o = i * u.o_rs + j;
                if (OP == 4u) {
                    out[o] = select(blk[e], 0.0, u.k == 0u);
                    idx[o] = arg[e];
                } else {
                    out[o] = tot[e];
                    if (OP == 7u) {
                        out2[o] = tot2[e];
                    }
                }
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
// r * c_rs + p * c_ps (idx likewise for op 4), out[r * o_rs + k]. Workgroup tile
// (16 RM) own rows x (16 CM) features; partners streamed KT at a time.
@compute @workgroup_size(16, 16)
fn pair_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let row0 = wid.y * 16u * RM;
    let f0 = wid.x * 16u * CM;
    let left = (u.flags & 1u) != 0u;
    var own: array<f32, 16>;
    var tot: array<f32, 16>;
    var blk: array<f32, 16>;
    for (var r = 0u; r < RM; r++) {
        for (var c = 0u; c < CM; c++) {
            let e = r * 4u + c;
            let rr = row0 + lid.y + 16u * r;
            let kf = f0 + lid.x + 16u * c;
            own[e] = 0.0;
            if (rr < u.m && kf < u.k) {
                own[e] = a[rr * u.a_rs + kf];
            }
            tot[e] = 0.0;
            blk[e] = 0.0;
        }
    }
    var p0 = 0u;
    loop {
        if (p0 >= u.n) {
            break;
        }
        // Coefficients: (16 RM) rows x KT partners.
        for (var e = li; e < 16u * RM * KT; e += 256u) {
            let rr = e / KT;
            let pp = p0 + e % KT;
            let gr = row0 + rr;
            var c1 = 0.0;
            var c2 = 0.0;
            var ix = 0xffffffffu;
            if (gr < u.m && pp < u.n) {
                let at = gr * u.c_rs + pp * u.c_ps;
                c1 = a2[at];
                if (OP == 6u) {
                    c2 = b2[at];
                }
                if (OP == 4u) {
                    ix = idx[at];
                }
            }
            ta[rr * KS + e % KT] = c1;
            ta2[rr * KS + e % KT] = c2;
            ti[rr * KS + e % KT] = ix;
        }
        // Partners: KT partners x (16 CM) features, stored feature-major.
        for (var e = li; e < 16u * CM * KT; e += 256u) {
            let ff = e % (16u * CM);
            let pq = e / (16u * CM);
            let gp = p0 + pq;
            let kf = f0 + ff;
            var v = 0.0;
            if (gp < u.n && kf < u.k) {
                v = b[gp * u.b_rs + kf];
            }
            tb[ff * KS + pq] = v;
        }
        workgroupBarrier();
        let pn = min(KT, u.n - p0);
        for (var q = 0u; q < pn; q++) {
            var pv: array<f32, 4>;
            for (var c = 0u; c < CM; c++) {
                pv[c] = tb[(lid.x + 16u * c) * KS + q];
            }
            for (var r = 0u; r < RM; r++) {
                let at = (lid.y + 16u * r) * KS + q;
                let k1 = ta[at];
                let k2 = ta2[at];
                if (k1 == 0.0 && k2 == 0.0) {
                    continue;
                }
                let ix = ti[at];
                for (var c = 0u; c < CM; c++) {
                    let e = r * 4u + c;
                    if (OP == 4u && ix != f0 + lid.x + 16u * c) {
                        continue;
                    }
                    if (left) {
                        blk[e] += grad_term(true, k1, k2, own[e], pv[c]);
                    } else {
                        blk[e] += grad_term(false, k1, k2, pv[c], own[e]);
                    }
                }
            }
        }
        workgroupBarrier();
        p0 += KT;
        if (p0 % BLOCK == 0u || p0 >= u.n) {
            for (var e = 0u; e < 16u; e++) {
                tot[e] += blk[e];
                blk[e] = 0.0;
            }
        }
    }
    for (var r = 0u; r < RM; r++) {
        for (var c = 0u; c < CM; c++) {
            let rr = row0 + lid.y + 16u * r;
            let kf = f0 + lid.x + 16u * c;
            if (rr < u.m && kf < u.k) {
                out[rr * u.o_rs + kf] = tot[r * 4u + c];
            }
        }
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

// Chain rule through the row normalisation, in place on out [m, k] (g = dl/dx̂): a = unit
// rows h, a2 = norms, out2 = scratch [m, k]. The projection (I - h hᵀ/q) g / ‖x‖ (q = h·h, so
// that it is a projection even when the unit row is a few ulp off) is evaluated in the
// leave-one-out form
//   out_k = (g_k Σ_{j≠k} h_j² - h_k Σ_{j≠k} h_j g_j) / (q ‖x‖),
// in which the j = k terms, which cancel exactly, are never formed: the sums over j ≠ k are a
// prefix (j < k, first pass, partial result kept in out2) plus a suffix (j > k, second pass,
// backwards), each blocked by 64. So a row with one non-zero feature (every row when k = 1)
// gets exact zeros along its own direction whatever the rounding of sqrt, division or fused
// multiply-adds, and elsewhere the error is a few ulp of the terms.
@compute @workgroup_size(256)
fn thru_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let r = lin(wid, nwg, li);
    if (r >= u.m) {
        return;
    }
    let nr = a2[r];
    let base = r * u.k;
    if (nr >= 1e-12) {
        // Prefix sums (blocked): pq = Σ_{j<k} h_j², ps = Σ_{j<k} h_j g_j.
        var qt = 0.0;
        var qb = 0.0;
        var st = 0.0;
        var sb = 0.0;
        for (var k = 0u; k < u.k; k++) {
            let hk = a[base + k];
            let gk = out[base + k];
            out2[base + k] = gk * (qt + qb) - hk * (st + sb);
            qb += hk * hk;
            sb += hk * gk;
            if ((k + 1u) % BLOCK == 0u) {
                qt += qb;
                qb = 0.0;
                st += sb;
                sb = 0.0;
            }
        }
        let den = (qt + qb) * nr;
        // Suffix sums (blocked, backwards): Σ_{j>k}.
        qt = 0.0;
        qb = 0.0;
        st = 0.0;
        sb = 0.0;
        var cnt = 0u;
        for (var kk = u.k; kk > 0u; kk--) {
            let k = kk - 1u;
            let hk = a[base + k];
            let gk = out[base + k];
            out[base + k] = (out2[base + k] + (gk * (qt + qb) - hk * (st + sb))) / den;
            qb += hk * hk;
            sb += hk * gk;
            cnt += 1u;
            if (cnt % BLOCK == 0u) {
                qt += qb;
                qb = 0.0;
                st += sb;
                sb = 0.0;
            }
        }
    } else {
        for (var k = 0u; k < u.k; k++) {
            out[base + k] = out[base + k] / 1e-12;
        }
    }
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

// Rows used for the centring point of the Mahalanobis form: the first CENTRE_ROWS centres (a
// bounded loop; any point is exact in exact arithmetic, distances being translation invariant,
// and one taken from the centres keeps a feature row's result independent of its batch).
const CENTRE_ROWS: u32 = 1024u;

// out[j] = mean of column j over the first min(m, CENTRE_ROWS) rows of a [m, k]; one
// invocation per column, blocked sum.
@compute @workgroup_size(256)
fn col_mean(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let j = lin(wid, nwg, li);
    if (j >= u.k) {
        return;
    }
    let ma = min(u.m, CENTRE_ROWS);
    var acc = lk_acc0();
    for (var r = 0u; r < ma; r++) {
        acc = lk_acc_add(acc, a[r * u.k + j]);
    }
    out[j] = lk_acc(acc) / f32(max(ma, 1u));
}

// out[e] = a[e] - a2[e % k] for e < m (rows of a minus the point a2).
@compute @workgroup_size(256)
fn sub_point(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let e = lin(wid, nwg, li);
    if (e >= u.m) {
        return;
    }
    out[e] = a[e] - a2[e % u.k];
}
