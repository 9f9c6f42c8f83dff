// amp_entropy: the per-row part on the GPU (after the losskit prelude). One workgroup per row
// of the Gram matrix [N, N] (from the tiled pairwise kernels): the row softmax of
// temp_inv * gram, its entropy H_i, and (when asked) G_ij = -P_ij (log P_ij + H_i) / N written
// over the Gram row. Reductions over the row in one fixed tree order.

struct AU {
    rows: u32,
    want_grad: u32,
    pad: u32,
    pad2: u32,
    tau: f32,
    inv_n: f32,
    pad3: f32,
    pad4: f32,
}

@group(0) @binding(0) var<uniform> h: AU;
@group(0) @binding(1) var<storage, read_write> gram: array<f32>;
@group(0) @binding(2) var<storage, read_write> ent: array<f32>;

const HW: u32 = 256u;

var<workgroup> red: array<f32, 256>;

fn tree_max(li: u32) -> f32 {
    workgroupBarrier();
    for (var s = HW / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            red[li] = max(red[li], red[li + s]);
        }
        workgroupBarrier();
    }
    let v = red[0];
    workgroupBarrier();
    return v;
}

fn tree_sum(li: u32) -> f32 {
    workgroupBarrier();
    for (var s = HW / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            red[li] = red[li] + red[li + s];
        }
        workgroupBarrier();
    }
    let v = red[0];
    workgroupBarrier();
    return v;
}

@compute @workgroup_size(256)
fn rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = wid.y * nwg.x + wid.x;
    if (i >= h.rows) {
        return;
    }
    let n = h.rows;
    let base = i * n;
    var m = LK_NEG_BIG;
    for (var j = li; j < n; j += HW) {
        m = max(m, h.tau * gram[base + j]);
    }
    red[li] = m;
    let mx = tree_max(li);
    var s = 0.0;
    for (var j = li; j < n; j += HW) {
        s += lk_exp_sub(h.tau * gram[base + j], mx);
    }
    red[li] = s;
    let lse = mx + log(tree_sum(li));
    var e = 0.0;
    for (var j = li; j < n; j += HW) {
        let lp = min(h.tau * gram[base + j] - lse, 0.0);
        e += exp(lp) * lp;
    }
    red[li] = e;
    let hh = -tree_sum(li);
    if (li == 0u) {
        ent[i] = hh;
    }
    if (h.want_grad == 0u) {
        return;
    }
    for (var j = li; j < n; j += HW) {
        let lp = min(h.tau * gram[base + j] - lse, 0.0);
        gram[base + j] = -exp(lp) * (lp + hh) * h.inv_n;
    }
}
