// dco on the per-sample contract (after prelude.wgsl and sample_prelude.wgsl): one
// invocation per sample. As dco_value in dco.rs, in f32:
// l1m = log1mexp(logp); a = log(-l1m) (logp when l1m = 0); b = log n + a;
// l = -b when e^b is below the f32 range of log1mexp, else -log1mexp(-e^b);
// dl/dlogp = -exp(log n + logp + (n-1) l1m + l). logp = 0 (or subnormal): l = 0, F = 1 when
// n = 1 and 0 otherwise (the limits the f64 path reaches through infinities).
@group(0) @binding(1) var<storage, read> logp: array<f32>;
@group(0) @binding(2) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(3) var<storage, read_write> g_logp: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) {
        return;
    }
    let n = lk_param(LK_P_N_PASS);
    let v = logp[i];
    if (v > -1.1754944e-38) {
        lk_loss[i] = 0.0;
        g_logp[i] = select(0.0, -1.0, n == 1.0);
        return;
    }
    let ln_n = log(n);
    let l1m = lk_log1mexp(v);
    var a = v;
    if (l1m < 0.0) {
        a = log(-l1m);
    }
    let b = ln_n + a;
    var loss = -b;
    if (b >= -80.0) {
        loss = -lk_log1mexp(-exp(b));
    }
    var tail = 0.0;
    if (n != 1.0) {
        tail = (n - 1.0) * l1m;
    }
    lk_loss[i] = loss;
    g_logp[i] = -exp(ln_n + v + tail + loss);
}
