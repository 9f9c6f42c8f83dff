// Shared WGSL of the RL family (ppo_clip, grpo, steer), after the losskit prelude and the
// per-sample contract prelude. Mirrors rl/mod.rs: the clipped surrogate and the loss_agg
// row denominators.

// The PPO clipped surrogate of one token: (loss, d loss / d logp), as rl::clipped_surrogate.
// delta = logp - old (clamped to [-20, 20] with zero gradient beyond when clamp_delta),
// r = e^delta, C = max(-A r, -A clip(r, 1 - lo, 1 + hi)); dual > 0: min(-A dual, C) for A < 0.
// The derivative is -A r on the on_set set, else 0.
fn lk_rl_clip(delta: f32, a: f32, lo: f32, hi: f32, dual: f32, clamp_delta: bool) -> vec2<f32> {
    var d = delta;
    var dead = false;
    if (clamp_delta && abs(delta) >= 20.0) {
        d = clamp(delta, -20.0, 20.0);
        dead = true;
    }
    let r = exp(d);
    let c = max(-a * r, -a * clamp(r, 1.0 - lo, 1.0 + hi));
    var loss = c;
    var on_set = false;
    if (a >= 0.0) {
        on_set = r <= 1.0 + hi;
    } else if (dual > 0.0) {
        loss = min(-a * dual, c);
        on_set = r >= 1.0 - lo && r <= dual;
    } else {
        on_set = r >= 1.0 - lo;
    }
    var g = 0.0;
    if (on_set && !dead) {
        g = -a * r;
    }
    return vec2<f32>(loss, g);
}

// Row denominator of loss_agg (agg = u32(lk_param(LK_P_LOSS_AGG))): seq_mean_token_mean uses
// the row's mask count; the other modes use the host's value (the same for every row, from
// rl::denominators).
fn lk_rl_den(agg: u32, count: f32, host_den: f32) -> f32 {
    if (agg == LK_E_LOSS_AGG_SEQ_MEAN_TOKEN_MEAN) {
        return max(count, 1.0);
    }
    return host_den;
}
