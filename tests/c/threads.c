/* One configured loss (const lk_loss *) computes from 8 threads at once. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "losskit.h"

#define N 64
#define C 257
#define THREADS 8

static float logits[N * C];
static int64_t target[N];
static const lk_loss *shared_loss;
static float want_loss;
static float want_grad[N * C];

static lk_status run(float *loss, float *grad) {
    int64_t sx[2] = {N, C}, st[1] = {N};
    lk_tensor in[2] = {
        {logits, {LK_DEVICE_CPU, 0}, 2, {LK_DTYPE_CODE_FLOAT, 32, 1}, sx, NULL, 0},
        {target, {LK_DEVICE_CPU, 0}, 1, {LK_DTYPE_CODE_INT, 64, 1}, st, NULL, 0},
    };
    lk_tensor out = {loss, {LK_DEVICE_CPU, 0}, 0, {LK_DTYPE_CODE_FLOAT, 32, 1}, NULL, NULL, 0};
    lk_tensor g = {grad, {LK_DEVICE_CPU, 0}, 2, {LK_DTYPE_CODE_FLOAT, 32, 1}, sx, NULL, 0};
    return lk_loss_compute(shared_loss, in, 2, LK_REDUCTION_MEAN, NULL, &out, &g, 1, NULL, 0);
}

static void *worker(void *arg) {
    static float grads[THREADS][N * C];
    int id = *(int *)arg, k;
    for (k = 0; k < 20; k++) {
        float loss = 0.0f;
        if (run(&loss, grads[id]) != LK_OK) return (void *)1;
        if (loss != want_loss || memcmp(grads[id], want_grad, sizeof want_grad) != 0) return (void *)2;
    }
    return NULL;
}

int main(void) {
    lk_context *ctx = NULL;
    lk_loss *loss = NULL;
    pthread_t th[THREADS];
    int ids[THREADS], i, bad = 0;
    unsigned s = 12345u;
    for (i = 0; i < N * C; i++) {
        s = s * 1103515245u + 12345u;
        logits[i] = (float)((s >> 8) % 2000) / 200.0f - 5.0f;
    }
    for (i = 0; i < N; i++) target[i] = (i * 31) % C;
    if (lk_context_create(LK_BACKEND_CPU, &ctx) != LK_OK || lk_loss_create(ctx, "cross_entropy", &loss) != LK_OK ||
        lk_loss_set_f64(loss, "label_smoothing", 0.05) != LK_OK) {
        fprintf(stderr, "setup failed: %s\n", lk_last_error_message());
        return 1;
    }
    shared_loss = loss;
    if (run(&want_loss, want_grad) != LK_OK) return 1;
    for (i = 0; i < THREADS; i++) {
        ids[i] = i;
        pthread_create(&th[i], NULL, worker, &ids[i]);
    }
    for (i = 0; i < THREADS; i++) {
        void *r = NULL;
        pthread_join(th[i], &r);
        if (r != NULL) {
            fprintf(stderr, "thread %d failed (%ld)\n", i, (long)(size_t)r);
            bad = 1;
        }
    }
    lk_loss_free(loss);
    lk_context_free(ctx);
    if (!bad) printf("8 threads agree\n");
    return bad;
}
