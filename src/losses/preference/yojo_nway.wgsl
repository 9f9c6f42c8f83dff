// yojo_nway under the per-sample contract v1 (after the losskit prelude and family.wgsl):
// one invocation per row. Inputs: scores [N, K]; exactly one of target [N] (i32) and
// target_probs [N, K]; valid [N, K] (optional 0/1). The host has made every check of the
// CPU path (targets, soft mass, valid values) and divides the mean by the rows not ignored.
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> hard_target: array<i32>;
@group(0) @binding(3) var<storage, read> target_probs: array<f32>;
@group(0) @binding(4) var<storage, read> valid: array<f32>;
@group(0) @binding(5) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(6) var<storage, read_write> g_scores: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let k = lk_dim(LK_DIM_K);
    let tau = lk_param(LK_P_TEMPERATURE);
    let base = i * k;
    let hard = lk_present(LK_IN_TARGET);
    let has_valid = lk_present(LK_IN_VALID);
    var y = -1;
    if (hard) {
        y = hard_target[i];
    }
    // Target weights: one-hot for a hard target, q for soft targets; an ignored row has none.
    var mass = 0.0;
    if (hard) {
        if (f32(y) != lk_param(LK_P_IGNORE_INDEX)) {
            mass = 1.0;
        }
    } else {
        for (var j = 0u; j < k; j++) {
            mass += target_probs[base + j];
        }
    }
    if (mass == 0.0) {
        lk_loss[i] = 0.0;
        for (var j = 0u; j < k; j++) {
            g_scores[base + j] = 0.0;
        }
        return;
    }
    // Max-shifted log-sum-exp over the valid entries of scores / tau.
    var mx = LK_NEG_BIG;
    for (var j = 0u; j < k; j++) {
        if (!has_valid || valid[base + j] == 1.0) {
            mx = max(mx, scores[base + j] / tau);
        }
    }
    var s = 0.0;
    for (var j = 0u; j < k; j++) {
        if (!has_valid || valid[base + j] == 1.0) {
            s += exp(scores[base + j] / tau - mx);
        }
    }
    let lse = mx + log(s);
    var loss = 0.0;
    for (var j = 0u; j < k; j++) {
        var g = 0.0;
        if (!has_valid || valid[base + j] == 1.0) {
            var wj = 0.0;
            if (hard) {
                wj = select(0.0, 1.0, y == i32(j));
            } else {
                wj = target_probs[base + j];
            }
            let lp = scores[base + j] / tau - lse;
            loss -= wj * lp;
            g = (mass * exp(lp) - wj) / tau;
        }
        g_scores[base + j] = g;
    }
    lk_loss[i] = loss;
}
