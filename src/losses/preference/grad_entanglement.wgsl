// grad_entanglement on the GPU (after the losskit prelude): one workgroup of 256 invocations
// per pair of [B, D] rows of the chunk. Each invocation sums a strided share of the row
// (blocked, lk_acc), then a fixed-order tree reduction in workgroup memory gives ip, n_w, n_l
// (deterministic); invocation 0 writes the eight statistics of the pair.
struct G { rows: u32, d: u32, lw: f32, ll: f32 }
@group(0) @binding(0) var<uniform> g: G;
@group(0) @binding(1) var<storage, read> gw: array<f32>;
@group(0) @binding(2) var<storage, read> gl: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;

var<workgroup> s_ip: array<f32, 256>;
var<workgroup> s_nw: array<f32, 256>;
var<workgroup> s_nl: array<f32, 256>;

// x / d, 0 where d = 0.
fn ge_ratio(x: f32, d: f32) -> f32 {
    if (d == 0.0) {
        return 0.0;
    }
    return x / d;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = wid.y * nwg.x + wid.x;
    // The same for the whole workgroup, so the barriers below stay uniform.
    if (i >= g.rows) {
        return;
    }
    let d = g.d;
    var ip = lk_acc0();
    var nw = lk_acc0();
    var nl = lk_acc0();
    for (var k = lid; k < d; k += 256u) {
        let a = gw[i * d + k];
        let b = gl[i * d + k];
        ip = lk_acc_add(ip, a * b);
        nw = lk_acc_add(nw, a * a);
        nl = lk_acc_add(nl, b * b);
    }
    s_ip[lid] = lk_acc(ip);
    s_nw[lid] = lk_acc(nw);
    s_nl[lid] = lk_acc(nl);
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s / 2u) {
        if (lid < s) {
            s_ip[lid] += s_ip[lid + s];
            s_nw[lid] += s_nw[lid + s];
            s_nl[lid] += s_nl[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let p = s_ip[0];
        let w = s_nw[0];
        let l = s_nl[0];
        let o = i * 8u;
        stats[o] = p;
        stats[o + 1u] = w;
        stats[o + 2u] = l;
        // cos = ip / sqrt(n_w n_l), the roots taken apart (no overflow of the product).
        stats[o + 3u] = ge_ratio(p, sqrt(w) * sqrt(l));
        stats[o + 4u] = ge_ratio(p, w);
        stats[o + 5u] = ge_ratio(p, l);
        stats[o + 6u] = g.lw * w - g.ll * p;
        stats[o + 7u] = g.lw * p - g.ll * l;
    }
}
