/* The registry, read through the C introspection API. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "losskit.h"

int main(void) {
    lk_context *ctx = NULL;
    lk_loss_info info;
    lk_input_info in;
    lk_param_info p;
    lk_aux_info aux;
    size_t i, n, found = 0;
    if (lk_context_create(LK_BACKEND_CPU, &ctx) != LK_OK) return 1;
    n = lk_loss_count(ctx);
    for (i = 0; i < n; i++) {
        const char *id = lk_loss_id_at(ctx, i);
        if (id == NULL || lk_loss_describe(ctx, id, &info) != LK_OK) return 2;
        if (strcmp(id, "cross_entropy") == 0) found = 1;
    }
    if (!found || lk_loss_id_at(ctx, n) != NULL) return 3;
    if (lk_loss_describe(ctx, "cross_entropy", &info) != LK_OK || info.n_inputs != 4 || info.batch_level || !info.in_place)
        return 4;
    if (lk_loss_describe_input(ctx, "cross_entropy", 0, &in) != LK_OK || strcmp(in.name, "logits") != 0 ||
        strcmp(in.shape, "N,C") != 0 || !in.differentiable || in.optional || in.dtype.code != LK_DTYPE_CODE_FLOAT)
        return 5;
    if (lk_loss_describe_input(ctx, "cross_entropy", 2, &in) != LK_OK || !in.optional) return 6;
    if (lk_loss_describe_input(ctx, "cross_entropy", 9, &in) != LK_ERR_INVALID_ARG) return 7;
    for (i = 0; i < info.n_params; i++) {
        if (lk_loss_describe_param(ctx, "cross_entropy", i, &p) != LK_OK) return 8;
        if (strcmp(p.name, "label_smoothing") == 0 &&
            !(p.type_ == LK_PARAM_F64 && p.default_f64 == 0.0 && p.min_f64 == 0.0 && p.max_f64 == 1.0))
            return 9;
        if (strcmp(p.name, "ignore_index") == 0 && !(p.type_ == LK_PARAM_I64 && p.default_i64 == -100)) return 10;
        if (strcmp(p.name, "z_loss_coef") == 0 && !isinf(p.max_f64)) return 11;
    }
    if (lk_loss_describe_aux(ctx, "cross_entropy", 0, &aux) != LK_OK || strcmp(aux.name, "lse") != 0) return 12;
    if (lk_loss_describe(ctx, "nope", &info) != LK_ERR_UNKNOWN_LOSS) return 13;
    printf("%zu losses; cross_entropy: %s\n", n, info.summary);
    lk_context_free(ctx);
    return 0;
}
