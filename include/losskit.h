/*
 * losskit.h: loss functions and their gradients behind a stable C ABI.
 *
 * GENERATED from src/ffi/ by build.rs with the cbindgen pinned in Cargo.toml.
 * Never edit by hand: regenerate with LOSSKIT_BLESS=1 cargo test --test header.
 *
 * losskit computes a loss and, in the same call, the gradient of the reduced loss with
 * respect to every differentiable input, on the CPU or on a GPU (wgpu). A program creates a
 * context (a backend and the losses it knows), creates a loss by id, sets its parameters and
 * computes it on borrowed tensor views; the introspection functions describe every loss at
 * run time. Plugins add losses from shared objects; writing one needs losskit_plugin.h.
 *
 * Contents:
 *  1. Version
 *  2. Status codes and error messages
 *  3. Contexts
 *     3.1 Loading plugins
 *  4. Tensors
 *  5. Losses
 *     5.1 Creating a loss
 *     5.2 Configuring a loss
 *     5.3 Computing a loss
 *  6. Introspection
 *     6.1 Loaded plugins
 *  7. Device buffers
 * The plugin ABI, for writing a plugin, is in losskit_plugin.h.
 *
 * Conventions:
 *  1. Every object is created by lk_X_create (or an out-param) and destroyed exactly once
 *     by lk_X_free; lk_X_free(NULL) is a no-op.
 *  2. Inputs are const pointers or values; outputs are non-const and come last.
 *     Out-params are written only when the function returns LK_OK.
 *  3. Tensor views and strings passed in are borrowed for the duration of the call only;
 *     losskit never keeps a pointer after returning. Output buffers belong to the caller.
 *  4. Strings returned are static (lk_status_str, lk_version_string), live as long as the
 *     registry entry (loss ids and spec texts), or until the next lk_ call on the same
 *     thread (lk_last_error_message).
 *  5. Threads: an lk_context may be shared by threads. An lk_loss may move between threads
 *     but is configured by one thread at a time; functions taking a const lk_loss *
 *     (lk_loss_compute) may run concurrently on the same loss.
 *  6. Errors: every fallible function returns an lk_status; lk_last_error_message() then
 *     gives a thread-local message naming the loss, input or parameter and the values.
 *     Read it on the same thread before the next lk_ call (Go: inside the same cgo call).
 *  7. After LK_ERR_PANIC the handle involved is poisoned; only lk_X_free is valid on it.
 *  8. Pointer arguments documented as "NULL or live" may be NULL (the function then fails
 *     with LK_ERR_NULL_ARG or returns its documented default); any other pointer must be
 *     valid for the call, as each function's Safety paragraph states.
 *
 * Example (tests/c/smoke.c, compiled and run by the tests): cross-entropy with label
 * smoothing over two rows of three classes, and the gradient of the mean loss.
 *
 *     #include <stdio.h>
 *     #include "losskit.h"
 *
 *     int main(void) {
 *         float logits[2 * 3] = {2.0f, 0.5f, -1.0f, 0.1f, 0.2f, 3.0f}; // [N=2, C=3], row-major
 *         int64_t target[2] = {0, 2};
 *         float loss = 0.0f, grad[2 * 3];
 *         int64_t shape_x[2] = {2, 3}, shape_t[1] = {2};
 *         lk_tensor in[2] = {
 *             {logits, {LK_DEVICE_CPU, 0}, 2, {LK_DTYPE_CODE_FLOAT, 32, 1}, shape_x, NULL, 0},
 *             {target, {LK_DEVICE_CPU, 0}, 1, {LK_DTYPE_CODE_INT, 64, 1}, shape_t, NULL, 0},
 *         };
 *         lk_tensor out = {&loss, {LK_DEVICE_CPU, 0}, 0, {LK_DTYPE_CODE_FLOAT, 32, 1}, NULL, NULL, 0};
 *         lk_tensor g = {grad, {LK_DEVICE_CPU, 0}, 2, {LK_DTYPE_CODE_FLOAT, 32, 1}, shape_x, NULL, 0};
 *         lk_context *ctx = NULL;
 *         lk_loss *ce = NULL;
 *         lk_status s = lk_context_create(LK_BACKEND_CPU, &ctx);
 *         if (s == LK_OK) s = lk_loss_create(ctx, "cross_entropy", &ce);
 *         if (s == LK_OK) s = lk_loss_set_f64(ce, "label_smoothing", 0.1);
 *         if (s == LK_OK) s = lk_loss_compute(ce, in, 2, LK_REDUCTION_MEAN, NULL, &out, &g, 1, NULL, 0);
 *         if (s != LK_OK) fprintf(stderr, "losskit: %s: %s\n", lk_status_str(s), lk_last_error_message());
 *         else printf("loss = %.4f, dloss/dlogits[0][0] = %.4f\n", loss, grad[0]);
 *         lk_loss_free(ce);
 *         lk_context_free(ctx);
 *         return s == LK_OK ? 0 : 1;
 *     }
 */
#ifndef LOSSKIT_H
#define LOSSKIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================================
 * 1. Version
 * The version this header describes (macros) and the version of the library loaded at
 * run time (functions): compare them to catch a header/library mismatch.
 * ====================================================================================== */

/**
 * Major version of losskit.
 */
#define LK_VERSION_MAJOR 0

/**
 * Minor version of losskit.
 */
#define LK_VERSION_MINOR 1

/**
 * Patch version of losskit.
 */
#define LK_VERSION_PATCH 0

/**
 * MAJOR * 1000000 + MINOR * 1000 + PATCH, compare with lk_version_number().
 */
#define LK_VERSION_NUMBER (((LK_VERSION_MAJOR * 1000000) + (LK_VERSION_MINOR * 1000)) + LK_VERSION_PATCH)

/**
 * Bumped on every breaking change of the C ABI; compare with lk_abi_version().
 */
#define LK_ABI_VERSION 0

/**
 * The library version as MAJOR * 1000000 + MINOR * 1000 + PATCH.
 *
 * Compare with the LK_VERSION_NUMBER macro to detect a header/library mismatch.
 *
 * @return The runtime version number.
 */
uint32_t lk_version_number(void);

/**
 * The library version as text, e.g. "0.1.0".
 *
 * @return A static NUL-terminated string; never NULL; never freed.
 */
const char *lk_version_string(void);

/**
 * The C ABI version of the library (compare with LK_ABI_VERSION).
 *
 * @return The runtime ABI version.
 */
uint32_t lk_abi_version(void);

/* ======================================================================================
 * 2. Status codes and error messages
 * Every fallible function returns an lk_status (LK_OK is 0). After a failure,
 * lk_last_error_message() names the loss, input or parameter and the values.
 * ====================================================================================== */

/**
 * Result of every fallible losskit function. LK_OK (0) is success. The numbers are
 * pinned forever and grouped: 1-99 caller errors, 100-199 backend, 200-299 plugins,
 * 900-999 losskit bugs. New codes may be added: treat unknown non-zero values as errors.
 */
enum lk_status
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * Success.
   */
  LK_OK = 0,
  /**
   * A required pointer argument was NULL.
   */
  LK_ERR_NULL_ARG = 1,
  /**
   * An argument has an invalid value (unknown reduction, overlapping buffers...).
   */
  LK_ERR_INVALID_ARG = 2,
  /**
   * A tensor's shape does not match the loss's spec or the other tensors.
   */
  LK_ERR_SHAPE_MISMATCH = 3,
  /**
   * A tensor has the wrong dtype.
   */
  LK_ERR_DTYPE = 4,
  /**
   * A parameter value is out of range or of the wrong type (never clamped).
   */
  LK_ERR_INVALID_PARAM = 5,
  /**
   * The loss has no parameter of that name.
   */
  LK_ERR_UNKNOWN_PARAM = 6,
  /**
   * No loss of that id is registered.
   */
  LK_ERR_UNKNOWN_LOSS = 7,
  /**
   * A target is neither ignore_index nor a valid class.
   */
  LK_ERR_INVALID_TARGET = 8,
  /**
   * Well-formed but unsupported (reduction none on a batch-level loss, a strided layout).
   */
  LK_ERR_UNSUPPORTED = 9,
  /**
   * A buffer is too small for its shape.
   */
  LK_ERR_BUFFER_TOO_SMALL = 10,
  /**
   * An input holds an invalid value (e.g. a negative weight).
   */
  LK_ERR_INVALID_INPUT = 11,
  /**
   * The requested backend is not available.
   */
  LK_ERR_BACKEND_UNAVAILABLE = 100,
  /**
   * The GPU reported an error.
   */
  LK_ERR_GPU = 101,
  /**
   * An allocation failed.
   */
  LK_ERR_OUT_OF_MEMORY = 102,
  /**
   * A plugin's shared object could not be opened.
   */
  LK_ERR_PLUGIN_LOAD = 200,
  /**
   * A plugin's entry symbol was not found.
   */
  LK_ERR_PLUGIN_SYMBOL = 201,
  /**
   * A plugin was built for another plugin ABI version.
   */
  LK_ERR_PLUGIN_ABI = 202,
  /**
   * A plugin loss id clashes with a builtin or another plugin.
   */
  LK_ERR_PLUGIN_DUPLICATE_ID = 203,
  /**
   * A plugin's loss spec is invalid.
   */
  LK_ERR_PLUGIN_INVALID_SPEC = 204,
  /**
   * A plugin callback returned an error.
   */
  LK_ERR_PLUGIN_FAILED = 205,
  /**
   * A panic inside losskit was caught (a bug; the handle involved is poisoned).
   */
  LK_ERR_PANIC = 900,
  /**
   * An internal invariant failed (a bug).
   */
  LK_ERR_INTERNAL = 901,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum lk_status lk_status;
#else
typedef int32_t lk_status;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Static text describing a status code.
 *
 * Takes any integer: codes this version does not know give "unknown status".
 *
 * @param status A status code (any value).
 * @return A static, NUL-terminated string; never NULL; never freed.
 */
const char *lk_status_str(int32_t status);

/**
 * The message of the last failed losskit call on this thread.
 *
 * Every failing call sets it; successful calls leave it alone, so it is meaningful only
 * right after a call returned a status other than LK_OK. Read it on the same thread,
 * before any other lk_ call (bindings for languages whose tasks migrate between threads,
 * such as Go, must read it inside the same native call sequence).
 *
 * @return A NUL-terminated string owned by losskit, valid until the next lk_ call on this
 *         thread, or NULL when this thread has no error recorded.
 */
const char *lk_last_error_message(void);

/**
 * Forget this thread's last error message (lk_last_error_message then returns NULL).
 */
void lk_last_error_clear(void);

/* ======================================================================================
 * 3. Contexts
 * A context is a backend (CPU or GPU) and the losses it knows: the builtins and the
 * plugins loaded into it. Create one per process or per device and share it.
 * ====================================================================================== */

/**
 * Backend choice for lk_context_create.
 */
enum lk_backend
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * The GPU when a real adapter exists and the problem is large enough, else the CPU.
   */
  LK_BACKEND_AUTO = 0,
  /**
   * The CPU (always available).
   */
  LK_BACKEND_CPU = 1,
  /**
   * wgpu compute shaders (Vulkan, Metal, DX12).
   */
  LK_BACKEND_WGPU = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum lk_backend lk_backend;
#else
typedef int32_t lk_backend;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * A context: a backend and the losses it knows (builtins plus loaded plugins).
 * Opaque; create with lk_context_create, free with lk_context_free.
 */
typedef struct lk_context lk_context;

/**
 * Create a context on a backend.
 *
 * LK_BACKEND_WGPU creates a GPU device (one per context) or fails with
 * LK_ERR_BACKEND_UNAVAILABLE and wgpu's reason (lk_last_error_message) when no adapter can
 * be used. Adapters are chosen high-performance first; the environment variable
 * LOSSKIT_ADAPTER=<substring> picks one by name; a software adapter (Mesa lavapipe) is
 * used only when LOSSKIT_ALLOW_SOFTWARE_ADAPTER=1. LOSSKIT_GPU_MAX_BINDING_BYTES lowers the
 * largest range bound at once (larger inputs are processed in row chunks).
 * LK_BACKEND_AUTO never fails for lack of a GPU: with a hardware GPU it runs calls whose
 * tensors are lk_buffer device buffers on the GPU and calls with host tensors on the CPU
 * (copying host data to the GPU and back costs more than computing a memory-bound loss on
 * the CPU); LOSSKIT_AUTO_GPU_MIN_ELEMENTS=n sends host calls of at least n elements to the
 * GPU too. Without a hardware GPU, everything runs on the CPU.
 *
 * @param backend One of lk_backend (an int32_t; other values give LK_ERR_INVALID_ARG).
 * @param out_ctx Receives the new context on LK_OK (untouched otherwise). Owned by the
 *        caller; free with lk_context_free. Safe to share between threads.
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_INVALID_ARG, LK_ERR_BACKEND_UNAVAILABLE.
 *
 * Safety:
 * out_ctx must be NULL or point to writable storage for one pointer.
 */
lk_status lk_context_create(int32_t backend, struct lk_context **out_ctx);

/**
 * Free a context. NULL is a no-op.
 *
 * Losses created from the context keep what they need alive, so they may be freed before
 * or after it; plugins loaded into it are unloaded only when nothing uses them.
 *
 * @param ctx A context from lk_context_create, or NULL. Invalid after the call.
 *
 * Safety:
 * ctx must be NULL or a live context not used by another thread during the call, and
 * must not be used after.
 */
void lk_context_free(struct lk_context *ctx);

/**
 * Whether a backend can be used on this machine (and in this build).
 *
 * For LK_BACKEND_WGPU an adapter must pass the selection rules of lk_context_create; the
 * probe runs once per process and its answer is cached.
 *
 * @param backend One of lk_backend.
 * @return true when lk_context_create(backend, ...) can succeed; false for unknown values.
 */
bool lk_backend_available(int32_t backend);

/**
 * The backend a context computes on (AUTO resolves to CPU or WGPU at creation).
 *
 * @param ctx A live context.
 * @return One of lk_backend, or -1 when ctx is NULL.
 *
 * Safety:
 * ctx must be NULL or a live context.
 */
int32_t lk_context_backend(const struct lk_context *ctx);

/**
 * The name of the GPU adapter a context computes on, e.g. "NVIDIA H100 80GB HBM3" or
 * "llvmpipe (LLVM 15.0.6, 256 bits)" (Mesa's software Vulkan).
 *
 * @param ctx A live context.
 * @return A NUL-terminated string valid while the context lives, or NULL for a CPU
 *         context or a NULL ctx.
 *
 * Safety:
 * ctx must be NULL or a live context.
 */
const char *lk_context_device_name(const struct lk_context *ctx);

/**
 * The graphics API of a context's GPU adapter: "vulkan", "metal" or "dx12".
 *
 * @param ctx A live context.
 * @return A NUL-terminated string valid while the context lives, or NULL for a CPU
 *         context or a NULL ctx.
 *
 * Safety:
 * ctx must be NULL or a live context.
 */
const char *lk_context_device_backend(const struct lk_context *ctx);

/**
 * The kind of a context's GPU adapter: "discrete_gpu", "integrated_gpu", "virtual_gpu",
 * "cpu" (a software rasteriser such as lavapipe) or "other".
 *
 * @param ctx A live context.
 * @return A NUL-terminated string valid while the context lives, or NULL for a CPU
 *         context or a NULL ctx.
 *
 * Safety:
 * ctx must be NULL or a live context.
 */
const char *lk_context_device_type(const struct lk_context *ctx);

/**
 * A limit of a context's GPU device, by name.
 *
 * Names: "max_storage_buffer_binding_size", "max_buffer_size", "max_binding_bytes" (the
 * largest range losskit binds at once; larger inputs are processed in row chunks),
 * "max_compute_invocations_per_workgroup", "max_compute_workgroups_per_dimension",
 * "max_compute_workgroup_storage_size".
 *
 * @param ctx A live context.
 * @param name A limit name (borrowed for the call).
 * @param out_value Receives the value on LK_OK (untouched otherwise).
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNSUPPORTED (a CPU context), LK_ERR_INVALID_ARG
 *         (an unknown name).
 *
 * Safety:
 * ctx NULL or live; name NULL or a C string; out_value NULL or writable.
 */
lk_status lk_context_device_limit(const struct lk_context *ctx,
                                  const char *name,
                                  uint64_t *out_value);

/* --------------------------------------------------------------------------------------
 * 3.1 Loading plugins
 * A plugin adds losses to one context. Writing a plugin: losskit_plugin.h.
 * -------------------------------------------------------------------------------------- */

/**
 * Load a plugin (a shared object) and register its losses into a context.
 *
 * LOADING A PLUGIN RUNS ITS CODE (its initialisers and entry point) with the rights of
 * this process: load only plugins you trust. Nothing is ever loaded implicitly.
 *
 * The load is all-or-nothing: on any error nothing is registered, the library is
 * closed again, and lk_last_error_message() names the file and the cause. Once loaded,
 * the plugin's losses are used like builtins (lk_loss_create, lk_loss_info, ...). The
 * library stays loaded while the context or any loss created from the plugin lives.
 *
 * @param ctx The context to register into (const: loading is safe while other threads
 *        use the context).
 * @param path File path of the plugin (borrowed for the call). A bare file name is taken
 *        relative to the current directory; the dynamic loader's search path is not used.
 * @param entry The entry symbol to call, or NULL: then "lk_plugin_init" is tried, then
 *        lk_plugin_<stem>_init, <stem> being the lower-case letters of the file name up
 *        to its first '.', after dropping a leading "lib" (libasl.so: lk_plugin_asl_init).
 * @return LK_OK; LK_ERR_NULL_ARG; LK_ERR_PLUGIN_LOAD (cannot open); LK_ERR_PLUGIN_SYMBOL
 *         (no entry symbol); LK_ERR_PLUGIN_ABI (other plugin ABI version, both in the
 *         message); LK_ERR_PLUGIN_INVALID_SPEC (e.g. a default outside its range);
 *         LK_ERR_PLUGIN_DUPLICATE_ID (an id clashes with a builtin or a loaded plugin);
 *         LK_ERR_PLUGIN_FAILED (the plugin reported an error; its message is passed on);
 *         LK_ERR_UNSUPPORTED (losskit built without the plugin host).
 *
 * Safety:
 * ctx must be NULL or live; path and entry NULL or NUL-terminated strings.
 */
lk_status lk_plugin_load(const struct lk_context *ctx, const char *path, const char *entry);

/* ======================================================================================
 * 4. Tensors
 * Inputs and outputs cross the ABI as borrowed views of contiguous row-major memory,
 * laid out as DLPack's DLTensor.
 * ====================================================================================== */

/**
 * DLPack type code of signed integers (kDLInt).
 */
#define LK_DTYPE_CODE_INT 0

/**
 * DLPack type code of IEEE floats (kDLFloat).
 */
#define LK_DTYPE_CODE_FLOAT 2

/**
 * Element type; the same layout as DLPack's DLDataType. losskit takes f32
 * ({LK_DTYPE_CODE_FLOAT, 32, 1}) and i64 ({LK_DTYPE_CODE_INT, 64, 1}).
 */
typedef struct lk_dtype {
  /**
   * Type code (LK_DTYPE_CODE_FLOAT or LK_DTYPE_CODE_INT).
   */
  uint8_t code;
  /**
   * Bits per element (32 for f32, 64 for i64).
   */
  uint8_t bits;
  /**
   * Vector lanes (always 1).
   */
  uint16_t lanes;
} lk_dtype;

/**
 * DLPack device type of host memory (kDLCPU).
 */
#define LK_DEVICE_CPU 1

/**
 * DLPack device type of page-locked host memory (kDLCUDAHost); read as host memory.
 */
#define LK_DEVICE_CUDA_HOST 3

/**
 * Device type of a tensor whose data is an lk_buffer * (a device-resident buffer of a
 * WGPU context) and whose byte_offset is the offset inside that buffer. The value is
 * DLPack's kDLExtDev (12), reserved by DLPack for extension devices.
 */
#define LK_DEVICE_LKBUFFER 12

/**
 * Where a tensor lives; the same layout as DLPack's DLDevice.
 */
typedef struct lk_device {
  /**
   * LK_DEVICE_CPU (1) for host memory.
   */
  int32_t device_type;
  /**
   * Device ordinal (0 for the host).
   */
  int32_t device_id;
} lk_device;

/**
 * Largest tensor rank losskit accepts.
 */
#define LK_MAX_NDIM 8

/**
 * A borrowed tensor view, layout-compatible with DLPack's DLTensor, so a DLTensor *
 * can be passed as an lk_tensor * unchanged.
 *
 * Row-major: strides NULL means contiguous. Strides, when given, are in elements: every
 * dimension but the first must be contiguous; the first may have a larger stride (rows
 * inside a wider buffer). An optional input is absent when data is NULL (and the shape
 * is not empty). The view is borrowed for the duration of the call only.
 */
typedef struct lk_tensor {
  /**
   * First element (before byte_offset). NULL = absent (optional inputs / unwanted outputs).
   */
  void *data;
  /**
   * Where the data lives: LK_DEVICE_CPU, or LK_DEVICE_LKBUFFER with data an lk_buffer.
   */
  struct lk_device device;
  /**
   * Rank (0..=LK_MAX_NDIM).
   */
  int32_t ndim;
  /**
   * Element type.
   */
  struct lk_dtype dtype;
  /**
   * ndim sizes; may be NULL when ndim is 0.
   */
  const int64_t *shape;
  /**
   * ndim strides in elements, or NULL for contiguous row-major.
   */
  const int64_t *strides;
  /**
   * Bytes from data to the first element.
   */
  uint64_t byte_offset;
} lk_tensor;

/* ======================================================================================
 * 5. Losses
 * A loss is created by id from a context, configured through its named parameters, then
 * computed any number of times, from many threads at once.
 * ====================================================================================== */

/* --------------------------------------------------------------------------------------
 * 5.1 Creating a loss
 * -------------------------------------------------------------------------------------- */

/**
 * A configured loss. Opaque; create with lk_loss_create, free with lk_loss_free.
 */
typedef struct lk_loss lk_loss;

/**
 * Create a loss by id with its default parameters.
 *
 * @param ctx The context (borrowed for the call; the loss keeps what it needs alive).
 * @param id A loss id such as "cross_entropy" (borrowed for the call).
 * @param out_loss Receives the loss on LK_OK (untouched otherwise). Owned by the caller;
 *        free with lk_loss_free.
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_LOSS.
 *
 * Safety:
 * ctx must be NULL or live, id NULL or a NUL-terminated string, out_loss NULL or
 * writable.
 */
lk_status lk_loss_create(const struct lk_context *ctx, const char *id, struct lk_loss **out_loss);

/**
 * Free a loss. NULL is a no-op.
 *
 * @param loss A loss from lk_loss_create, or NULL. Invalid after the call.
 *
 * Safety:
 * loss must be NULL or a live loss not in use by another thread, and not used after.
 */
void lk_loss_free(struct lk_loss *loss);

/**
 * The id of a loss.
 *
 * @param loss A live loss.
 * @return A NUL-terminated string valid while the loss lives, or NULL when loss is NULL.
 *
 * Safety:
 * loss must be NULL or live.
 */
const char *lk_loss_id(const struct lk_loss *loss);

/* --------------------------------------------------------------------------------------
 * 5.2 Configuring a loss
 * Each value is checked against its own range when it is set; checks that involve
 * several parameters run when the loss is computed.
 * -------------------------------------------------------------------------------------- */

/**
 * Set a float parameter.
 *
 * The value is checked against the parameter's own type and range; on error the previous
 * value is kept (never clamped). Conditions involving other parameters are checked by
 * lk_loss_check and lk_loss_compute, so parameters may be set in any order.
 *
 * @param loss The loss (must not be computing on another thread).
 * @param name Parameter name (borrowed for the call).
 * @param value The value.
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM.
 *
 * Safety:
 * loss must be NULL or live and unused by other threads; name NULL or a C string.
 */
lk_status lk_loss_set_f64(struct lk_loss *loss, const char *name, double value);

/**
 * Set an integer parameter (e.g. ignore_index). See lk_loss_set_f64.
 *
 * @param loss The loss.
 * @param name Parameter name.
 * @param value The value.
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM.
 *
 * Safety:
 * As lk_loss_set_f64.
 */
lk_status lk_loss_set_i64(struct lk_loss *loss, const char *name, int64_t value);

/**
 * Set a boolean parameter. See lk_loss_set_f64.
 *
 * @param loss The loss.
 * @param name Parameter name.
 * @param value The value.
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM.
 *
 * Safety:
 * As lk_loss_set_f64.
 */
lk_status lk_loss_set_bool(struct lk_loss *loss, const char *name, bool value);

/**
 * Set an enum parameter by the name of its choice (e.g. "gce"). See lk_loss_set_f64.
 *
 * @param loss The loss.
 * @param name Parameter name.
 * @param value Choice name (borrowed for the call).
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM.
 *
 * Safety:
 * As lk_loss_set_f64; value NULL or a C string.
 */
lk_status lk_loss_set_enum(struct lk_loss *loss, const char *name, const char *value);

/**
 * Read a float parameter's current value.
 *
 * @param loss The loss.
 * @param name Parameter name.
 * @param out_value Receives the value on LK_OK.
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM (not a float).
 *
 * Safety:
 * loss NULL or live; name NULL or a C string; out_value NULL or writable.
 */
lk_status lk_loss_get_f64(const struct lk_loss *loss, const char *name, double *out_value);

/**
 * Read an integer parameter's current value.
 *
 * @param loss The loss.
 * @param name Parameter name.
 * @param out_value Receives the value on LK_OK.
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM (not an integer).
 *
 * Safety:
 * As lk_loss_get_f64.
 */
lk_status lk_loss_get_i64(const struct lk_loss *loss, const char *name, int64_t *out_value);

/**
 * Read a boolean parameter's current value.
 *
 * @param loss The loss.
 * @param name Parameter name.
 * @param out_value Receives the value on LK_OK.
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM (not a boolean).
 *
 * Safety:
 * As lk_loss_get_f64.
 */
lk_status lk_loss_get_bool(const struct lk_loss *loss, const char *name, bool *out_value);

/**
 * Read an enum parameter's current choice, by name (e.g. "sigmoid").
 *
 * @param loss The loss.
 * @param name Parameter name.
 * @param out_value Receives the choice name on LK_OK: a NUL-terminated string that lives
 *        as long as the loss's registry entry, like the introspection strings (forever for
 *        a builtin; for a plugin loss, as long as its context or a loss created from it).
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_PARAM, LK_ERR_INVALID_PARAM (not an enum).
 *
 * Safety:
 * As lk_loss_get_f64.
 */
lk_status lk_loss_get_enum(const struct lk_loss *loss, const char *name, const char **out_value);

/**
 * Check the loss's parameters together.
 *
 * Each lk_loss_set_* checks a value against its own type and range only, so parameters
 * may be set in any order; the conditions that involve several parameters (e.g. dpo's
 * loss_type "exo_pair" needs label_smoothing > 0) are checked here, and by lk_loss_compute
 * before it reads or writes anything. The result is the status and message such a compute
 * would give for the configuration.
 *
 * @param loss The configured loss (const: may be used by several threads at once).
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_INVALID_PARAM (a combination the loss refuses;
 *         the message names the parameters), LK_ERR_PLUGIN_FAILED, LK_ERR_PANIC.
 *
 * Safety:
 * loss must be NULL or live.
 */
lk_status lk_loss_check(const struct lk_loss *loss);

/* --------------------------------------------------------------------------------------
 * 5.3 Computing a loss
 * -------------------------------------------------------------------------------------- */

/**
 * Reduction of per-sample losses, for lk_loss_compute.
 */
enum lk_reduction
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * Per-sample losses (length N, or B for pairwise losses).
   */
  LK_REDUCTION_NONE = 0,
  /**
   * Weighted mean over contributing samples (ignored rows excluded). The default.
   */
  LK_REDUCTION_MEAN = 1,
  /**
   * Sum over samples.
   */
  LK_REDUCTION_SUM = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum lk_reduction lk_reduction;
#else
typedef int32_t lk_reduction;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * A named auxiliary output of a compute call (e.g. "lse"): a f32 tensor to fill.
 */
typedef struct lk_aux_output {
  /**
   * Name of the auxiliary output (see lk_loss_describe_aux).
   */
  const char *name;
  /**
   * Destination, f32, shaped as the loss's spec says.
   */
  struct lk_tensor tensor;
} lk_aux_output;

/**
 * Compute a loss and, when asked, the gradients of its differentiable inputs.
 *
 * One call computes the reduced loss and the gradient of that reduced loss with respect to
 * each input whose gradient slot has non-NULL data, multiplied by grad_output (the
 * upstream gradient of autodiff systems; 1 when NULL).
 *
 * Every argument is validated before anything is written: the parameter combination (as
 * lk_loss_check), NULLs, dtypes, ranks, shapes against the loss's spec, target ranges,
 * weights, overlapping buffers. Nothing is written on error.
 *
 * A gradient may be written over its own input (in place) by passing the same view as the
 * input and as its gradient; this is the fast path of cross_entropy (the logits are
 * overwritten by their gradient). Any other overlap between an output and another buffer
 * is LK_ERR_INVALID_ARG.
 *
 * NaN and infinity in float inputs are not checked and propagate as in the common
 * frameworks (a NaN logit gives a NaN loss for its row).
 *
 * @param loss The configured loss (const: may be used by several threads at once).
 * @param inputs n_inputs tensors in the loss's input order (lk_loss_describe_input). An
 *        absent optional input is a tensor whose data is NULL; trailing optional inputs
 *        may be omitted by passing a smaller n_inputs. Borrowed for the call.
 * @param n_inputs Number of tensors in inputs.
 * @param reduction One of lk_reduction.
 * @param grad_output NULL, or the upstream gradient: f32 with 1 element for mean/sum, or
 *        one per sample for none.
 * @param loss_out Receives the loss: f32 with 1 element (rank 0 or 1) for mean/sum, or one
 *        per sample for none. Required.
 * @param grads NULL, or n_grads tensors: slot k receives the gradient of input k, shaped
 *        like it (f32). A slot with NULL data is not computed.
 * @param n_grads Number of slots in grads (at most n_inputs).
 * @param aux NULL, or n_aux named auxiliary outputs to fill (lk_loss_describe_aux).
 * @param n_aux Number of entries in aux.
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_INVALID_ARG, LK_ERR_INVALID_PARAM (a parameter
 *         combination, see lk_loss_check), LK_ERR_SHAPE_MISMATCH, LK_ERR_DTYPE,
 *         LK_ERR_INVALID_TARGET, LK_ERR_INVALID_INPUT, LK_ERR_UNSUPPORTED,
 *         LK_ERR_BUFFER_TOO_SMALL, LK_ERR_BACKEND_UNAVAILABLE, LK_ERR_GPU,
 *         LK_ERR_PLUGIN_FAILED, LK_ERR_PANIC.
 *
 * Safety:
 * Pointers must be NULL or valid for the call: arrays of the given lengths, tensors whose
 * shape/strides hold ndim values and whose data covers the described elements.
 */
lk_status lk_loss_compute(const struct lk_loss *loss,
                          const struct lk_tensor *inputs,
                          size_t n_inputs,
                          int32_t reduction,
                          const struct lk_tensor *grad_output,
                          const struct lk_tensor *loss_out,
                          const struct lk_tensor *grads,
                          size_t n_grads,
                          const struct lk_aux_output *aux,
                          size_t n_aux);

/* ======================================================================================
 * 6. Introspection
 * The catalogue of a context: every loss with its inputs, parameters (type, default,
 * range) and auxiliary outputs, and the plugins loaded.
 * ====================================================================================== */

/**
 * Type of a loss parameter.
 */
enum lk_param_type
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * double, set with lk_loss_set_f64.
   */
  LK_PARAM_F64 = 0,
  /**
   * int64_t, set with lk_loss_set_i64.
   */
  LK_PARAM_I64 = 1,
  /**
   * bool, set with lk_loss_set_bool.
   */
  LK_PARAM_BOOL = 2,
  /**
   * one of named choices, set with lk_loss_set_enum.
   */
  LK_PARAM_ENUM = 3,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum lk_param_type lk_param_type;
#else
typedef int32_t lk_param_type;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Summary of one loss (lk_loss_describe).
 */
typedef struct lk_loss_info {
  /**
   * Stable id, e.g. "cross_entropy".
   */
  const char *id;
  /**
   * Family, e.g. "classification".
   */
  const char *family;
  /**
   * One-line summary.
   */
  const char *summary;
  /**
   * Source paper(s).
   */
  const char *source;
  /**
   * Shape letter of the per-sample dimension ("N", "B"...).
   */
  const char *rows;
  /**
   * true when the loss is one scalar over the batch (reduction none is refused).
   */
  bool batch_level;
  /**
   * true when the first input's gradient may be written over it.
   */
  bool in_place;
  /**
   * Number of inputs (lk_loss_describe_input).
   */
  size_t n_inputs;
  /**
   * Number of parameters (lk_loss_describe_param).
   */
  size_t n_params;
  /**
   * Number of auxiliary outputs (lk_loss_describe_aux).
   */
  size_t n_aux;
} lk_loss_info;

/**
 * One input of a loss (lk_loss_describe_input).
 */
typedef struct lk_input_info {
  /**
   * Name, e.g. "logits".
   */
  const char *name;
  /**
   * Shape letters joined by commas, e.g. "N,C" ("" for a scalar).
   */
  const char *shape;
  /**
   * One-line description.
   */
  const char *doc;
  /**
   * Element type.
   */
  struct lk_dtype dtype;
  /**
   * true when a gradient is returned for this input.
   */
  bool differentiable;
  /**
   * true when the input may be absent (data NULL).
   */
  bool optional;
} lk_input_info;

/**
 * One parameter of a loss (lk_loss_describe_param). Only the fields of its type are meaningful.
 */
typedef struct lk_param_info {
  /**
   * Name, e.g. "label_smoothing".
   */
  const char *name;
  /**
   * One-line description.
   */
  const char *doc;
  /**
   * Type (lk_param_type).
   */
  int32_t type_;
  /**
   * Default of an f64 parameter.
   */
  double default_f64;
  /**
   * Lower bound of an f64 parameter (may be -inf).
   */
  double min_f64;
  /**
   * Upper bound of an f64 parameter (may be +inf).
   */
  double max_f64;
  /**
   * true when min_f64 itself is excluded.
   */
  bool min_open;
  /**
   * true when max_f64 itself is excluded.
   */
  bool max_open;
  /**
   * Default of an i64 parameter.
   */
  int64_t default_i64;
  /**
   * Inclusive lower bound of an i64 parameter.
   */
  int64_t min_i64;
  /**
   * Inclusive upper bound of an i64 parameter.
   */
  int64_t max_i64;
  /**
   * Default of a bool parameter.
   */
  bool default_bool;
  /**
   * Default choice of an enum parameter.
   */
  const char *default_enum;
  /**
   * Number of choices of an enum parameter (lk_loss_param_choice).
   */
  size_t n_choices;
} lk_param_info;

/**
 * One auxiliary output of a loss (lk_loss_describe_aux).
 */
typedef struct lk_aux_info {
  /**
   * Name, e.g. "lse".
   */
  const char *name;
  /**
   * Shape letters, e.g. "N".
   */
  const char *shape;
  /**
   * One-line description.
   */
  const char *doc;
} lk_aux_info;

/**
 * Number of losses a context knows (builtins, then plugins in load order).
 *
 * @param ctx A live context.
 * @return The count, or 0 when ctx is NULL.
 *
 * Safety:
 * ctx must be NULL or live.
 */
size_t lk_loss_count(const struct lk_context *ctx);

/**
 * The id of the loss at index (0 <= index < lk_loss_count).
 *
 * @param ctx A live context.
 * @param index Position in the catalogue.
 * @return The id (a builtin's lives forever, a plugin loss's as long as the context), or
 *         NULL when ctx is NULL or index is out of range.
 *
 * Safety:
 * ctx must be NULL or live.
 */
const char *lk_loss_id_at(const struct lk_context *ctx, size_t index);

/**
 * Describe a loss.
 *
 * @param ctx A live context.
 * @param id The loss id.
 * @param out_info Receives the description on LK_OK.
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_LOSS.
 *
 * Safety:
 * ctx NULL or live; id NULL or a C string; out_info NULL or writable.
 */
lk_status lk_loss_describe(const struct lk_context *ctx,
                           const char *id,
                           struct lk_loss_info *out_info);

/**
 * Describe input index of a loss.
 *
 * @param ctx A live context.
 * @param id The loss id.
 * @param index 0 <= index < n_inputs.
 * @param out_info Receives the description on LK_OK.
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_LOSS, LK_ERR_INVALID_ARG (index).
 *
 * Safety:
 * As lk_loss_describe.
 */
lk_status lk_loss_describe_input(const struct lk_context *ctx,
                                 const char *id,
                                 size_t index,
                                 struct lk_input_info *out_info);

/**
 * Describe parameter index of a loss: type, default and valid range.
 *
 * @param ctx A live context.
 * @param id The loss id.
 * @param index 0 <= index < n_params.
 * @param out_info Receives the description on LK_OK.
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_LOSS, LK_ERR_INVALID_ARG (index).
 *
 * Safety:
 * As lk_loss_describe.
 */
lk_status lk_loss_describe_param(const struct lk_context *ctx,
                                 const char *id,
                                 size_t index,
                                 struct lk_param_info *out_info);

/**
 * Describe auxiliary output index of a loss.
 *
 * @param ctx A live context.
 * @param id The loss id.
 * @param index 0 <= index < n_aux.
 * @param out_info Receives the description on LK_OK.
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_LOSS, LK_ERR_INVALID_ARG (index).
 *
 * Safety:
 * As lk_loss_describe.
 */
lk_status lk_loss_describe_aux(const struct lk_context *ctx,
                               const char *id,
                               size_t index,
                               struct lk_aux_info *out_info);

/**
 * Choice choice of enum parameter param_index of a loss.
 *
 * @param ctx A live context.
 * @param id The loss id.
 * @param param_index Index of an enum parameter.
 * @param choice 0 <= choice < n_choices.
 * @return The choice name, or NULL on any error (see lk_last_error_message).
 *
 * Safety:
 * ctx NULL or live; id NULL or a C string.
 */
const char *lk_loss_param_choice(const struct lk_context *ctx,
                                 const char *id,
                                 size_t param_index,
                                 size_t choice);

/* --------------------------------------------------------------------------------------
 * 6.1 Loaded plugins
 * -------------------------------------------------------------------------------------- */

/**
 * One loaded plugin (lk_plugin_describe).
 */
typedef struct lk_plugin_info {
  /**
   * The plugin's name (from its descriptor).
   */
  const char *name;
  /**
   * The plugin's version text.
   */
  const char *version;
  /**
   * The path it was loaded from, as given to lk_plugin_load.
   */
  const char *path;
  /**
   * The entry symbol that was called.
   */
  const char *entry;
  /**
   * Number of losses it registered (lk_plugin_loss_id_at).
   */
  size_t n_losses;
} lk_plugin_info;

/**
 * Number of plugins loaded into a context.
 *
 * @param ctx A live context.
 * @return The count, or 0 when ctx is NULL.
 *
 * Safety:
 * ctx must be NULL or live.
 */
size_t lk_plugin_count(const struct lk_context *ctx);

/**
 * Describe the plugin at index (load order, 0 <= index < lk_plugin_count).
 *
 * @param ctx A live context.
 * @param index Plugin index.
 * @param out_info Receives the description on LK_OK. Its strings live as long as the
 *        context.
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_INVALID_ARG (index out of range).
 *
 * Safety:
 * ctx NULL or live; out_info NULL or writable.
 */
lk_status lk_plugin_describe(const struct lk_context *ctx,
                             size_t index,
                             struct lk_plugin_info *out_info);

/**
 * The id of loss k of the plugin at index.
 *
 * @param ctx A live context.
 * @param index Plugin index (0 <= index < lk_plugin_count).
 * @param k Loss index (0 <= k < lk_plugin_info.n_losses, see lk_plugin_describe).
 * @return The id (valid as long as the context), or NULL when out of range or ctx is NULL.
 *
 * Safety:
 * ctx NULL or live.
 */
const char *lk_plugin_loss_id_at(const struct lk_context *ctx, size_t index, size_t k);

/* ======================================================================================
 * 7. Device buffers
 * Memory on a GPU context's device, passed to lk_loss_compute in place of host memory
 * so that a training loop keeps its tensors on the GPU.
 * ====================================================================================== */

/**
 * A device-resident buffer. Opaque; create with lk_buffer_create, free with
 * lk_buffer_free. It keeps its context's GPU device alive.
 */
typedef struct lk_buffer lk_buffer;

/**
 * Create a device buffer on a WGPU context's GPU.
 *
 * The contents are unspecified until written. Pass the buffer to lk_loss_compute inside an
 * lk_tensor whose device type is LK_DEVICE_LKBUFFER (inputs and gradients only; the loss
 * output, grad_output and auxiliary outputs stay in host memory).
 *
 * @param ctx A WGPU context (a CPU context gives LK_ERR_UNSUPPORTED).
 * @param n_bytes Size in bytes.
 * @param out_buf Receives the buffer on LK_OK (untouched otherwise). Owned by the caller;
 *        free with lk_buffer_free. May be used from several threads, but a buffer must not
 *        be written while a compute that reads or writes it runs on another thread.
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNSUPPORTED, LK_ERR_OUT_OF_MEMORY, LK_ERR_GPU.
 *
 * Safety:
 * ctx must be NULL or a live context; out_buf NULL or writable storage for a pointer.
 */
lk_status lk_buffer_create(const struct lk_context *ctx,
                           uint64_t n_bytes,
                           struct lk_buffer **out_buf);

/**
 * Copy host bytes into a device buffer.
 *
 * The copy is ordered before every compute submitted after this call returns.
 *
 * @param buf The buffer.
 * @param offset Byte offset inside the buffer (a multiple of 4).
 * @param src n_bytes bytes to copy (borrowed for the call).
 * @param n_bytes Number of bytes (a multiple of 4; offset + n_bytes within the buffer).
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_INVALID_ARG, LK_ERR_GPU.
 *
 * Safety:
 * buf must be NULL or live; src NULL or readable for n_bytes bytes.
 */
lk_status lk_buffer_write(const struct lk_buffer *buf,
                          uint64_t offset,
                          const void *src,
                          size_t n_bytes);

/**
 * Copy bytes of a device buffer into host memory.
 *
 * Waits for every compute submitted before that writes the buffer.
 *
 * @param buf The buffer.
 * @param offset Byte offset inside the buffer (a multiple of 4).
 * @param dst Receives n_bytes bytes on LK_OK.
 * @param n_bytes Number of bytes (a multiple of 4; offset + n_bytes within the buffer).
 * @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_INVALID_ARG, LK_ERR_GPU.
 *
 * Safety:
 * buf must be NULL or live; dst NULL or writable for n_bytes bytes.
 */
lk_status lk_buffer_read(const struct lk_buffer *buf, uint64_t offset, void *dst, size_t n_bytes);

/**
 * The size of a device buffer in bytes.
 *
 * @param buf A live buffer.
 * @return The size given to lk_buffer_create, or 0 when buf is NULL.
 *
 * Safety:
 * buf must be NULL or live.
 */
uint64_t lk_buffer_size(const struct lk_buffer *buf);

/**
 * Free a device buffer. NULL is a no-op.
 *
 * @param buf A buffer from lk_buffer_create, or NULL. Invalid after the call; it must not
 *        be in use by a compute on another thread.
 *
 * Safety:
 * buf must be NULL or a live buffer not used after the call.
 */
void lk_buffer_free(struct lk_buffer *buf);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif  /* LOSSKIT_H */
