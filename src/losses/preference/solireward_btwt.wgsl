// solireward_btwt under the per-sample contract v1 (after the losskit prelude and
// family.wgsl): one invocation per pair. Inputs: chosen / rejected rewards, quality labels
// (optional, both or neither; a pair is a tie iff its labels are equal). Parameters:
// 0 margin, 1 bt_label_smoothing, 2 bt_weight, 3 tie_weight, 4 bce_weight,
// 5 bce_label_smoothing. The host has checked that bce_weight > 0 comes with the labels.
@group(0) @binding(1) var<storage, read> rw: array<f32>;
@group(0) @binding(2) var<storage, read> rl: array<f32>;
@group(0) @binding(3) var<storage, read> q_w: array<f32>;
@group(0) @binding(4) var<storage, read> q_l: array<f32>;
@group(0) @binding(5) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(6) var<storage, read_write> g_rw: array<f32>;
@group(0) @binding(7) var<storage, read_write> g_rl: array<f32>;

// BCE target of a quality label with label smoothing eb.
fn bce_target(q: f32, eb: f32) -> f32 {
    return select(0.0, 1.0 - eb, q > 0.0) + 0.5 * eb;
}

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let m = pf_param(0u);
    let eps = pf_param(1u);
    let wbce = pf_param(4u);
    let labels = pf_present(2u);
    let a = rw[i];
    let b = rl[i];
    let d = a - b;
    var loss: f32;
    var gd: f32;
    if (labels && q_w[i] == q_l[i]) {
        let wt = pf_param(3u);
        loss = wt * (pf_softplus(m - d) + pf_softplus(m + d));
        gd = wt * (-pf_sigmoid(m - d) + pf_sigmoid(m + d));
    } else {
        let wb = pf_param(2u);
        loss = wb * ((1.0 - eps) * pf_softplus(m - d) + eps * pf_softplus(m + d));
        gd = wb * (-(1.0 - eps) * pf_sigmoid(m - d) + eps * pf_sigmoid(m + d));
    }
    var ga = gd;
    var gb = -gd;
    if (labels && wbce > 0.0) {
        let eb = pf_param(5u);
        let yw = bce_target(q_w[i], eb);
        let yl = bce_target(q_l[i], eb);
        loss += wbce * 0.5 * (pf_softplus(a) - yw * a + pf_softplus(b) - yl * b);
        ga += wbce * 0.5 * (pf_sigmoid(a) - yw);
        gb += wbce * 0.5 * (pf_sigmoid(b) - yl);
    }
    lk_loss[i] = loss;
    g_rw[i] = ga;
    g_rl[i] = gb;
}
