// seppo under the per-sample contract v1 (after the losskit prelude and family.wgsl): one
// invocation per pair. Inputs: err_win, err_win_ref, err_sample, err_sample_ref (MSEs,
// checked >= 0 by the host).
@group(0) @binding(1) var<storage, read> err_win: array<f32>;
@group(0) @binding(2) var<storage, read> err_win_ref: array<f32>;
@group(0) @binding(3) var<storage, read> err_sample: array<f32>;
@group(0) @binding(4) var<storage, read> err_sample_ref: array<f32>;
@group(0) @binding(5) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(6) var<storage, read_write> g_win: array<f32>;
@group(0) @binding(7) var<storage, read_write> g_sample: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let half_beta = 0.5 * lk_param(LK_P_BETA);
    let dw = err_win[i] - err_win_ref[i];
    let dr = err_sample[i] - err_sample_ref[i];
    // The sign of an f32 difference is exact, so the anchor decision matches the CPU's.
    var s = 1.0;
    if (u32(lk_param(LK_P_CRITERION)) == LK_E_CRITERION_ANCHOR && dw > 0.0) {
        s = -1.0;
    }
    let x = -half_beta * (dw - s * dr);
    let g = half_beta * lk_sigmoid(-x);
    lk_loss[i] = lk_softplus(-x);
    g_win[i] = g;
    g_sample[i] = -s * g;
}
