// sparsepo_mask under the per-sample contract, after the losskit prelude: one invocation per
// row of mask [N, T]. dims[0] = (L, N, T). activations [L, N, T] are bound whole (the letter
// L comes first), indexed with the global row lk.row_offset + i; mask and the auxiliary
// output token_mask [N, T] are chunk-local. Writes the row's mask mass sum_t m.
@group(0) @binding(1) var<storage, read> act: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> token_mask: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let nl = lk_dim(LK_DIM_L);
    let n = lk_dim(LK_DIM_N);
    let t = lk_dim(LK_DIM_T);
    let gi = lk.row_offset + i;
    let base = i * t;
    var some = false;
    for (var j = 0u; j < t; j++) {
        token_mask[base + j] = 0.0;
        some = some || mask[base + j] == 1.0;
    }
    if (!some) {
        lk_loss[i] = 0.0;
        return;
    }
    for (var l = 0u; l < nl; l++) {
        let a0 = (l * n + gi) * t;
        var lo = 3.0e38;
        var hi = -3.0e38;
        for (var j = 0u; j < t; j++) {
            if (mask[base + j] == 1.0) {
                lo = min(lo, act[a0 + j]);
                hi = max(hi, act[a0 + j]);
            }
        }
        for (var j = 0u; j < t; j++) {
            if (mask[base + j] == 1.0) {
                var r = 1.0;
                if (hi > lo) {
                    r = (act[a0 + j] - lo) / (hi - lo);
                }
                token_mask[base + j] += r;
            }
        }
    }
    var s = lk_acc0();
    for (var j = 0u; j < t; j++) {
        let m = token_mask[base + j] / f32(nl);
        token_mask[base + j] = m;
        s = lk_acc_add(s, m);
    }
    lk_loss[i] = lk_acc(s);
}
