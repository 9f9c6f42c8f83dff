// rso_accept under the per-sample contract, after the losskit prelude and family.wgsl: one
// invocation per prompt. Letters (N, K); parameters beta, num_samples, then the host
// constant beta_ok (1 when beta is within the range where this kernel decides, see
// rso_accept.rs). Inputs rewards [N, K], uniforms [N, K, K], valid [N, K] (optional); the
// per-prompt value (mean accepted reward) and the auxiliary outputs accepted [N, K],
// rso_accept_prob [N, K], all chunk-local.
//
// Every test u < exp((r - M) / beta) is decided only when u is farther from the f32
// threshold than a bound on its error; otherwise, and for a non-finite valid reward or an
// unusable beta, the kernel gives up on the prompt and writes UNDECIDED (-2) in its first
// accepted column; the host redoes that prompt in f64. During the rounds the
// rso_accept_prob row holds the candidates still in play (1) as scratch.
@group(0) @binding(1) var<storage, read> rewards: array<f32>;
@group(0) @binding(2) var<storage, read> uniforms: array<f32>;
@group(0) @binding(3) var<storage, read> valid: array<f32>;
@group(0) @binding(4) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> accepted: array<f32>;
@group(0) @binding(6) var<storage, read_write> prob: array<f32>;

const UNDECIDED: f32 = -2.0;
// Below x = (r - M) / beta = -FAR the f64 threshold exp(x) < 1e-52 is under the smallest
// positive f32, so only u = 0 could be accepted.
const FAR: f32 = 120.0;

// Whether candidate j of the prompt at b is a real one.
fn is_valid(b: u32, j: u32) -> bool {
    return !lk_present(LK_IN_VALID) || valid[b + j] == 1.0;
}

// Whether x is an f32 infinity or NaN (from its bits, which no compiler reasons away).
fn non_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

// (r - top) / beta as hb = beta / 2 and r / 2 - top / 2 (no overflow for finite r): returns
// (x, far) where far means x < -FAR (x is then not computed).
fn scaled(r: f32, top: f32, hb: f32) -> vec2<f32> {
    let dh = 0.5 * r - 0.5 * top;
    if (dh < -FAR * hb) {
        return vec2<f32>(-FAR, 1.0);
    }
    return vec2<f32>(dh / hb, 0.0);
}

// The test u < exp((r - top) / beta): 1 accept, 0 reject, 2 undecided.
fn decide(u: f32, r: f32, top: f32, hb: f32) -> u32 {
    if (r == top) {
        return 1u; // exp(0) = 1 > u for u in [0, 1)
    }
    let s = scaled(r, top, hb);
    if (s.y == 1.0) {
        // exp(x) < 1e-52: reject unless u = 0 (accepted in f64 above x = -745).
        return select(2u, 0u, u > 0.0);
    }
    let x = s.x;
    let e = exp(x);
    // Bound on |e - exp_f64(x_f64)|: the f32 exp (within 3 + 2|x| ulp), x rounded three
    // times (r / 2 - top / 2, beta to f32, the division) and flushed denormals, with a wide
    // margin (see the module doc of rso_accept.rs).
    let tol = e * (1.0e-5 + 2.0e-6 * abs(x)) + 1.0e-30;
    if (u < e - tol) {
        return 1u;
    }
    if (u >= e + tol) {
        return 0u;
    }
    return 2u;
}

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let k = lk_dim(LK_DIM_K);
    let m = u32(lk_param(LK_P_NUM_SAMPLES));
    let hb = 0.5 * lk_param(LK_P_BETA);
    let b = i * k;
    let ub = i * k * k;
    var undecided = lk_param(LK_C_BETA_IN_RANGE) != 1.0;
    for (var j = 0u; j < k; j++) {
        accepted[b + j] = -1.0;
        let v = is_valid(b, j);
        prob[b + j] = select(0.0, 1.0, v);
        undecided = undecided || (v && non_finite(rewards[b + j]));
    }
    var count = 0u;
    for (var round = 0u; round < k; round++) {
        if (count >= m || undecided) {
            break;
        }
        var top = LK_NEG_BIG;
        var any = false;
        for (var j = 0u; j < k; j++) {
            if (prob[b + j] == 1.0) {
                top = select(rewards[b + j], max(top, rewards[b + j]), any);
                any = true;
            }
        }
        if (!any) {
            break;
        }
        for (var j = 0u; j < k; j++) {
            if (count >= m) {
                break;
            }
            if (prob[b + j] == 1.0) {
                let t = decide(uniforms[ub + round * k + j], rewards[b + j], top, hb);
                if (t == 2u) {
                    undecided = true;
                    break;
                }
                if (t == 1u) {
                    accepted[b + count] = f32(j);
                    count += 1u;
                    prob[b + j] = 0.0;
                }
            }
        }
    }
    if (undecided) {
        accepted[b] = UNDECIDED;
        lk_loss[i] = 0.0;
        return;
    }
    // Acceptance probabilities against the largest valid reward.
    var top = LK_NEG_BIG;
    var seen = false;
    for (var j = 0u; j < k; j++) {
        if (is_valid(b, j)) {
            top = select(rewards[b + j], max(top, rewards[b + j]), seen);
            seen = true;
        }
    }
    for (var j = 0u; j < k; j++) {
        var q = 0.0;
        if (is_valid(b, j)) {
            let s = scaled(rewards[b + j], top, hb);
            q = select(exp(s.x), 0.0, s.y == 1.0);
        }
        prob[b + j] = q;
    }
    // Mean reward of the accepted (Neumaier-compensated sum).
    var s = 0.0;
    var comp = 0.0;
    for (var a = 0u; a < count; a++) {
        let v = rewards[b + u32(accepted[b + a])];
        let t = s + v;
        if (abs(s) >= abs(v)) {
            comp += (s - t) + v;
        } else {
            comp += (v - t) + s;
        }
        s = t;
    }
    lk_loss[i] = (s + comp) / f32(m);
}
