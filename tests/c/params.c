/* Parameters through the C API: the setters in any order, the combination check
 * (lk_loss_check, and lk_loss_compute before it writes anything), the typed getters. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "losskit.h"

static int names_both(const char *a, const char *b) {
    const char *m = lk_last_error_message();
    return m != NULL && strstr(m, a) != NULL && strstr(m, b) != NULL;
}

int main(void) {
    lk_context *ctx = NULL;
    lk_loss *dpo = NULL, *cce = NULL;
    const char *choice = NULL, *before = NULL;
    bool b = false;
    float out = -7.0f;
    int64_t shape[1] = {1};
    lk_tensor loss_out;
    if (lk_context_create(LK_BACKEND_CPU, &ctx) != LK_OK) return 1;
    if (lk_loss_create(ctx, "dpo", &dpo) != LK_OK) return 2;
    if (lk_loss_create(ctx, "cut_cross_entropy", &cce) != LK_OK) return 3;

    /* The enum getter: the choice's name, owned by the registry entry. */
    if (lk_loss_get_enum(dpo, "loss_type", &choice) != LK_OK || strcmp(choice, "sigmoid") != 0) return 4;
    /* exo_pair needs label_smoothing > 0: any order of sets works, the check sees the whole. */
    if (lk_loss_set_enum(dpo, "loss_type", "exo_pair") != LK_OK) return 5;
    if (lk_loss_get_enum(dpo, "loss_type", &choice) != LK_OK || strcmp(choice, "exo_pair") != 0) return 6;
    if (lk_loss_check(dpo) != LK_ERR_INVALID_PARAM || !names_both("loss_type", "label_smoothing")) return 7;
    /* A compute refuses it the same way, first, and writes nothing. */
    memset(&loss_out, 0, sizeof loss_out);
    loss_out.data = &out;
    loss_out.device.device_type = LK_DEVICE_CPU;
    loss_out.ndim = 1;
    loss_out.dtype.code = LK_DTYPE_CODE_FLOAT;
    loss_out.dtype.bits = 32;
    loss_out.dtype.lanes = 1;
    loss_out.shape = shape;
    if (lk_loss_compute(dpo, NULL, 0, LK_REDUCTION_MEAN, NULL, &loss_out, NULL, 0, NULL, 0) != LK_ERR_INVALID_PARAM ||
        !names_both("loss_type", "label_smoothing") || out != -7.0f)
        return 8;
    if (lk_loss_set_f64(dpo, "label_smoothing", 0.1) != LK_OK || lk_loss_check(dpo) != LK_OK) return 9;
    /* Errors leave the out-param alone. */
    before = choice;
    if (lk_loss_get_enum(dpo, "beta", &choice) != LK_ERR_INVALID_PARAM || choice != before) return 10;
    if (lk_loss_get_enum(dpo, "nope", &choice) != LK_ERR_UNKNOWN_PARAM || choice != before) return 11;
    if (lk_loss_get_enum(dpo, "loss_type", NULL) != LK_ERR_NULL_ARG) return 12;

    /* The bool getter. */
    if (lk_loss_get_bool(cce, "filter_e_grad", &b) != LK_OK || !b) return 13;
    if (lk_loss_set_bool(cce, "filter_e_grad", false) != LK_OK) return 14;
    b = true;
    if (lk_loss_get_bool(cce, "filter_e_grad", &b) != LK_OK || b) return 15;
    b = true;
    if (lk_loss_get_bool(dpo, "beta", &b) != LK_ERR_INVALID_PARAM || !b) return 16;
    if (lk_loss_get_bool(NULL, "beta", &b) != LK_ERR_NULL_ARG || lk_loss_check(NULL) != LK_ERR_NULL_ARG) return 17;

    lk_loss_free(dpo);
    /* The choice name belongs to the registry entry: still valid after the loss is freed. */
    if (strcmp(before, "exo_pair") != 0) return 18;
    lk_loss_free(cce);
    lk_context_free(ctx);
    printf("parameters: order-free, checked together, read back\n");
    return 0;
}
