// Row-wise classification skeleton (see the module docs of backend/wgpu). Prepended:
// prelude.wgsl. Appended: the loss's snippet defining `fn lk_row_loss(st: LkRowStats) -> LkRowCoef`.
//
// Work split: groups of LK_G threads; a workgroup of WG threads holds WG / LK_G groups; group
// `gid` handles slice `gid % u.k` of row `gid / u.k`. With u.k == 1 the entry point `fused`
// does everything in one dispatch; with u.k > 1 `stats`, `finish` and `grad` run in turn.

const WG: u32 = 256u;
override LK_G: u32 = 256u;
override LK_IN_PLACE: bool = false;
override LK_WANT_GRAD: bool = true;
// Behaviour switches (so unused work is compiled out): soft-cap on, class weights given,
// the snippet reads swz, the `correct` output is wanted.
override LK_CAP: bool = false;
override LK_CW: bool = false;
override LK_SWZ: bool = false;
override LK_ARGMAX: bool = false;

struct LkRowStats {
    // log-sum-exp of the (capped) row
    lse: f32,
    // capped target logit
    zy: f32,
    // sum_c w_c z'_c (w = 1 without class weights)
    swz: f32,
    // sum_c w_c
    wsum: f32,
    // w_y
    wy: f32,
    // number of classes
    classes: f32,
}

struct LkRowCoef {
    // the row's loss (before the sample weight)
    loss: f32,
    // dl/dz'_c = a * p_c + b * w_c - d * [c == y]
    a: f32,
    b: f32,
    d: f32,
}

struct Uniforms {
    rows: u32,
    classes: u32,
    k: u32,
    has_cw: u32,
    x_base: u32,
    x_stride: u32,
    g_base: u32,
    g_stride: u32,
    cap: f32,
    wsum: f32,
    slice_len: u32,
    pad: u32,
    params: array<vec4<f32>, 4>,
}

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;
// per row: (target as i32 bits, -1 = ignored; gradient scale as f32 bits)
@group(0) @binding(3) var<storage, read> rmeta: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> cw: array<f32>;
// per (row, slice): (m, s, swz, arg-max value), (arg-max index bits, 0, 0, 0)
@group(0) @binding(5) var<storage, read_write> part: array<vec4<f32>>;
// per row: (loss, lse, correct, 0)
@group(0) @binding(6) var<storage, read_write> outr: array<vec4<f32>>;
// per row: (a, b, d, lse) already multiplied by the row's scale
@group(0) @binding(7) var<storage, read_write> coefs: array<vec4<f32>>;

var<workgroup> sh_m: array<f32, 256>;
var<workgroup> sh_s: array<f32, 256>;
var<workgroup> sh_w: array<f32, 256>;
var<workgroup> sh_av: array<f32, 256>;
var<workgroup> sh_ai: array<u32, 256>;
var<workgroup> sh_coef: array<vec4<f32>, 256>;

fn lk_param(k: u32) -> f32 {
    return u.params[k / 4u][k % 4u];
}

fn xval(row: u32, c: u32) -> f32 {
    return x[u.x_base + row * u.x_stride + c];
}

fn wval(c: u32) -> f32 {
    if (LK_CW) {
        return cw[c];
    }
    return 1.0;
}

struct Loc {
    lane: u32,
    row: u32,
    slice: u32,
    group: u32,
    valid: bool,
}

fn locate(lid: u32, wid: vec3<u32>, nwg: vec3<u32>) -> Loc {
    let wg_lin = wid.y * nwg.x + wid.x;
    let group = wg_lin * (WG / LK_G) + lid / LK_G;
    let valid = group < u.rows * u.k;
    return Loc(lid % LK_G, group / u.k, group % u.k, group, valid);
}

// Running statistics of one thread: online max / sum of exponentials, sum_c w_c z'_c, and
// the arg-max of the raw logits.
struct Acc {
    m: f32,
    s: f32,
    sw: f32,
    av: f32,
    ai: u32,
}

// Fold four elements (raw logits r at class indices c) into the running statistics: one
// rescale by the new maximum, then four exponentials. `n` of the four are real (the rest
// are padding and must not count).
fn acc4(a: Acc, r: vec4<f32>, c: vec4<u32>, n: u32) -> Acc {
    var z = r;
    if (LK_CAP) {
        z = vec4<f32>(lk_softcap(r.x, u.cap), lk_softcap(r.y, u.cap), lk_softcap(r.z, u.cap), lk_softcap(r.w, u.cap));
    }
    let live = vec4<bool>(n > 0u, n > 1u, n > 2u, n > 3u);
    let zl = select(vec4<f32>(LK_NEG_BIG), z, live);
    let m4 = max(max(zl.x, zl.y), max(zl.z, zl.w));
    let m = max(a.m, m4);
    let e = select(vec4<f32>(0.0), exp(zl - vec4<f32>(m)), live);
    var o = a;
    o.s = a.s * lk_exp_sub(a.m, m) + (e.x + e.y) + (e.z + e.w);
    o.m = m;
    if (LK_SWZ) {
        let w = select(vec4<f32>(0.0), vec4<f32>(wval(c.x), wval(c.y), wval(c.z), wval(c.w)), live);
        o.sw = a.sw + dot(w, select(vec4<f32>(0.0), z, live));
    }
    if (LK_ARGMAX) {
        let rl = select(vec4<f32>(LK_NEG_BIG), r, live);
        // Elements come in increasing class order: strict > keeps the first maximum.
        if (rl.x > o.av) { o.av = rl.x; o.ai = c.x; }
        if (rl.y > o.av) { o.av = rl.y; o.ai = c.y; }
        if (rl.z > o.av) { o.av = rl.z; o.ai = c.z; }
        if (rl.w > o.av) { o.av = rl.w; o.ai = c.w; }
    }
    return o;
}

// Online softmax statistics of this thread's elements, reduced over the group into the
// shared slot of the group's lane 0. Each iteration issues four independent, coalesced
// loads (classes c, c + G, c + 2G, c + 3G) before any arithmetic, so enough memory requests
// are in flight to approach the device's bandwidth.
fn group_stats(l: Loc, lid: u32) {
    var a = Acc(LK_NEG_BIG, 0.0, 0.0, LK_NEG_BIG, 0xffffffffu);
    if (l.valid) {
        let c0 = l.slice * u.slice_len;
        let c1 = min(u.classes, c0 + u.slice_len);
        var c = c0 + l.lane;
        let g = LK_G;
        while (c + 3u * g < c1) {
            let cc = vec4<u32>(c, c + g, c + 2u * g, c + 3u * g);
            let r = vec4<f32>(xval(l.row, cc.x), xval(l.row, cc.y), xval(l.row, cc.z), xval(l.row, cc.w));
            a = acc4(a, r, cc, 4u);
            c += 4u * g;
        }
        if (c < c1) {
            let n = (c1 - c + g - 1u) / g;
            let cc = vec4<u32>(c, c + g, c + 2u * g, c + 3u * g);
            let r = vec4<f32>(
                xval(l.row, cc.x),
                select(0.0, xval(l.row, min(cc.y, c1 - 1u)), n > 1u),
                select(0.0, xval(l.row, min(cc.z, c1 - 1u)), n > 2u),
                0.0,
            );
            a = acc4(a, r, cc, n);
        }
    }
    sh_m[lid] = a.m;
    sh_s[lid] = a.s;
    sh_w[lid] = a.sw;
    sh_av[lid] = a.av;
    sh_ai[lid] = a.ai;
    workgroupBarrier();
    for (var off = LK_G / 2u; off > 0u; off = off / 2u) {
        if (l.lane < off) {
            let o = lid + off;
            let ms = lk_merge_ms(sh_m[lid], sh_s[lid], sh_m[o], sh_s[o]);
            sh_m[lid] = ms.x;
            sh_s[lid] = ms.y;
            sh_w[lid] = sh_w[lid] + sh_w[o];
            if (sh_av[o] > sh_av[lid] || (sh_av[o] == sh_av[lid] && sh_ai[o] < sh_ai[lid])) {
                sh_av[lid] = sh_av[o];
                sh_ai[lid] = sh_ai[o];
            }
        }
        workgroupBarrier();
    }
}

// Loss, aux outputs and scaled gradient coefficients of one row from its statistics.
fn finish_row(row: u32, m: f32, s: f32, sw: f32, ai: u32) -> vec4<f32> {
    let mt = rmeta[row];
    let y = bitcast<i32>(mt.x);
    let scale = bitcast<f32>(mt.y);
    if (y < 0) {
        outr[row] = vec4<f32>(0.0, 0.0, 0.0, 0.0);
        return vec4<f32>(0.0, 0.0, 0.0, 0.0);
    }
    let yc = u32(y);
    let lse = m + log(s);
    let zy = lk_softcap(xval(row, yc), u.cap);
    let st = LkRowStats(lse, zy, sw, u.wsum, wval(yc), f32(u.classes));
    let rc = lk_row_loss(st);
    outr[row] = vec4<f32>(rc.loss, lse, select(0.0, 1.0, ai == yc), 0.0);
    return vec4<f32>(rc.a * scale, rc.b * scale, rc.d * scale, lse);
}

// Gradient of one element (raw logit `raw` of class `c`) from the row's coefficients.
fn grad_one(raw: f32, c: u32, y: i32, co: vec4<f32>) -> f32 {
    var zc = raw;
    if (LK_CAP) {
        zc = lk_softcap(zc, u.cap);
    }
    let p = exp(zc - co.w);
    var gv = co.x * p - select(0.0, co.z, i32(c) == y);
    if (LK_SWZ) {
        gv += co.y * wval(c);
    }
    if (LK_CAP) {
        gv = gv * lk_softcap_grad(zc, u.cap);
    }
    return gv;
}

fn put_grad(row: u32, c: u32, gv: f32) {
    if (LK_IN_PLACE) {
        x[u.x_base + row * u.x_stride + c] = gv;
    } else {
        g[u.g_base + row * u.g_stride + c] = gv;
    }
}

// Write the gradient of this thread's elements of the group's slice (four independent loads
// per iteration, as in group_stats).
fn grad_slice(l: Loc, co: vec4<f32>) {
    let y = bitcast<i32>(rmeta[l.row].x);
    let c0 = l.slice * u.slice_len;
    let c1 = min(u.classes, c0 + u.slice_len);
    let gs = LK_G;
    var c = c0 + l.lane;
    if (y < 0) {
        for (; c < c1; c += gs) {
            put_grad(l.row, c, 0.0);
        }
        return;
    }
    while (c + 3u * gs < c1) {
        let r0 = xval(l.row, c);
        let r1 = xval(l.row, c + gs);
        let r2 = xval(l.row, c + 2u * gs);
        let r3 = xval(l.row, c + 3u * gs);
        put_grad(l.row, c, grad_one(r0, c, y, co));
        put_grad(l.row, c + gs, grad_one(r1, c + gs, y, co));
        put_grad(l.row, c + 2u * gs, grad_one(r2, c + 2u * gs, y, co));
        put_grad(l.row, c + 3u * gs, grad_one(r3, c + 3u * gs, y, co));
        c += 4u * gs;
    }
    for (; c < c1; c += gs) {
        put_grad(l.row, c, grad_one(xval(l.row, c), c, y, co));
    }
}

@compute @workgroup_size(256)
fn fused(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let l = locate(lid, wid, nwg);
    group_stats(l, lid);
    let base = lid - l.lane;
    if (l.lane == 0u && l.valid) {
        sh_coef[base] = finish_row(l.row, sh_m[base], sh_s[base], sh_w[base], sh_ai[base]);
    }
    workgroupBarrier();
    if (LK_WANT_GRAD && l.valid) {
        grad_slice(l, sh_coef[base]);
    }
}

@compute @workgroup_size(256)
fn stats(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let l = locate(lid, wid, nwg);
    group_stats(l, lid);
    if (l.lane == 0u && l.valid) {
        part[2u * l.group] = vec4<f32>(sh_m[lid], sh_s[lid], sh_w[lid], sh_av[lid]);
        part[2u * l.group + 1u] = vec4<f32>(bitcast<f32>(sh_ai[lid]), 0.0, 0.0, 0.0);
    }
}

@compute @workgroup_size(256)
fn finish(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = (wid.y * nwg.x + wid.x) * WG + lid;
    if (row >= u.rows) {
        return;
    }
    var m = LK_NEG_BIG;
    var s = 0.0;
    var sw = 0.0;
    var av = LK_NEG_BIG;
    var ai = 0xffffffffu;
    for (var j = 0u; j < u.k; j++) {
        let p0 = part[2u * (row * u.k + j)];
        let p1 = part[2u * (row * u.k + j) + 1u];
        let ms = lk_merge_ms(m, s, p0.x, p0.y);
        m = ms.x;
        s = ms.y;
        sw += p0.z;
        // Later slices hold larger indices: strict > keeps the first maximum.
        if (p0.w > av) {
            av = p0.w;
            ai = bitcast<u32>(p1.x);
        }
    }
    coefs[row] = finish_row(row, m, s, sw, ai);
}

@compute @workgroup_size(256)
fn grad(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let l = locate(lid, wid, nwg);
    if (l.valid) {
        grad_slice(l, coefs[l.row]);
    }
}
