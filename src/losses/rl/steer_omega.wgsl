// STEER's entropy-change score of one token (steer::weights), shared by the min/max pass and
// the loss kernel so both see the same f32 value:
// p = clamp(e^logp, 1e-8, 1 - 1e-8), Omega = |A / clamp(e^old, 1e-8, 1) p (1 - p)(log p + H)|,
// 0 when not finite. 1 - p comes from expm1 (no cancellation for p near 1).
fn steer_omega(lp: f32, old: f32, a: f32, h: f32) -> f32 {
    var p = exp(lp);
    var q = -lk_expm1(lp);
    var logp = lp;
    if (p < 1e-8) {
        p = 1e-8;
        q = 1.0 - 1e-8;
        logp = -18.420680743952367;
    } else if (q < 1e-8) {
        p = 1.0 - 1e-8;
        q = 1e-8;
        logp = -1e-8;
    }
    let po = clamp(exp(old), 1e-8, 1.0);
    let o = abs(a / po * p * q * (logp + h));
    // Not finite (NaN fails the comparison): 0, as the CPU path.
    return select(0.0, o, o <= 3.4e38);
}
