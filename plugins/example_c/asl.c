/*
 * asl.c: a losskit plugin in plain C99 that adds the asymmetric loss for multi-label
 * classification (ASL), with a CPU callback and a WGSL kernel for the GPU backend.
 *
 * Source: T. Ridnik, E. Ben-Baruch, N. Zamir, A. Noy, I. Friedman, M. Protter,
 * L. Zelnik-Manor, "Asymmetric Loss For Multi-Label Classification", ICCV 2021
 * (official code: github.com/Alibaba-MIIL/ASL).
 *
 * For logits x [N, C] and targets y [N, C] in [0, 1] (usually 0 or 1), with p = sigmoid(x)
 * and the shifted probability p_m = max(p - clip, 0), the per-row loss is
 *
 *   l_i = sum_c  y * (1 - p)^gamma_pos * softplus(-x)            (positives, -log p)
 *              + (1 - y) * p_m^gamma_neg * (-log(1 - p_m))         (negatives)
 *
 * written with the stable forms -log p = softplus(-x) and, when clip = 0,
 * -log(1 - p) = softplus(x). The gradient is the exact derivative of this function,
 * focusing weights included (the official code can detach them; the exact gradient is what
 * a finite-difference check verifies). The official code clamps log arguments at 1e-8;
 * the stable forms need no clamp, which only matters for |x| > 18.
 *
 * Build:  cc -std=c99 -O2 -shared -fPIC -I<losskit>/include -o libasl.so asl.c -lm
 * Load:   lk_plugin_load(ctx, "./libasl.so", NULL)   (entry lk_plugin_init)
 */
#include <math.h>
#include <stdlib.h>

#include "losskit_plugin.h" /* the plugin ABI; it includes losskit.h */

static const lk_host_api_v1 *host;

/* The parameters, in the order they are declared below. */
enum { P_GAMMA_POS, P_GAMMA_NEG, P_CLIP, N_PARAMS };

static double softplus(double x) {
    return (x > 0.0 ? x : 0.0) + log1p(exp(-fabs(x)));
}

static double sigmoid(double x) {
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    double e = exp(x);
    return e / (1.0 + e);
}

/* b^e with 0^0 = 1 (the focusing weights use it at b = 0). */
static double powz(double b, double e) {
    if (e == 0.0) {
        return 1.0;
    }
    return b <= 0.0 ? 0.0 : pow(b, e);
}

/* The loss and its derivative for one element. */
static double asl_elem(double x, double y, double gp, double gn, double clip, double *dx) {
    double p = sigmoid(x), omp = sigmoid(-x);
    double spn = softplus(-x); /* -log p */
    double wp = powz(omp, gp);
    double lpos = wp * spn;
    double dpos = -wp * (gp * p * spn + omp);
    double lneg = 0.0, dneg = 0.0;
    double pm = p - clip;
    if (pm > 0.0) {
        double q = omp + clip;                      /* 1 - p_m */
        double lq = clip > 0.0 ? log(q) : -softplus(x); /* log(1 - p_m) <= 0 */
        double wn = powz(pm, gn);
        lneg = -wn * lq;
        dneg = p * (omp / q) * wn;
        if (gn != 0.0) {
            dneg -= p * omp * gn * powz(pm, gn - 1.0) * lq;
        }
    }
    *dx = y * dpos + (1.0 - y) * dneg;
    return y * lpos + (1.0 - y) * lneg;
}

static int32_t asl_compute(const void *state, const lk_param_value *params, size_t n_params,
                           const lk_plugin_call_v1 *call, lk_error_sink *err) {
    (void)state;
    if (n_params != N_PARAMS || call->n_inputs != 2) {
        host->set_error(err, "asl: unexpected call layout");
        return LK_ERR_PLUGIN_FAILED;
    }
    double gp = params[P_GAMMA_POS].f64, gn = params[P_GAMMA_NEG].f64;
    double clip = params[P_CLIP].f64;
    size_t n = call->rows;
    size_t c_n = (size_t)call->dims[1]; /* letters in order of appearance: N, C */
    const float *x = (const float *)call->inputs[0].data;
    const float *y = (const float *)call->inputs[1].data;
    float *gx = call->grads[0]; /* NULL when the gradient is not wanted */
    for (size_t i = 0; i < n; i++) {
        double acc = 0.0;
        for (size_t c = 0; c < c_n; c++) {
            size_t k = i * c_n + c;
            double d;
            acc += asl_elem(x[k], y[k], gp, gn, clip, &d);
            if (gx) {
                gx[k] = (float)d;
            }
        }
        call->loss[i] = (float)acc; /* unscaled: the host applies reduction and grad_output */
    }
    return LK_OK;
}

/* The same math for the GPU backend (per-sample kernel contract v1: the host prepends the
 * LkInfo prelude and constants naming the spec's parameters, inputs and letters (LK_P_CLIP,
 * LK_DIM_C...), binds input k at 1 + k, the per-row loss after the inputs, then one
 * gradient buffer per differentiable input). */
static const char asl_wgsl[] =
    "@group(0) @binding(1) var<storage, read> logits: array<f32>;\n"
    "@group(0) @binding(2) var<storage, read> targets: array<f32>;\n"
    "@group(0) @binding(3) var<storage, read_write> lk_loss: array<f32>;\n"
    "@group(0) @binding(4) var<storage, read_write> grad_logits: array<f32>;\n"
    "fn softplus(x: f32) -> f32 { return max(x, 0.0) + log(1.0 + exp(-abs(x))); }\n"
    "fn sigmoid(x: f32) -> f32 {\n"
    "  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }\n"
    "  let e = exp(x);\n"
    "  return e / (1.0 + e);\n"
    "}\n"
    "fn powz(b: f32, e: f32) -> f32 {\n"
    "  if (e == 0.0) { return 1.0; }\n"
    "  if (b <= 0.0) { return 0.0; }\n"
    "  return pow(b, e);\n"
    "}\n"
    "@compute @workgroup_size(64)\n"
    "fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {\n"
    "  let i = gid.x;\n"
    "  if (i >= lk.rows) { return; }\n"
    "  let cn = lk_dim(LK_DIM_C);\n"
    "  let gp = lk_param(LK_P_GAMMA_POS);\n"
    "  let gn = lk_param(LK_P_GAMMA_NEG);\n"
    "  let clip = lk_param(LK_P_CLIP);\n"
    "  var acc = 0.0;\n"
    "  for (var c = 0u; c < cn; c = c + 1u) {\n"
    "    let k = i * cn + c;\n"
    "    let x = logits[k];\n"
    "    let y = targets[k];\n"
    "    let p = sigmoid(x);\n"
    "    let omp = sigmoid(-x);\n"
    "    let spn = softplus(-x);\n"
    "    let wp = powz(omp, gp);\n"
    "    let lpos = wp * spn;\n"
    "    let dpos = -wp * (gp * p * spn + omp);\n"
    "    var lneg = 0.0;\n"
    "    var dneg = 0.0;\n"
    "    let pm = p - clip;\n"
    "    if (pm > 0.0) {\n"
    "      let q = omp + clip;\n"
    "      var lq = log(q);\n"
    "      if (clip <= 0.0) { lq = -softplus(x); }\n"
    "      let wn = powz(pm, gn);\n"
    "      lneg = -wn * lq;\n"
    "      dneg = p * (omp / q) * wn;\n"
    "      if (gn != 0.0) { dneg = dneg - p * omp * gn * powz(pm, gn - 1.0) * lq; }\n"
    "    }\n"
    "    acc = acc + y * lpos + (1.0 - y) * lneg;\n"
    "    grad_logits[k] = y * dpos + (1.0 - y) * dneg;\n"
    "  }\n"
    "  lk_loss[i] = acc;\n"
    "}\n";

static const lk_plugin_input_v1 asl_inputs[] = {
    {"logits", "N,C", "unnormalised scores, one per label", {LK_DTYPE_CODE_FLOAT, 32, 1},
     true, false, LK_DOMAIN_REAL, NULL},
    {"targets", "N,C", "1 for a present label, 0 for an absent one (soft values allowed)",
     {LK_DTYPE_CODE_FLOAT, 32, 1}, false, false, LK_DOMAIN_BINARY, NULL},
};

/* A helper for f64 parameters with a closed lower bound and an open upper bound. */
#define F64_PARAM(name, doc, def, lo, hi)                                                  \
    {name, doc, LK_PARAM_F64, def, lo, hi, false, true, 0, 0, 0, false, NULL, 0, 0}

static const lk_plugin_param_v1 asl_params[N_PARAMS] = {
    F64_PARAM("gamma_pos", "focusing exponent of the positives", 1.0, 0.0, INFINITY),
    F64_PARAM("gamma_neg", "focusing exponent of the negatives", 4.0, 0.0, INFINITY),
    F64_PARAM("clip", "probability margin m: negatives with p <= m are discarded", 0.05, 0.0,
              1.0),
};

static const lk_plugin_loss_v1 asl_loss = {
    sizeof(lk_plugin_loss_v1),
    "asymmetric_loss",
    "classification",
    "Asymmetric loss (ASL) for multi-label classification: focusing and probability "
    "shifting of the negatives",
    "Ridnik et al., Asymmetric Loss For Multi-Label Classification, ICCV 2021 "
    "(github.com/Alibaba-MIIL/ASL)",
    "N",   /* per-sample letter */
    false, /* batch_level */
    2, asl_inputs,
    N_PARAMS, asl_params,
    0, NULL,     /* no auxiliary outputs */
    NULL, NULL,  /* no create/destroy: compute reads the parameters directly */
    asl_compute,
    asl_wgsl,
};

static const lk_plugin_loss_v1 *const asl_losses[] = {&asl_loss};

static const lk_plugin_v1 asl_plugin = {
    LK_PLUGIN_ABI_VERSION, sizeof(lk_plugin_v1), "asl", "1.0.0", 1, asl_losses,
};

int32_t lk_plugin_init(const lk_host_api_v1 *h, lk_error_sink *err, const lk_plugin_v1 **out) {
    if (h->abi_version != LK_PLUGIN_ABI_VERSION) {
        return LK_ERR_PLUGIN_ABI; /* cannot use set_error of another ABI safely */
    }
    (void)err;
    host = h;
    *out = &asl_plugin;
    return LK_OK;
}

/* The file-name entry point (libasl.so -> lk_plugin_asl_init), so several plugins can be
 * linked into one program. */
int32_t lk_plugin_asl_init(const lk_host_api_v1 *h, lk_error_sink *err,
                           const lk_plugin_v1 **out) {
    return lk_plugin_init(h, err, out);
}
