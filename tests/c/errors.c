/* The bad-input table: every bad input gets its own status and a message naming it, nothing
   is written on error, and the library keeps working after each. */
#include <stdio.h>
#include <string.h>
#include "losskit.h"

static int failures = 0;

#define F32 {LK_DTYPE_CODE_FLOAT, 32, 1}
#define I64 {LK_DTYPE_CODE_INT, 64, 1}
#define HOST {LK_DEVICE_CPU, 0}

static void expect(const char *what, lk_status got, lk_status want, const char *needle) {
    const char *msg = lk_last_error_message();
    if (got != want) {
        fprintf(stderr, "FAIL %s: status %d (%s), want %d; message: %s\n", what, (int)got,
                lk_status_str(got), (int)want, msg ? msg : "(none)");
        failures++;
        return;
    }
    if (want != LK_OK && (msg == NULL || (needle && strstr(msg, needle) == NULL))) {
        fprintf(stderr, "FAIL %s: message '%s' lacks '%s'\n", what, msg ? msg : "(null)",
                needle ? needle : "");
        failures++;
        return;
    }
    printf("ok   %-44s %-28s %s\n", what, lk_status_str(got), msg && want != LK_OK ? msg : "");
}

int main(void) {
    lk_context *ctx = NULL;
    lk_loss *ce = NULL;
    lk_loss *sentinel = (lk_loss *)&failures;
    lk_loss *out_loss = sentinel;
    float logits[2 * 3] = {1.0f, 2.0f, 3.0f, 0.5f, -1.0f, 0.0f};
    int64_t target[2] = {0, 2}, bad_target[2] = {0, 3};
    float ftarget[2] = {0.0f, 2.0f};
    float loss = -7.0f, grad[6], loss_none[2];
    int64_t sx[2] = {2, 3}, st[1] = {2}, st3[1] = {3}, sflat[1] = {6};
    int64_t bad_strides[2] = {1, 2};
    lk_tensor in[2] = {{logits, HOST, 2, F32, sx, NULL, 0}, {target, HOST, 1, I64, st, NULL, 0}};
    lk_tensor out = {&loss, HOST, 0, F32, NULL, NULL, 0};
    lk_tensor g = {grad, HOST, 2, F32, sx, NULL, 0};
    lk_tensor x[2];
    double v = -1.0;

    expect("context with a bad backend", lk_context_create(42, &ctx), LK_ERR_INVALID_ARG, "backend");
    expect("context with NULL out", lk_context_create(LK_BACKEND_CPU, NULL), LK_ERR_NULL_ARG, "out_ctx");
    expect("cpu context", lk_context_create(LK_BACKEND_CPU, &ctx), LK_OK, NULL);
    expect("loss with a NULL context", lk_loss_create(NULL, "cross_entropy", &out_loss), LK_ERR_NULL_ARG, "ctx");
    expect("loss with a NULL id", lk_loss_create(ctx, NULL, &out_loss), LK_ERR_NULL_ARG, "id");
    expect("unknown loss", lk_loss_create(ctx, "cross_entropyy", &out_loss), LK_ERR_UNKNOWN_LOSS, "cross_entropyy");
    if (out_loss != sentinel) { fprintf(stderr, "FAIL out-param written on error\n"); failures++; }
    expect("cross_entropy", lk_loss_create(ctx, "cross_entropy", &ce), LK_OK, NULL);

    expect("unknown parameter", lk_loss_set_f64(ce, "label_smothing", 0.1), LK_ERR_UNKNOWN_PARAM, "label_smothing");
    expect("parameter out of range", lk_loss_set_f64(ce, "label_smoothing", 1.5), LK_ERR_INVALID_PARAM, "label_smoothing");
    expect("NaN parameter", lk_loss_set_f64(ce, "z_loss_coef", 0.0 / 0.0), LK_ERR_INVALID_PARAM, "z_loss_coef");
    expect("parameter of the wrong type", lk_loss_set_f64(ce, "ignore_index", 1.0), LK_ERR_INVALID_PARAM, "ignore_index");
    expect("read back after refusals", lk_loss_get_f64(ce, "label_smoothing", &v), LK_OK, NULL);
    if (v != 0.0) { fprintf(stderr, "FAIL refused value was stored (%g)\n", v); failures++; }
    expect("NULL parameter name", lk_loss_set_f64(ce, NULL, 0.1), LK_ERR_NULL_ARG, "name");
    expect("NULL loss", lk_loss_set_f64(NULL, "label_smoothing", 0.1), LK_ERR_NULL_ARG, "loss");

    memcpy(x, in, sizeof x);
    x[0].ndim = 1; x[0].shape = sflat;
    expect("logits of the wrong rank", lk_loss_compute(ce, x, 2, LK_REDUCTION_MEAN, NULL, &out, NULL, 0, NULL, 0), LK_ERR_SHAPE_MISMATCH, "logits");
    memcpy(x, in, sizeof x);
    x[1].shape = st3;
    expect("target of the wrong length", lk_loss_compute(ce, x, 2, LK_REDUCTION_MEAN, NULL, &out, NULL, 0, NULL, 0), LK_ERR_SHAPE_MISMATCH, "target");
    memcpy(x, in, sizeof x);
    x[1].data = ftarget; x[1].dtype.code = LK_DTYPE_CODE_FLOAT; x[1].dtype.bits = 32;
    expect("target of the wrong dtype", lk_loss_compute(ce, x, 2, LK_REDUCTION_MEAN, NULL, &out, NULL, 0, NULL, 0), LK_ERR_DTYPE, "target");
    memcpy(x, in, sizeof x);
    x[1].data = bad_target;
    expect("target out of range", lk_loss_compute(ce, x, 2, LK_REDUCTION_MEAN, NULL, &out, NULL, 0, NULL, 0), LK_ERR_INVALID_TARGET, "target[1] = 3");
    memcpy(x, in, sizeof x);
    x[0].data = NULL;
    expect("missing logits", lk_loss_compute(ce, x, 2, LK_REDUCTION_MEAN, NULL, &out, NULL, 0, NULL, 0), LK_ERR_NULL_ARG, "logits");
    expect("NULL inputs", lk_loss_compute(ce, NULL, 2, LK_REDUCTION_MEAN, NULL, &out, NULL, 0, NULL, 0), LK_ERR_NULL_ARG, "inputs");
    expect("NULL loss_out", lk_loss_compute(ce, in, 2, LK_REDUCTION_MEAN, NULL, NULL, NULL, 0, NULL, 0), LK_ERR_NULL_ARG, "loss_out");
    expect("unknown reduction", lk_loss_compute(ce, in, 2, 7, NULL, &out, NULL, 0, NULL, 0), LK_ERR_INVALID_ARG, "reduction");
    {
        lk_tensor out_none = {loss_none, HOST, 1, F32, st, NULL, 0};
        expect("mean into a per-sample output", lk_loss_compute(ce, in, 2, LK_REDUCTION_MEAN, NULL, &out_none, NULL, 0, NULL, 0), LK_ERR_SHAPE_MISMATCH, "loss output");
    }
    {
        lk_tensor gs[2] = {{NULL, HOST, 2, F32, sx, NULL, 0}, {grad, HOST, 1, F32, st, NULL, 0}};
        expect("gradient of the target", lk_loss_compute(ce, in, 2, LK_REDUCTION_MEAN, NULL, &out, gs, 2, NULL, 0), LK_ERR_INVALID_ARG, "target");
    }
    {
        lk_tensor gover = {logits + 1, HOST, 2, F32, sx, NULL, 0};
        expect("gradient overlapping the logits", lk_loss_compute(ce, in, 2, LK_REDUCTION_MEAN, NULL, &out, &gover, 1, NULL, 0), LK_ERR_INVALID_ARG, "overlaps");
    }
    memcpy(x, in, sizeof x);
    x[0].strides = bad_strides;
    expect("non-contiguous rows", lk_loss_compute(ce, x, 2, LK_REDUCTION_MEAN, NULL, &out, NULL, 0, NULL, 0), LK_ERR_UNSUPPORTED, "strides");
    memcpy(x, in, sizeof x);
    x[0].device.device_type = 2;
    expect("device memory of another library", lk_loss_compute(ce, x, 2, LK_REDUCTION_MEAN, NULL, &out, NULL, 0, NULL, 0), LK_ERR_UNSUPPORTED, "device type 2");
    {
        lk_aux_output aux = {"entropy", {loss_none, HOST, 1, F32, st, NULL, 0}};
        expect("unknown auxiliary output", lk_loss_compute(ce, in, 2, LK_REDUCTION_MEAN, NULL, &out, NULL, 0, &aux, 1), LK_ERR_INVALID_ARG, "entropy");
    }
    {
        float w[3] = {1.0f, -1.0f, 1.0f};
        int64_t sw[1] = {3};
        lk_tensor xw[3] = {in[0], in[1], {w, HOST, 1, F32, sw, NULL, 0}};
        expect("negative class weight", lk_loss_compute(ce, xw, 3, LK_REDUCTION_MEAN, NULL, &out, NULL, 0, NULL, 0), LK_ERR_INVALID_INPUT, "class_weights[1]");
    }
    if (loss != -7.0f) { fprintf(stderr, "FAIL loss_out written on error\n"); failures++; }

    expect("a good call after all that", lk_loss_compute(ce, in, 2, LK_REDUCTION_MEAN, NULL, &out, &g, 1, NULL, 0), LK_OK, NULL);
    if (!(loss > 0.0f)) { fprintf(stderr, "FAIL loss %g\n", loss); failures++; }
    {
        /* in place: the gradient view is the logits view */
        lk_tensor gin = in[0];
        float first = grad[0];
        expect("gradient in place over the logits", lk_loss_compute(ce, in, 2, LK_REDUCTION_MEAN, NULL, &out, &gin, 1, NULL, 0), LK_OK, NULL);
        if (logits[0] != first) { fprintf(stderr, "FAIL in-place gradient %g != %g\n", logits[0], first); failures++; }
    }
    if (strcmp(lk_status_str(12345), "unknown status") != 0 || strcmp(lk_status_str(LK_OK), "ok") != 0) {
        fprintf(stderr, "FAIL lk_status_str\n");
        failures++;
    }
    lk_last_error_clear();
    if (lk_last_error_message() != NULL) { fprintf(stderr, "FAIL clear\n"); failures++; }
    lk_loss_free(NULL);
    lk_context_free(NULL);
    lk_loss_free(ce);
    lk_context_free(ctx);
    if (failures) { fprintf(stderr, "%d failures\n", failures); return 1; }
    printf("all bad inputs refused\n");
    return 0;
}
