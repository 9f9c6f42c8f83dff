// ca_calibration on the GPU (after the losskit prelude).
// stats: one workgroup per row of the logits [N, C]: the first arg-max k, and
//        S = sum over the other classes of exp(z_c - z_k), so that the max-softmax
//        confidence is 1 / (1 + S) and its distance to 1 is S / (1 + S) without cancellation;
//        st[4 i..] = (k as bits, 1 / (1 + S), LSE, S).
// grad:  one invocation per element: g_ic = -a_i softmax(z_i)_c + a_i [c = k_i] from the
//        per-row coefficients co[4 i..] = (a_i, LSE_i, k_i as bits, unused).

struct CU {
    rows: u32,
    classes: u32,
    pad: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> h: CU;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> co: array<f32>;
@group(0) @binding(3) var<storage, read_write> st: array<f32>;
@group(0) @binding(4) var<storage, read_write> g: array<f32>;

const HW: u32 = 256u;

var<workgroup> wm: array<f32, 256>;
var<workgroup> wk: array<u32, 256>;
var<workgroup> ws: array<f32, 256>;

@compute @workgroup_size(256)
fn stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) li: u32) {
    let i = wid.y * nwg.x + wid.x;
    if (i >= h.rows) {
        return;
    }
    let cn = h.classes;
    let base = i * cn;
    var m = LK_NEG_BIG;
    var km = 0xffffffffu;
    for (var j = li; j < cn; j += HW) {
        let v = z[base + j];
        if (v > m || km == 0xffffffffu) {
            m = v;
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
            if (k2 != 0xffffffffu && (wk[li] == 0xffffffffu || m2 > wm[li] || (m2 == wm[li] && k2 < wk[li]))) {
                wm[li] = m2;
                wk[li] = k2;
            }
        }
        workgroupBarrier();
    }
    let mx = wm[0];
    let kx = wk[0];
    var acc = 0.0;
    for (var j = li; j < cn; j += HW) {
        if (j != kx) {
            acc += lk_exp_sub(z[base + j], mx);
        }
    }
    ws[li] = acc;
    workgroupBarrier();
    for (var s = HW / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            ws[li] = ws[li] + ws[li + s];
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        let ss = ws[0];
        st[4u * i] = bitcast<f32>(kx);
        st[4u * i + 1u] = 1.0 / (1.0 + ss);
        st[4u * i + 2u] = mx + log(1.0 + ss);
        st[4u * i + 3u] = ss;
    }
}

@compute @workgroup_size(256)
fn grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let e = (wid.y * nwg.x + wid.x) * HW + li;
    if (e >= h.rows * h.classes) {
        return;
    }
    let r = e / h.classes;
    let j = e % h.classes;
    let a = co[4u * r];
    if (a == 0.0) {
        g[e] = 0.0;
        return;
    }
    var v = -a * exp(min(z[e] - co[4u * r + 1u], 0.0)) + 0.0;
    if (j == bitcast<u32>(co[4u * r + 2u])) {
        v = v + a;
    }
    g[e] = v;
}
