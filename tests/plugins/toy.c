/*
 * toy.c: test plugins for tests/plugins.rs. Built once as the working plugin "toy" and
 * once per fault, selected with -D:
 *   TOY_ABI_99         descriptor claims plugin ABI version 99
 *   TOY_NO_ENTRY       exports only toy_custom_entry (no lk_plugin_init)
 *   TOY_DUP_BUILTIN    last loss has the id of a builtin (cross_entropy)
 *   TOY_DUP_SELF       last loss repeats the id of the first
 *   TOY_BAD_DEFAULT    last loss has a parameter default outside its range
 *   TOY_BAD_GRAD       last loss has a differentiable input without the per-sample letter
 *   TOY_INIT_FAILS     the entry point reports an error
 *   TOY_CREATE_REJECTS toy_class's create rejects its default parameters
 *   TOY_SMALL_PLUGIN   lk_plugin_v1.struct_size smaller than ABI v1's
 * The faulty variants keep a valid first loss, so an all-or-nothing load is observable.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "losskit_plugin.h" /* the plugin ABI; it includes losskit.h */

static const lk_host_api_v1 *host;
static int live_states; /* states created and not destroyed yet */

int toy_live_states(void) { return live_states; }

#define F32 {LK_DTYPE_CODE_FLOAT, 32, 1}
#define I64 {LK_DTYPE_CODE_INT, 64, 1}

/* ---- toy_class: l_i = -sign * scale * scores[i, y_i]; aux picked[i] = scores[i, y_i] ---- */

enum { TC_IGNORE, TC_SIGN, TC_SCALE };

typedef struct {
    double factor;
} class_state;

static int32_t class_create(const lk_param_value *p, size_t n, void **out, lk_error_sink *err) {
    (void)n;
#ifdef TOY_CREATE_REJECTS
    (void)p;
    (void)out;
    host->set_error(err, "toy_class: create refuses every configuration");
    return LK_ERR_INVALID_PARAM;
#else
    if (p[TC_SCALE].f64 == 7.0) {
        host->set_error(err, "toy_class: scale 7 is unlucky");
        return LK_ERR_INVALID_PARAM;
    }
    class_state *s = malloc(sizeof *s);
    if (!s) {
        return LK_ERR_OUT_OF_MEMORY;
    }
    s->factor = (p[TC_SIGN].i64 == 0 ? 1.0 : -1.0) * p[TC_SCALE].f64;
    live_states++;
    *out = s;
    (void)err;
    return LK_OK;
#endif
}

static void class_destroy(void *s) {
    live_states--;
    free(s);
}

static int32_t class_compute(const void *state, const lk_param_value *p, size_t n_params,
                             const lk_plugin_call_v1 *call, lk_error_sink *err) {
    (void)n_params;
    (void)err;
    const class_state *s = state;
    size_t c_n = (size_t)call->dims[1];
    const float *x = call->inputs[0].data;
    const int64_t *y = call->inputs[1].data;
    float *g = call->grads[0];
    float *picked = call->aux[0];
    for (size_t i = 0; i < call->rows; i++) {
        if (y[i] == p[TC_IGNORE].i64) {
            continue; /* buffers are zero-filled */
        }
        size_t k = i * c_n + (size_t)y[i];
        call->loss[i] = (float)(-s->factor * x[k]);
        if (g) {
            g[k] = (float)(-s->factor);
        }
        if (picked) {
            picked[i] = x[k];
        }
    }
    return LK_OK;
}

static const char *const sign_choices[] = {"plus", "minus"};

static const lk_plugin_input_v1 class_inputs[] = {
    {"scores", "N,C", "scores", F32, true, false, LK_DOMAIN_REAL, NULL},
    {"label", "N", "class or ignore_index", I64, false, false, LK_DOMAIN_CLASS, "C"},
};
static const lk_plugin_param_v1 class_params[] = {
    {"ignore_index", "ignored label", LK_PARAM_I64, 0, 0, 0, false, false, -100, INT64_MIN,
     INT64_MAX, false, NULL, 0, 0},
    {"sign", "plus or minus", LK_PARAM_ENUM, 0, 0, 0, false, false, 0, 0, 0, false,
     sign_choices, 2, 0},
    {"scale", "factor", LK_PARAM_F64, 1.0, 0.0, 10.0, false, false, 0, 0, 0, false, NULL, 0,
     0},
};
static const lk_plugin_aux_v1 class_aux[] = {{"picked", "N", "the target's score"}};

static const lk_plugin_loss_v1 toy_class = {
    sizeof(lk_plugin_loss_v1), "toy_class", "test", "negative score of the target",
    "tests", "N", false, 2, class_inputs, 3, class_params, 1, class_aux, class_create,
    class_destroy, class_compute, NULL,
};

/* ---- toy_batch (batch-level): L = 0.5 * sum_i sum_d (x_id * w_d)^2 ---- */

static int32_t batch_compute(const void *state, const lk_param_value *p, size_t n_params,
                             const lk_plugin_call_v1 *call, lk_error_sink *err) {
    (void)state, (void)p, (void)n_params, (void)err;
    size_t n = (size_t)call->dims[0], d_n = (size_t)call->dims[1];
    const float *x = call->inputs[0].data, *w = call->inputs[1].data;
    float *gx = call->grads[0], *gw = call->grads[1];
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) {
        for (size_t d = 0; d < d_n; d++) {
            double v = (double)x[i * d_n + d] * w[d];
            acc += 0.5 * v * v;
            if (gx) {
                gx[i * d_n + d] = (float)(v * w[d]);
            }
            if (gw) {
                gw[d] += (float)(v * x[i * d_n + d]);
            }
        }
    }
    call->loss[0] = (float)acc;
    return LK_OK;
}

static const lk_plugin_input_v1 batch_inputs[] = {
    {"x", "N,D", "features", F32, true, false, LK_DOMAIN_REAL, NULL},
    {"w", "D", "shared weights", F32, true, false, LK_DOMAIN_REAL, NULL},
};
static const lk_plugin_loss_v1 toy_batch = {
    sizeof(lk_plugin_loss_v1), "toy_batch", "test", "half squared norm of x*w over the batch",
    "tests", "N", true, 2, batch_inputs, 0, NULL, 0, NULL, NULL, NULL, batch_compute, NULL,
};

/* ---- toy_fail: returns the status in parameter `code` (0 = succeed with l_i = x_i) ---- */

static int32_t fail_compute(const void *state, const lk_param_value *p, size_t n_params,
                            const lk_plugin_call_v1 *call, lk_error_sink *err) {
    (void)state, (void)n_params;
    int32_t code = (int32_t)p[0].i64;
    if (code != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "toy_fail refuses on purpose (rows = %zu)", call->rows);
        host->set_error(err, msg);
        return code;
    }
    const float *x = call->inputs[0].data;
    for (size_t i = 0; i < call->rows; i++) {
        call->loss[i] = x[i];
        if (call->grads[0]) {
            call->grads[0][i] = 1.0f;
        }
    }
    return LK_OK;
}

static const lk_plugin_input_v1 x_input[] = {
    {"x", "N", "values", F32, true, false, LK_DOMAIN_REAL, NULL},
};
static const lk_plugin_param_v1 fail_params[] = {
    {"code", "status to return", LK_PARAM_I64, 0, 0, 0, false, false, 205, 0, 1000, false, NULL,
     0, 0},
};
static const lk_plugin_loss_v1 toy_fail = {
    sizeof(lk_plugin_loss_v1), "toy_fail", "test", "fails with the status `code`", "tests",
    "N", false, 1, x_input, 1, fail_params, 0, NULL, NULL, NULL, fail_compute, NULL,
};

/* ---- toy_nan: NaN loss and gradient ---- */

static int32_t nan_compute(const void *state, const lk_param_value *p, size_t n_params,
                           const lk_plugin_call_v1 *call, lk_error_sink *err) {
    (void)state, (void)p, (void)n_params, (void)err;
    for (size_t i = 0; i < call->rows; i++) {
        call->loss[i] = NAN;
        if (call->grads[0]) {
            call->grads[0][i] = NAN;
        }
    }
    return LK_OK;
}

static const lk_plugin_loss_v1 toy_nan = {
    sizeof(lk_plugin_loss_v1), "toy_nan", "test", "always NaN", "tests", "N", false, 1,
    x_input, 0, NULL, 0, NULL, NULL, NULL, nan_compute, NULL,
};

/* ---- toy_old: a table from before wgsl_source existed (its struct_size stops there) ---- */

static const lk_plugin_loss_v1 toy_old = {
    offsetof(lk_plugin_loss_v1, wgsl_source), "toy_old", "test", "l_i = x_i, old table",
    "tests", "N", false, 1, x_input, 1, fail_params, 0, NULL, NULL, NULL, fail_compute,
    "this is beyond struct_size and must never be read",
};

/* ---- faults ---- */

#if defined(TOY_DUP_BUILTIN) || defined(TOY_DUP_SELF) || defined(TOY_BAD_DEFAULT) ||          \
    defined(TOY_BAD_GRAD)
/* Not static: each variant uses only one of them. */
const lk_plugin_param_v1 toy_bad_params[] = {
    {"scale", "default 20 outside [0, 10]", LK_PARAM_F64, 20.0, 0.0, 10.0, false, false, 0, 0,
     0, false, NULL, 0, 0},
};
const lk_plugin_input_v1 toy_bad_inputs[] = {
    {"x", "N", "values", F32, true, false, LK_DOMAIN_REAL, NULL},
    {"w", "D", "differentiable but not per-sample", F32, true, false, LK_DOMAIN_REAL, NULL},
};
static const lk_plugin_loss_v1 toy_bad = {
    sizeof(lk_plugin_loss_v1),
#if defined(TOY_DUP_BUILTIN)
    "cross_entropy",
#elif defined(TOY_DUP_SELF)
    "toy_class",
#elif defined(TOY_BAD_DEFAULT)
    "toy_bad_default",
#else
    "toy_bad_grad",
#endif
    "test", "a faulty loss", "tests", "N", false,
#if defined(TOY_BAD_GRAD)
    2, toy_bad_inputs, 0, NULL,
#else
    1, x_input,
#if defined(TOY_BAD_DEFAULT)
    1, toy_bad_params,
#else
    0, NULL,
#endif
#endif
    0, NULL, NULL, NULL, nan_compute, NULL,
};
#define TOY_EXTRA , &toy_bad
#define TOY_N_EXTRA 1
#else
#define TOY_EXTRA
#define TOY_N_EXTRA 0
#endif

static const lk_plugin_loss_v1 *const toy_losses[] = {
    &toy_class, &toy_batch, &toy_fail, &toy_nan, &toy_old TOY_EXTRA};

static const lk_plugin_v1 toy_plugin = {
#ifdef TOY_ABI_99
    99,
#else
    LK_PLUGIN_ABI_VERSION,
#endif
#ifdef TOY_SMALL_PLUGIN
    8,
#else
    sizeof(lk_plugin_v1),
#endif
    "toy", "0.0.1", 5 + TOY_N_EXTRA, toy_losses,
};

static int32_t toy_init(const lk_host_api_v1 *h, lk_error_sink *err, const lk_plugin_v1 **out) {
    host = h;
#ifdef TOY_INIT_FAILS
    h->set_error(err, "toy: init refused: missing licence file");
    *out = &toy_plugin; /* the host must ignore it: the status says failure */
    return LK_ERR_PLUGIN_FAILED;
#else
    h->log(LK_LOG_DEBUG, "toy: init");
    (void)err;
    *out = &toy_plugin;
    return LK_OK;
#endif
}

#ifdef TOY_NO_ENTRY
int32_t toy_custom_entry(const lk_host_api_v1 *h, lk_error_sink *err, const lk_plugin_v1 **out) {
    return toy_init(h, err, out);
}
#else
int32_t lk_plugin_init(const lk_host_api_v1 *h, lk_error_sink *err, const lk_plugin_v1 **out) {
    return toy_init(h, err, out);
}
#endif
