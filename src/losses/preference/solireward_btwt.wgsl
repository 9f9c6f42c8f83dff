// solireward_btwt under the per-sample contract v1 (after the losskit prelude and
// family.wgsl): one invocation per pair. Inputs: chosen / rejected rewards, quality labels
// (optional, both or neither; a pair is a tie iff its labels are equal).
// The host has checked that bce_weight > 0 comes with the labels.
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
    let m = lk_param(LK_P_MARGIN);
    let eps = lk_param(LK_P_BT_LABEL_SMOOTHING);
    let wbce = lk_param(LK_P_BCE_WEIGHT);
    let labels = lk_present(LK_IN_QUALITY_CHOSEN);
    let a = rw[i];
    let b = rl[i];
    let d = a - b;
    var loss: f32;
    var gd: f32;
    if (labels && q_w[i] == q_l[i]) {
        let wt = lk_param(LK_P_TIE_WEIGHT);
        loss = wt * (lk_softplus(m - d) + lk_softplus(m + d));
        gd = wt * (-lk_sigmoid(m - d) + lk_sigmoid(m + d));
    } else {
        let wb = lk_param(LK_P_BT_WEIGHT);
        loss = wb * ((1.0 - eps) * lk_softplus(m - d) + eps * lk_softplus(m + d));
        gd = wb * (-(1.0 - eps) * lk_sigmoid(m - d) + eps * lk_sigmoid(m + d));
    }
    var ga = gd;
    var gb = -gd;
    if (labels && wbce > 0.0) {
        let eb = lk_param(LK_P_BCE_LABEL_SMOOTHING);
        let yw = bce_target(q_w[i], eb);
        let yl = bce_target(q_l[i], eb);
        loss += wbce * 0.5 * (lk_softplus(a) - yw * a + lk_softplus(b) - yl * b);
        ga += wbce * 0.5 * (lk_sigmoid(a) - yw);
        gb += wbce * 0.5 * (lk_sigmoid(b) - yl);
    }
    lk_loss[i] = loss;
    g_rw[i] = ga;
    g_rl[i] = gb;
}
