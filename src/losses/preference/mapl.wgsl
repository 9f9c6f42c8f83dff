// mapl under the per-sample contract v1 (after the losskit prelude and family.wgsl): one
// invocation per pair. Inputs: win / lose log-probs (or rewards), reference win / lose
// (optional, dpo mode), level (optional i32 in {0, 1, 2}, checked by the host). Parameters:
// 0 beta, 1 mode (0 dpo, 1 rm), 2 w_intra, 3 w_inter.
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
    var k = pf_param(0u);
    if (pf_param(1u) == 1.0) {
        k = 1.0;
    }
    var wl = 1.0;
    if (pf_present(4u)) {
        let lv = level[i];
        if (lv == 1) {
            wl = pf_param(2u);
        } else if (lv == 2) {
            wl = pf_param(3u);
        }
    }
    var d = win[i] - lose[i];
    if (pf_present(2u)) {
        d = (win[i] - ref_win[i]) - (lose[i] - ref_lose[i]);
    }
    let z = k * d;
    let g = -wl * pf_sigmoid(-z) * k;
    lk_loss[i] = wl * pf_softplus(-z);
    g_win[i] = g;
    g_lose[i] = -g;
}
