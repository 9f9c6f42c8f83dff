// mapl under the per-sample contract v1 (after the losskit prelude and family.wgsl): one
// invocation per pair. Inputs: win / lose log-probs (or rewards), reference win / lose
// (optional, dpo mode), level (optional i32 in {0, 1, 2}, checked by the host).
@group(0) @binding(1) var<storage, read> win: array<f32>;
@group(0) @binding(2) var<storage, read> lose: array<f32>;
@group(0) @binding(3) var<storage, read> ref_win: array<f32>;
@group(0) @binding(4) var<storage, read> ref_lose: array<f32>;
@group(0) @binding(5) var<storage, read> level: array<i32>;
@group(0) @binding(6) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(7) var<storage, read_write> g_win: array<f32>;
@group(0) @binding(8) var<storage, read_write> g_lose: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    var k = lk_param(LK_P_BETA);
    if (u32(lk_param(LK_P_MODE)) == LK_E_MODE_RM) {
        k = 1.0;
    }
    var wl = 1.0;
    if (lk_present(LK_IN_LEVEL)) {
        let lv = level[i];
        if (lv == 1) {
            wl = lk_param(LK_P_W_INTRA);
        } else if (lv == 2) {
            wl = lk_param(LK_P_W_INTER);
        }
    }
    var d = win[i] - lose[i];
    if (lk_present(LK_IN_REF_WIN_LOGPS)) {
        d = (win[i] - ref_win[i]) - (lose[i] - ref_lose[i]);
    }
    let z = k * d;
    let g = -wl * lk_sigmoid(-z) * k;
    lk_loss[i] = wl * lk_softplus(-z);
    g_win[i] = g;
    g_lose[i] = -g;
}
