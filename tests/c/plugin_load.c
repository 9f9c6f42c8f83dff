/* plugin_load.c: load a plugin from C and use its loss like a builtin.
 * Usage: plugin_load PATH-TO-libasl.so   (plugins/example_c/asl.c built as a shared object)
 * Prints "ok" when every check passes; exits 1 with a message otherwise. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "losskit.h"

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            const char *m = lk_last_error_message();                                       \
            fprintf(stderr, "%s:%d: %s failed (%s)\n", __FILE__, __LINE__, #cond,          \
                    m ? m : "no message");                                                 \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

/* The mean ASL loss of x [2, 3] against y, and optionally its gradient. */
static lk_status asl(const lk_loss *loss, float *x, float *y, float *out, float *grad) {
    int64_t shape[2] = {2, 3};
    int64_t one = 1;
    lk_tensor in[2] = {
        {x, {LK_DEVICE_CPU, 0}, 2, {LK_DTYPE_CODE_FLOAT, 32, 1}, shape, NULL, 0},
        {y, {LK_DEVICE_CPU, 0}, 2, {LK_DTYPE_CODE_FLOAT, 32, 1}, shape, NULL, 0},
    };
    lk_tensor lo = {out, {LK_DEVICE_CPU, 0}, 1, {LK_DTYPE_CODE_FLOAT, 32, 1}, &one, NULL, 0};
    lk_tensor g = {grad, {LK_DEVICE_CPU, 0}, 2, {LK_DTYPE_CODE_FLOAT, 32, 1}, shape, NULL, 0};
    return lk_loss_compute(loss, in, 2, LK_REDUCTION_MEAN, NULL, &lo, grad ? &g : NULL,
                           grad ? 1 : 0, NULL, 0);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-libasl.so\n", argv[0]);
        return 2;
    }
    lk_context *ctx = NULL;
    CHECK(lk_context_create(LK_BACKEND_CPU, &ctx) == LK_OK);

    /* Loading runs the plugin's code; it is always this explicit call. */
    CHECK(lk_plugin_load(ctx, argv[1], NULL) == LK_OK);
    CHECK(lk_plugin_count(ctx) == 1);
    lk_plugin_info info;
    CHECK(lk_plugin_describe(ctx, 0, &info) == LK_OK);
    CHECK(strcmp(info.name, "asl") == 0 && info.n_losses == 1);
    CHECK(strcmp(lk_plugin_loss_id_at(ctx, 0, 0), "asymmetric_loss") == 0);

    /* A second load clashes on the loss id; a missing file cannot be opened. */
    CHECK(lk_plugin_load(ctx, argv[1], NULL) == LK_ERR_PLUGIN_DUPLICATE_ID);
    CHECK(strstr(lk_last_error_message(), "asymmetric_loss") != NULL);
    CHECK(lk_plugin_load(ctx, "./no-such-plugin.so", NULL) == LK_ERR_PLUGIN_LOAD);
    CHECK(lk_plugin_count(ctx) == 1);

    /* The plugin loss is introspected and configured like a builtin. */
    lk_loss_info li;
    CHECK(lk_loss_describe(ctx, "asymmetric_loss", &li) == LK_OK);
    CHECK(li.n_inputs == 2 && li.n_params == 3 && !li.batch_level);
    lk_loss *loss = NULL;
    CHECK(lk_loss_create(ctx, "asymmetric_loss", &loss) == LK_OK);
    CHECK(lk_loss_set_f64(loss, "gamma_neg", -1.0) == LK_ERR_INVALID_PARAM);
    CHECK(lk_loss_set_f64(loss, "gamma_neg", 2.0) == LK_OK);

    float x[6] = {1.5f, -0.5f, 0.25f, -2.0f, 0.75f, 3.0f};
    float y[6] = {1.0f, 0.0f, 0.0f, 0.0f, 1.0f, 1.0f};
    float out = 0.0f, grad[6];
    CHECK(asl(loss, x, y, &out, grad) == LK_OK);
    CHECK(isfinite(out) && out > 0.0f);

    /* The gradient of the mean matches a central difference. */
    for (int k = 0; k < 6; k++) {
        float h = 1e-2f, x0 = x[k], lp, lm;
        x[k] = x0 + h;
        CHECK(asl(loss, x, y, &lp, NULL) == LK_OK);
        x[k] = x0 - h;
        CHECK(asl(loss, x, y, &lm, NULL) == LK_OK);
        x[k] = x0;
        double fd = ((double)lp - lm) / (2.0 * h);
        if (fabs(fd - grad[k]) > 2e-3 * (1.0 + fabs(fd))) {
            fprintf(stderr, "grad[%d] = %g, finite difference %g\n", k, grad[k], fd);
            return 1;
        }
    }

    /* The library stays loaded while the loss lives, even after the context is freed. */
    lk_context_free(ctx);
    CHECK(asl(loss, x, y, &out, grad) == LK_OK);
    lk_loss_free(loss);
    printf("ok\n");
    return 0;
}
