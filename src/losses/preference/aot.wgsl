// aot on the GPU (after the losskit prelude): the batch-level sort as a bitonic network in
// global memory (any B; one dispatch per stage), then the sorted terms and the gradient
// scatter through the two permutations. Entry points:
// - aot_keys: u, v of every pair (paired: pc - pr, rc - rr; unpaired: pc - rc, pr - rr) as
//   order-preserving u32 keys of their f32 bits, with the pair index; P - B padding entries
//   sort last (key 0xffffffff, index >= B).
// - aot_step: one compare-exchange stage (k, j) of the network over both arrays. Entries
//   are ordered by (key, index), so the result is the stable sort (total order of f32, as
//   the CPU's total_cmp).
// - aot_terms: per sorted position k < B: D_k = u_(k) - v_(k), the term
//   (1 - eps) softplus(-beta D) + eps softplus(beta D), and g_k = beta (-(1 - eps) sigma(-beta D)
//   + eps sigma(beta D)) times the reduction scale, written to the rows sorted into place k
//   (each row receives exactly one value: the permutations are bijective).
struct A {
    b: u32,
    p: u32,
    k: u32,
    j: u32,
    paired: u32,
    p1: u32,
    p2: u32,
    p3: u32,
    beta: f32,
    eps: f32,
    scale: f32,
    p4: f32,
}
@group(0) @binding(0) var<uniform> a: A;
@group(0) @binding(1) var<storage, read> pc: array<f32>;
@group(0) @binding(2) var<storage, read> pr: array<f32>;
@group(0) @binding(3) var<storage, read> rc: array<f32>;
@group(0) @binding(4) var<storage, read> rr: array<f32>;
// [ku | iu | kv | iv], P entries each.
@group(0) @binding(5) var<storage, read_write> sortb: array<u32>;
@group(0) @binding(6) var<storage, read_write> terms: array<f32>;
@group(0) @binding(7) var<storage, read_write> dpc: array<f32>;
@group(0) @binding(8) var<storage, read_write> dpr: array<f32>;

fn aot_u(i: u32) -> f32 {
    if (a.paired == 1u) {
        return pc[i] - pr[i];
    }
    return pc[i] - rc[i];
}

fn aot_v(i: u32) -> f32 {
    if (a.paired == 1u) {
        return rc[i] - rr[i];
    }
    return pr[i] - rr[i];
}

// f32 bits mapped so that unsigned order is the total order of the values.
fn aot_key(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    if ((b & 0x80000000u) != 0u) {
        return ~b;
    }
    return b | 0x80000000u;
}

fn aot_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}

@compute @workgroup_size(256)
fn aot_keys(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = aot_index(wid, nwg, lid);
    if (i >= a.p) {
        return;
    }
    var ku = 0xffffffffu;
    var kv = 0xffffffffu;
    if (i < a.b) {
        ku = aot_key(aot_u(i));
        kv = aot_key(aot_v(i));
    }
    sortb[i] = ku;
    sortb[a.p + i] = i;
    sortb[2u * a.p + i] = kv;
    sortb[3u * a.p + i] = i;
}

// True when entry (k1, i1) must come after (k2, i2).
fn aot_after(k1: u32, i1: u32, k2: u32, i2: u32) -> bool {
    return k1 > k2 || (k1 == k2 && i1 > i2);
}

fn aot_cmpx(base: u32, i: u32, l: u32, up: bool) {
    let ki = sortb[base + i];
    let ii = sortb[base + a.p + i];
    let kl = sortb[base + l];
    let il = sortb[base + a.p + l];
    if (aot_after(ki, ii, kl, il) == up) {
        sortb[base + i] = kl;
        sortb[base + a.p + i] = il;
        sortb[base + l] = ki;
        sortb[base + a.p + l] = ii;
    }
}

@compute @workgroup_size(256)
fn aot_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = aot_index(wid, nwg, lid);
    if (i >= a.p) {
        return;
    }
    let l = i ^ a.j;
    if (l <= i) {
        return;
    }
    let up = (i & a.k) == 0u;
    aot_cmpx(0u, i, l, up);
    aot_cmpx(2u * a.p, i, l, up);
}

@compute @workgroup_size(256)
fn aot_terms(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let k = aot_index(wid, nwg, lid);
    if (k >= a.b) {
        return;
    }
    let su = sortb[a.p + k];
    let sv = sortb[3u * a.p + k];
    let x = a.beta * (aot_u(su) - aot_v(sv));
    terms[k] = (1.0 - a.eps) * lk_softplus(-x) + a.eps * lk_softplus(x);
    let g = a.scale * a.beta * (-(1.0 - a.eps) * lk_sigmoid(-x) + a.eps * lk_sigmoid(x));
    dpc[su] = g;
    if (a.paired == 1u) {
        dpr[su] = -g;
    } else {
        dpr[sv] = -g;
    }
}
