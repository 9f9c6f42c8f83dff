// token_logprobs row kernel. Prepended: the losskit prelude (LK_NEG_BIG, lk_exp_sub).
//
// One token row = V logits. Groups of LK_G threads handle one row each; a workgroup of WG
// threads holds WG / LK_G groups (several rows per workgroup for small V, one row per
// workgroup for large V). Per row:
//   1. one streaming pass over V keeping, per thread, the online-softmax state of
//      zeta = k * x: max m, s = sum e^(zeta-m), t = sum e^(zeta-m) (zeta-m) (entropy),
//      c = sum e^(2(zeta-m)) (collision) and, with a reference zr = k * r, its max mr,
//      sr = sum e^(zr-mr) and w = sum e^(zr-mr) (zeta - zr);
//   2. a tree merge of the thread states over the group, in a fixed order (deterministic);
//   3. lane 0 turns the statistics into the row's outputs (log pi_y, entropy, token KL,
//      log collision) and the gradient coefficients (host-provided cotangents, already
//      multiplied by the reduction scale);
//   4. (LK_WANT_GRAD) a second pass writing
//      g_v = a pi_v + b pi_v log pi_v + kq q_v + [v = y] cy,
//      recomputing pi (and q) element by element (log-softmax is never stored).
// Rows are addressed through (n, t) = divmod(j0 + i, T), so a chunk may start inside a
// sequence and sequences may be strided: element v of local row i lies at
// base + (n - n0) * stride + (t - t0) * V + v (u32 arithmetic; the sum is in range).
//
// Shared memory holds one slot per thread for each of the seven statistics; after the
// merge, lane 0 of a group overwrites its own slots with the row's coefficients.

const WG: u32 = 256u;
override LK_G: u32 = 256u;
override LK_IN_PLACE: bool = true;
override LK_WANT_GRAD: bool = false;
// Statistics wanted: entropy (t), collision (c), reference (mr, sr, w).
override LK_H: bool = false;
override LK_COLL: bool = false;
override LK_REF: bool = false;
// Gradient terms present: the entropy cotangent (b) and the KL cotangent (kq).
override LK_GH: bool = false;
override LK_GKL: bool = false;

struct Uniforms {
    rows: u32,
    v: u32,
    t: u32,
    j0: u32,
    n0: u32,
    t0: u32,
    x_base: u32,
    x_stride: u32,
    r_base: u32,
    r_stride: u32,
    g_base: u32,
    g_stride: u32,
    k: f32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;
// read_write only so that the reference may share a buffer with the logits (never written)
@group(0) @binding(3) var<storage, read_write> r: array<f32>;
// per row: (label as i32 bits, -1 = masked; then the f32 bits of c, g_H, g_KL), the
// cotangents already scaled
@group(0) @binding(4) var<storage, read> rmeta: array<vec4<u32>>;
// per row: (log pi_y, entropy, token KL, log collision), 0 where masked
@group(0) @binding(5) var<storage, read_write> outr: array<vec4<f32>>;

var<workgroup> sh_m: array<f32, 256>;
var<workgroup> sh_s: array<f32, 256>;
var<workgroup> sh_t: array<f32, 256>;
var<workgroup> sh_c: array<f32, 256>;
var<workgroup> sh_mr: array<f32, 256>;
var<workgroup> sh_sr: array<f32, 256>;
var<workgroup> sh_w: array<f32, 256>;

// First element of local row `i` of a tensor at (base, stride).
fn row_at(i: u32, base: u32, stride: u32) -> u32 {
    let j = u.j0 + i;
    let n = j / u.t;
    let tt = j % u.t;
    return base + (n - u.n0) * stride + tt * u.v - u.t0 * u.v;
}

struct St {
    m: f32,
    s: f32,
    t: f32,
    c: f32,
    mr: f32,
    sr: f32,
    w: f32,
}

fn st_at(i: u32) -> St {
    return St(sh_m[i], sh_s[i], sh_t[i], sh_c[i], sh_mr[i], sh_sr[i], sh_w[i]);
}

fn st_put(i: u32, a: St) {
    sh_m[i] = a.m;
    sh_s[i] = a.s;
    sh_t[i] = a.t;
    sh_c[i] = a.c;
    sh_mr[i] = a.mr;
    sh_sr[i] = a.sr;
    sh_w[i] = a.w;
}

// Merge two thread states (the online-softmax shift applied to every sum).
fn merge(a: St, b: St) -> St {
    var o: St;
    o.m = max(a.m, b.m);
    let fa = lk_exp_sub(a.m, o.m);
    let fb = lk_exp_sub(b.m, o.m);
    o.s = a.s * fa + b.s * fb;
    if (LK_H) {
        // sum e^(z-m)(z-m) = f (t_old + (m_old - m) s_old); empty states add nothing.
        let ta = select(0.0, fa * (a.t + (a.m - o.m) * a.s), a.s > 0.0);
        let tb = select(0.0, fb * (b.t + (b.m - o.m) * b.s), b.s > 0.0);
        o.t = ta + tb;
    }
    if (LK_COLL) {
        o.c = a.c * fa * fa + b.c * fb * fb;
    }
    if (LK_REF) {
        o.mr = max(a.mr, b.mr);
        let ga = lk_exp_sub(a.mr, o.mr);
        let gb = lk_exp_sub(b.mr, o.mr);
        o.sr = a.sr * ga + b.sr * gb;
        o.w = a.w * ga + b.w * gb;
    }
    return o;
}

@compute @workgroup_size(256)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let lane = lid % LK_G;
    let base = lid - lane;
    let row = (wid.y * nwg.x + wid.x) * (WG / LK_G) + lid / LK_G;
    let valid = row < u.rows;
    var xo = 0u;
    var ro = 0u;
    var go = 0u;
    var st = St(LK_NEG_BIG, 0.0, 0.0, 0.0, LK_NEG_BIG, 0.0, 0.0);
    if (valid) {
        xo = row_at(row, u.x_base, u.x_stride);
        ro = row_at(row, u.r_base, u.r_stride);
        go = row_at(row, u.g_base, u.g_stride);
        // 1. This thread's elements, streamed once.
        for (var v = lane; v < u.v; v += LK_G) {
            let z = x[xo + v] * u.k;
            if (z > st.m) {
                let f = lk_exp_sub(st.m, z);
                if (LK_H && st.s > 0.0) {
                    st.t = f * (st.t + (st.m - z) * st.s);
                }
                st.s = st.s * f;
                if (LK_COLL) {
                    st.c = st.c * f * f;
                }
                st.m = z;
            }
            let d = z - st.m;
            let e = exp(d);
            st.s += e;
            if (LK_H) {
                st.t += e * d;
            }
            if (LK_COLL) {
                st.c += e * e;
            }
            if (LK_REF) {
                let zr = r[ro + v] * u.k;
                if (zr > st.mr) {
                    let f = lk_exp_sub(st.mr, zr);
                    st.sr = st.sr * f;
                    st.w = st.w * f;
                    st.mr = zr;
                }
                let er = exp(zr - st.mr);
                st.sr += er;
                st.w += er * (z - zr);
            }
        }
    }
    // 2. Fixed-order tree merge over the group.
    st_put(lid, st);
    workgroupBarrier();
    for (var off = LK_G / 2u; off > 0u; off = off / 2u) {
        if (lane < off) {
            st_put(lid, merge(st_at(lid), st_at(lid + off)));
        }
        workgroupBarrier();
    }
    // 3. Row outputs and gradient coefficients (lane 0; stored over its own slots).
    if (valid && lane == 0u) {
        let a = st_at(lid);
        let mt = rmeta[row];
        let y = bitcast<i32>(mt.x);
        var out = vec4<f32>(0.0, 0.0, 0.0, 0.0);
        // (a, b, kq, lse, lse_r, cy, unused)
        var co = St(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        if (y >= 0) {
            let ls = log(a.s);
            let lse = a.m + ls;
            let lp = x[xo + u32(y)] * u.k - lse;
            var h = 0.0;
            if (LK_H) {
                h = ls - a.t / a.s;
            }
            var kl = 0.0;
            var lse_r = 0.0;
            if (LK_REF) {
                let lsr = log(a.sr);
                lse_r = a.mr + lsr;
                kl = a.w / a.sr - (a.m - a.mr) - ls + lsr;
            }
            var coll = 0.0;
            if (LK_COLL) {
                coll = log(a.c) - 2.0 * ls;
            }
            out = vec4<f32>(lp, h, kl, coll);
            let cc = bitcast<f32>(mt.y);
            let gh = bitcast<f32>(mt.z);
            let gk = bitcast<f32>(mt.w);
            co = St(-(cc + gk + gh * h) * u.k, -gh * u.k, gk * u.k, lse, lse_r, cc * u.k, 0.0);
        }
        outr[row] = out;
        st_put(lid, co);
    }
    workgroupBarrier();
    // 4. The gradient, one more pass over the row (in place over the logits when asked).
    if (LK_WANT_GRAD && valid) {
        let co = st_at(base);
        let y = bitcast<i32>(rmeta[row].x);
        for (var v = lane; v < u.v; v += LK_G) {
            var gv = 0.0;
            if (y >= 0) {
                let lp = x[xo + v] * u.k - co.c;
                let p = exp(lp);
                gv = co.m * p;
                if (LK_GH) {
                    gv += co.s * p * lp;
                }
                if (LK_GKL) {
                    gv += co.t * exp(r[ro + v] * u.k - co.mr);
                }
                if (i32(v) == y) {
                    gv += co.sr;
                }
            }
            if (LK_IN_PLACE) {
                x[xo + v] = gv;
            } else {
                g[go + v] = gv;
            }
        }
    }
}
