// reward_shaped_ntp on the per-sample contract (after prelude.wgsl and sample_prelude.wgsl).
// u = log pi_y, log w_pos = u + exp(beta log1mexp(u) + log(-u)) (0 when u = 0); the top set
// (when lambda_top != lambda_tail and top_k < C) is the top_k largest logits, ties to the
// lower index: the k-th largest key T (found bit by bit over the total-order keys, 32
// counting passes) bounds it, and the first k - #{key > T} classes with key = T complete it.
// l = -w_pos u - lambda_top sum_top pi log pi - lambda_rest sum_rest pi log pi (non-target
// classes); dl/dz_c = pi_c S - c_c with S = w_pos + lambda_top sum_top pi + lambda_rest
// sum_rest pi and c_y = w_pos, c_c = lambda pi_c (the surrogate of reward_shaped_ntp.rs).
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> g_logits: array<f32>;

// Histogram of the byte at bit `lo` of the keys that share kth's bytes above it.
fn rs_hist(base: u32, classes: u32, lo: u32, kth: u32) -> array<u32, 256> {
    var hist: array<u32, 256>;
    let hi = lo + 8u;
    for (var c = 0u; c < classes; c++) {
        let key = lk_order_key(logits[base + c]);
        if ((key >> hi) == (kth >> hi)) {
            hist[(key >> lo) & 255u] += 1u;
        }
    }
    return hist;
}

// The digit where the count from the top reaches `need`, and the count above it.
fn rs_pick(hist_in: array<u32, 256>, need: u32) -> vec2<u32> {
    var hist = hist_in;
    var above = 0u;
    for (var d = 255i; d >= 0i; d--) {
        let h = hist[d];
        if (above + h >= need) {
            return vec2<u32>(u32(d), above);
        }
        above += h;
    }
    return vec2<u32>(0u, above);
}

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let classes = lk_dim(LK_DIM_C);
    let base = i * classes;
    let tg = labels[i];
    if (lk_ignored(tg, classes, lk_param(LK_P_IGNORE_INDEX))) {
        lk_loss[i] = 0.0;
        for (var c = 0u; c < classes; c++) {
            g_logits[base + c] = 0.0;
        }
        return;
    }
    let y = u32(tg);
    let beta = lk_param(LK_P_BETA);
    let lam_top = lk_param(LK_P_LAMBDA_TOP);
    let lam_tail = lk_param(LK_P_LAMBDA_TAIL);
    let kf = lk_param(LK_P_TOP_K);
    let split = lam_top != lam_tail && kf < f32(classes);
    // First pass: the log-sum-exp and, when there is a top set, the histogram of the keys'
    // top byte.
    var hist: array<u32, 256>;
    var e = lk_lse0();
    for (var c = 0u; c < classes; c++) {
        let x = logits[base + c];
        e = lk_lse_add(e, x);
        if (split) {
            hist[lk_order_key(x) >> 24u] += 1u;
        }
    }
    let lse = lk_lse(e);
    let u = min(logits[base + y] - lse, 0.0);
    let pi_y = exp(u);
    var log_w = 0.0;
    if (u < 0.0) {
        log_w = u + exp(beta * lk_log1mexp(u) + log(-u));
    }
    let w_pos = exp(log_w);
    // The k-th largest key (kth) and how many of its ties belong to the top set.
    var kth = 0u;
    var ties = 0u;
    if (split) {
        // need: rank of the wanted key among the keys with the digits chosen so far. The
        // levels are written out so that every loop is a single pass of its own.
        var need = u32(kf);
        var dg = rs_pick(hist, need);
        kth = dg.x << 24u;
        need -= dg.y;
        dg = rs_pick(rs_hist(base, classes, 16u, kth), need);
        kth |= dg.x << 16u;
        need -= dg.y;
        dg = rs_pick(rs_hist(base, classes, 8u, kth), need);
        kth |= dg.x << 8u;
        need -= dg.y;
        dg = rs_pick(rs_hist(base, classes, 0u, kth), need);
        kth |= dg.x;
        need -= dg.y;
        ties = need;
    }
    // Sums over the non-target classes of the top set, then over all classes.
    var sp_top = lk_sum0();
    var spl_top = lk_sum0();
    var tot = lk_sum0();
    var seen = 0u;
    for (var c = 0u; c < classes; c++) {
        let lp = logits[base + c] - lse;
        let p = exp(lp);
        tot = lk_sum_add(tot, p * lp);
        if (split) {
            let key = lk_order_key(logits[base + c]);
            var in_top = key > kth;
            if (key == kth) {
                in_top = seen < ties;
                seen += 1u;
            }
            if (in_top && c != y) {
                sp_top = lk_sum_add(sp_top, p);
                spl_top = lk_sum_add(spl_top, p * lp);
            }
        }
    }
    let lam_rest = select(lam_top, lam_tail, split);
    var sp_rest = 0.0;
    var spl_rest = 0.0;
    if (lam_rest != 0.0) {
        sp_rest = 1.0 - pi_y - sp_top.s;
        spl_rest = tot.s - pi_y * u - spl_top.s;
    }
    lk_loss[i] = -w_pos * u - lam_top * spl_top.s - lam_rest * spl_rest;
    let total = w_pos + lam_top * sp_top.s + lam_rest * sp_rest;
    seen = 0u;
    for (var c = 0u; c < classes; c++) {
        let p = exp(logits[base + c] - lse);
        var lam = lam_rest;
        if (split) {
            let key = lk_order_key(logits[base + c]);
            var in_top = key > kth;
            if (key == kth) {
                in_top = seen < ties;
                seen += 1u;
            }
            if (in_top) {
                lam = lam_top;
            }
        }
        g_logits[base + c] = p * (total - lam);
    }
    g_logits[base + y] = pi_y * total - w_pos;
}
