// grad_entanglement under the per-sample contract, after the losskit prelude: one invocation
// per pair of [B, D] rows. dims[0] = (B, D). Parameters: 0 lambda_w, 1 lambda_l. Writes the
// per-pair value cos and the auxiliary output stats [B, 8] (no gradient). The three sums are
// compensated (Kahan) in f32.
@group(0) @binding(1) var<storage, read> gw: array<f32>;
@group(0) @binding(2) var<storage, read> gl: array<f32>;
@group(0) @binding(3) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

fn ge_kahan(acc: vec2<f32>, v: f32) -> vec2<f32> {
    let y = v - acc.y;
    let t = acc.x + y;
    return vec2<f32>(t, (t - acc.x) - y);
}

// x / d, 0 where d = 0.
fn ge_ratio(x: f32, d: f32) -> f32 {
    if (d == 0.0) {
        return 0.0;
    }
    return x / d;
}

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let d = lk.dims[0].y;
    let lw = lk.params[0].x;
    let ll = lk.params[0].y;
    var ip = vec2<f32>(0.0, 0.0);
    var nw = vec2<f32>(0.0, 0.0);
    var nl = vec2<f32>(0.0, 0.0);
    for (var k = 0u; k < d; k++) {
        let a = gw[i * d + k];
        let b = gl[i * d + k];
        ip = ge_kahan(ip, a * b);
        nw = ge_kahan(nw, a * a);
        nl = ge_kahan(nl, b * b);
    }
    // cos = ip / sqrt(nw nl), with the square roots taken apart (no overflow of nw nl).
    let c = ge_ratio(ip.x, sqrt(nw.x) * sqrt(nl.x));
    let o = i * 8u;
    stats[o] = ip.x;
    stats[o + 1u] = nw.x;
    stats[o + 2u] = nl.x;
    stats[o + 3u] = c;
    stats[o + 4u] = ge_ratio(ip.x, nw.x);
    stats[o + 5u] = ge_ratio(ip.x, nl.x);
    stats[o + 6u] = lw * nw.x - ll * ip.x;
    stats[o + 7u] = lw * ip.x - ll * nl.x;
    lk_loss[i] = c;
}
