#include <stdio.h>
#include "losskit.h"

int main(void) {
    float logits[2 * 3] = {2.0f, 0.5f, -1.0f, 0.1f, 0.2f, 3.0f}; // [N=2, C=3], row-major
    int64_t target[2] = {0, 2};
    float loss = 0.0f, grad[2 * 3];
    int64_t shape_x[2] = {2, 3}, shape_t[1] = {2};
    lk_tensor in[2] = {
        {logits, {LK_DEVICE_CPU, 0}, 2, {LK_DTYPE_CODE_FLOAT, 32, 1}, shape_x, NULL, 0},
        {target, {LK_DEVICE_CPU, 0}, 1, {LK_DTYPE_CODE_INT, 64, 1}, shape_t, NULL, 0},
    };
    lk_tensor out = {&loss, {LK_DEVICE_CPU, 0}, 0, {LK_DTYPE_CODE_FLOAT, 32, 1}, NULL, NULL, 0};
    lk_tensor g = {grad, {LK_DEVICE_CPU, 0}, 2, {LK_DTYPE_CODE_FLOAT, 32, 1}, shape_x, NULL, 0};
    lk_context *ctx = NULL;
    lk_loss *ce = NULL;
    lk_status s = lk_context_create(LK_BACKEND_CPU, &ctx);
    if (s == LK_OK) s = lk_loss_create(ctx, "cross_entropy", &ce);
    if (s == LK_OK) s = lk_loss_set_f64(ce, "label_smoothing", 0.1);
    if (s == LK_OK) s = lk_loss_compute(ce, in, 2, LK_REDUCTION_MEAN, NULL, &out, &g, 1, NULL, 0);
    if (s != LK_OK) fprintf(stderr, "losskit: %s: %s\n", lk_status_str(s), lk_last_error_message());
    else printf("loss = %.4f, dloss/dlogits[0][0] = %.4f\n", loss, grad[0]);
    lk_loss_free(ce);
    lk_context_free(ctx);
    return s == LK_OK ? 0 : 1;
}
