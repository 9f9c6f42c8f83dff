// STEER pass 1 (after the prelude and steer_omega.wgsl): min and max of Omega over the masked
// tokens of one chunk of rows, folded into m[0] (min) and m[1] (max) as u32 bit patterns:
// Omega >= 0, so its f32 bits order like the values (min and max are exact, so the result
// does not depend on the order).
struct P { count: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> pr: P;
@group(0) @binding(1) var<storage, read> logps: array<f32>;
@group(0) @binding(2) var<storage, read> old_logps: array<f32>;
@group(0) @binding(3) var<storage, read> adv: array<f32>;
@group(0) @binding(4) var<storage, read> entropy: array<f32>;
@group(0) @binding(5) var<storage, read> mask: array<f32>;
@group(0) @binding(6) var<storage, read_write> m: array<atomic<u32>>;

var<workgroup> wmin: array<u32, 256>;
var<workgroup> wmax: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let j = (wid.y * nwg.x + wid.x) * 256u + lid;
    var lo = 0x7f7fffffu;
    var hi = 0u;
    if (j < pr.count && mask[j] != 0.0) {
        let b = bitcast<u32>(steer_omega(logps[j], old_logps[j], adv[j], entropy[j]));
        lo = b;
        hi = b;
    }
    wmin[lid] = lo;
    wmax[lid] = hi;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s / 2u) {
        if (lid < s) {
            wmin[lid] = min(wmin[lid], wmin[lid + s]);
            wmax[lid] = max(wmax[lid], wmax[lid + s]);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        atomicMin(&m[0], wmin[0]);
        atomicMax(&m[1], wmax[0]);
    }
}
