/*
 * losskit_plugin.h: the plugin ABI, version 1, for writing a losskit plugin.
 *
 * GENERATED from src/plugin/abi.rs by build.rs with the cbindgen pinned in Cargo.toml.
 * Never edit by hand: regenerate with LOSSKIT_BLESS=1 cargo test --test header.
 *
 * A plugin is a shared object that exports one entry point (lk_plugin_init_fn). The host
 * calls it with its table of services (lk_host_api_v1); the plugin returns a static
 * descriptor (lk_plugin_v1) whose losses (lk_plugin_loss_v1) carry the same spec data as a
 * builtin (inputs, parameters, auxiliary outputs), C callbacks to create a state, compute
 * and destroy it, and optionally WGSL source so that the loss also runs on the GPU.
 *
 * A plugin includes this header, which includes losskit.h for the tensor, dtype, status and
 * parameter-type definitions, but does not link liblosskit: it reaches the host only through
 * lk_host_api_v1. Loading and listing plugins is the host's side, in losskit.h
 * (lk_plugin_load, lk_plugin_count, lk_plugin_describe). The guide, with a complete plugin,
 * is plugins/README.md; the examples are plugins/example_c/asl.c and plugins/example_rust/.
 *
 * Versioning: every table starts with abi_version and/or struct_size and only ever grows at
 * its end. The host accepts abi_version == LK_PLUGIN_ABI_VERSION and a struct_size at least
 * the size of the first version of the table, and reads a field added later only when
 * struct_size covers it. The element types of the arrays (lk_plugin_input_v1,
 * lk_plugin_param_v1, lk_plugin_aux_v1) are frozen; a later version adds new arrays at the
 * end of lk_plugin_loss_v1 instead of growing them.
 *
 * Contents:
 *  1. ABI version
 *  2. Host services
 *  3. Inputs, parameters and auxiliary outputs
 *  4. Callbacks
 *  5. The loss table
 *  6. The plugin descriptor and the entry point
 */
#ifndef LOSSKIT_PLUGIN_H
#define LOSSKIT_PLUGIN_H

#include "losskit.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================================
 * 1. ABI version
 * ====================================================================================== */

/**
 * The plugin ABI version this header describes; a plugin puts it in
 * lk_plugin_v1.abi_version. The host refuses any other value with
 * LK_ERR_PLUGIN_ABI. It changes only on a breaking change of the plugin tables; additions
 * at the end of a table are not breaking and are detected through struct_size.
 */
#define LK_PLUGIN_ABI_VERSION 1

/* ======================================================================================
 * 2. Host services
 * What the host hands to the entry point: error reporting and logging.
 * ====================================================================================== */

/**
 * Where a plugin callback reports an error message. Opaque; pass it to
 * lk_host_api_v1.set_error. Valid only during the callback that received it.
 */
typedef struct lk_error_sink lk_error_sink;

/**
 * Plugin log level for lk_host_api_v1.log: an error.
 */
#define LK_LOG_ERROR 0

/**
 * Plugin log level: a warning.
 */
#define LK_LOG_WARN 1

/**
 * Plugin log level: information.
 */
#define LK_LOG_INFO 2

/**
 * Plugin log level: debugging detail.
 */
#define LK_LOG_DEBUG 3

/**
 * The host's functions, handed to the plugin's entry point. The table is static: a
 * plugin may keep the pointer for as long as it is loaded. Read a field only when
 * struct_size covers it (fields are only ever appended).
 */
typedef struct lk_host_api_v1 {
  /**
   * LK_PLUGIN_ABI_VERSION of the host.
   */
  uint32_t abi_version;
  /**
   * sizeof(lk_host_api_v1) as the host was built.
   */
  uint32_t struct_size;
  /**
   * The host library's version number (LK_VERSION_NUMBER of the host).
   */
  uint32_t losskit_version;
  /**
   * Record msg (copied; UTF-8, NUL-terminated) as the error of the callback that
   * received sink; the host prefixes the plugin and loss names. The last call wins.
   * NULL arguments are ignored. Safe to call from any thread.
   */
  void (*set_error)(struct lk_error_sink *sink, const char *msg);
  /**
   * Log msg (copied) at level (LK_LOG_ERROR..LK_LOG_DEBUG) through the host's
   * logging (Rust tracing, target "losskit::plugin"). Safe to call from any thread.
   */
  void (*log)(int32_t level, const char *msg);
} lk_host_api_v1;

/* ======================================================================================
 * 3. Inputs, parameters and auxiliary outputs
 * The spec of a plugin loss, the same data a builtin declares.
 * ====================================================================================== */

/**
 * Input domain (lk_plugin_input_v1.domain): any finite real.
 */
#define LK_DOMAIN_REAL 0

/**
 * Input domain: strictly positive reals.
 */
#define LK_DOMAIN_POSITIVE 1

/**
 * Input domain: reals >= 0.
 */
#define LK_DOMAIN_NON_NEGATIVE 2

/**
 * Input domain: reals in (0, 1) (probabilities).
 */
#define LK_DOMAIN_UNIT 3

/**
 * Input domain: reals < 0 (log-probabilities).
 */
#define LK_DOMAIN_LOG_PROB 4

/**
 * Input domain: 0 or 1 (f32 or i64). For an i64 input the host checks it.
 */
#define LK_DOMAIN_BINARY 5

/**
 * Input domain: a class index in [0, size of class_letter) (i64 only; the host checks it,
 * also accepting the value of an i64 parameter named ignore_index when the loss has one).
 */
#define LK_DOMAIN_CLASS 6

/**
 * One input of a plugin loss (frozen element type of lk_plugin_loss_v1.inputs).
 */
typedef struct lk_plugin_input_v1 {
  /**
   * snake_case name, e.g. "logits".
   */
  const char *name;
  /**
   * Shape letters joined by commas, e.g. "N,C" ("" for a scalar). Letters are single
   * upper-case letters; a number is a fixed size.
   */
  const char *shape;
  /**
   * One-line description (may be NULL).
   */
  const char *doc;
  /**
   * Element type: f32 {LK_DTYPE_CODE_FLOAT, 32, 1} or i64 {LK_DTYPE_CODE_INT, 64, 1}.
   */
  struct lk_dtype dtype;
  /**
   * true when the loss returns a gradient for this input (f32 only). For a per-sample
   * loss its shape must start with the per-sample letter (rows).
   */
  bool differentiable;
  /**
   * true when the input may be absent (its tensor then has data NULL).
   */
  bool optional;
  /**
   * Valid values: one of LK_DOMAIN_* (used to make random test inputs; i64 inputs must
   * be LK_DOMAIN_CLASS or LK_DOMAIN_BINARY and are checked by the host).
   */
  int32_t domain;
  /**
   * For LK_DOMAIN_CLASS: the shape letter giving the number of classes, e.g. "C".
   */
  const char *class_letter;
} lk_plugin_input_v1;

/**
 * One parameter of a plugin loss (frozen element type of lk_plugin_loss_v1.params).
 * Only the fields of its type are read.
 */
typedef struct lk_plugin_param_v1 {
  /**
   * snake_case name, e.g. "gamma".
   */
  const char *name;
  /**
   * One-line description (may be NULL).
   */
  const char *doc;
  /**
   * One of lk_param_type (LK_PARAM_F64, LK_PARAM_I64, LK_PARAM_BOOL, LK_PARAM_ENUM).
   */
  int32_t type_;
  /**
   * Default of an f64 parameter (inside the range, finite).
   */
  double default_f64;
  /**
   * Lower bound of an f64 parameter (may be -INFINITY).
   */
  double min_f64;
  /**
   * Upper bound of an f64 parameter (may be INFINITY).
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
   * Choices of an enum parameter (lower-case names); n_choices entries.
   */
  const char *const *choices;
  /**
   * Number of choices of an enum parameter.
   */
  size_t n_choices;
  /**
   * Index of the default choice of an enum parameter.
   */
  size_t default_choice;
} lk_plugin_param_v1;

/**
 * One auxiliary output of a plugin loss (frozen element type of lk_plugin_loss_v1.aux).
 */
typedef struct lk_plugin_aux_v1 {
  /**
   * snake_case name.
   */
  const char *name;
  /**
   * Shape letters, e.g. "N" (letters of the inputs only).
   */
  const char *shape;
  /**
   * One-line description (may be NULL).
   */
  const char *doc;
} lk_plugin_aux_v1;

/* ======================================================================================
 * 4. Callbacks
 * The functions a plugin loss implements, and what they receive.
 * ====================================================================================== */

/**
 * One parameter value handed to the callbacks, in the loss's parameter order. Only the
 * field of the parameter's type is meaningful: f64 for LK_PARAM_F64, i64 for
 * LK_PARAM_I64 and for LK_PARAM_ENUM (the index of the choice), b for LK_PARAM_BOOL.
 */
typedef struct lk_param_value {
  /**
   * Value of an f64 parameter.
   */
  double f64;
  /**
   * Value of an i64 parameter, or the choice index of an enum parameter.
   */
  int64_t i64;
  /**
   * Value of a bool parameter.
   */
  bool b;
} lk_param_value;

/**
 * What one compute callback reads and writes. The host has already checked everything
 * the spec states (presence, dtypes, ranks, shape letters, i64 domains), and every
 * tensor below is contiguous row-major host memory (strides NULL, byte_offset 0).
 *
 * Per-sample loss (batch_level false): write the UNSCALED per-row loss l_i into
 * loss[i] for i < rows, and for each differentiable input k with grads[k] non-NULL,
 * the UNSCALED per-row gradient d l_i / d x_k into grads[k] (same shape as input k;
 * row i of the gradient holds the derivative of l_i only). The host then applies the
 * reduction (none/mean/sum; mean divides by rows), the upstream gradient and the
 * caller's layout; the plugin never sees them.
 *
 * Batch-level loss: write the scalar loss into loss[0] and its gradients into grads;
 * the host scales them by the upstream gradient (mean and sum both return the scalar).
 *
 * Output buffers are zero-filled by the host before the call and belong to the host;
 * the plugin must not keep any pointer after returning.
 */
typedef struct lk_plugin_call_v1 {
  /**
   * sizeof(lk_plugin_call_v1) as the host was built (fields are only appended).
   */
  uint32_t struct_size;
  /**
   * Number of entries in inputs, grads (= the loss's n_inputs).
   */
  size_t n_inputs;
  /**
   * The inputs in spec order; an absent optional input has data NULL.
   */
  const struct lk_tensor *inputs;
  /**
   * Number of entries in dims.
   */
  size_t n_dims;
  /**
   * Sizes of the spec's shape letters in order of first appearance over the inputs
   * (0 for a letter used only by absent inputs), the same order as the GPU lk.dims.
   */
  const int64_t *dims;
  /**
   * Rows of the per-sample output (the size of the rows letter); 1 for batch-level.
   */
  size_t rows;
  /**
   * rows floats: the unscaled per-row losses (batch-level: the scalar in loss[0]).
   */
  float *loss;
  /**
   * n_inputs pointers: grads[k] is NULL when the gradient of input k is not wanted,
   * else a zero-filled contiguous buffer shaped like input k.
   */
  float *const *grads;
  /**
   * Number of entries in aux (= the loss's n_aux).
   */
  size_t n_aux;
  /**
   * n_aux pointers: aux[j] is NULL when auxiliary output j is not wanted, else a
   * zero-filled contiguous buffer of its spec shape. Auxiliary outputs are not scaled.
   */
  float *const *aux;
} lk_plugin_call_v1;

/**
 * Create a per-configuration state from the parameter values (spec order). Optional
 * (NULL: the state is NULL). Called when a configuration is first checked (lk_loss_check)
 * or computed, never by lk_loss_set_*, so it sees the whole configuration whatever the
 * order of the sets (and once at load with the defaults, as a check); the host caches a
 * few states and calls destroy when it evicts one or unloads. Return 0 and set
 * *out_state, or a non-zero status (LK_ERR_INVALID_PARAM for a rejected combination,
 * naming the parameters involved) with host->set_error.
 */
typedef int32_t (*lk_plugin_create_fn)(const struct lk_param_value *params,
                                       size_t n_params,
                                       void **out_state,
                                       struct lk_error_sink *err);

/**
 * Destroy a state from create. Optional; not called for a NULL state.
 */
typedef void (*lk_plugin_destroy_fn)(void *state);

/**
 * Compute on the CPU (see lk_plugin_call_v1 for exactly what to write). May run on
 * several threads at once with the same state: treat state as read-only. Return 0, or
 * a non-zero status with host->set_error. LK_ERR_INVALID_INPUT, LK_ERR_INVALID_TARGET,
 * LK_ERR_INVALID_PARAM, LK_ERR_UNSUPPORTED and LK_ERR_OUT_OF_MEMORY reach the caller as
 * they are; any other value becomes LK_ERR_PLUGIN_FAILED. The plugin's message is
 * passed on either way. NaN in the results is not an error: it propagates.
 */
typedef int32_t (*lk_plugin_compute_fn)(const void *state,
                                        const struct lk_param_value *params,
                                        size_t n_params,
                                        const struct lk_plugin_call_v1 *call,
                                        struct lk_error_sink *err);

/* ======================================================================================
 * 5. The loss table
 * ====================================================================================== */

/**
 * One loss of a plugin: the same spec data as a builtin, the CPU callbacks and an
 * optional WGSL kernel. Fields are only ever appended; set struct_size to
 * sizeof(lk_plugin_loss_v1).
 */
typedef struct lk_plugin_loss_v1 {
  /**
   * sizeof(lk_plugin_loss_v1) as the plugin was built.
   */
  uint32_t struct_size;
  /**
   * Stable snake_case id (must not clash with a builtin or another plugin's loss).
   */
  const char *id;
  /**
   * Family, e.g. "classification" (may be NULL: "plugin").
   */
  const char *family;
  /**
   * One-line summary.
   */
  const char *summary;
  /**
   * Source paper (and official code) (may be NULL).
   */
  const char *source;
  /**
   * Shape letter of the per-sample dimension, e.g. "N" (NULL: "N").
   */
  const char *rows;
  /**
   * true: one scalar over the batch (reduction none is refused).
   */
  bool batch_level;
  /**
   * Number of inputs (at least 1).
   */
  size_t n_inputs;
  /**
   * The inputs, in the order lk_loss_compute takes them.
   */
  const struct lk_plugin_input_v1 *inputs;
  /**
   * Number of parameters.
   */
  size_t n_params;
  /**
   * The parameters (may be NULL when n_params is 0).
   */
  const struct lk_plugin_param_v1 *params;
  /**
   * Number of auxiliary outputs.
   */
  size_t n_aux;
  /**
   * The auxiliary outputs (may be NULL when n_aux is 0).
   */
  const struct lk_plugin_aux_v1 *aux;
  /**
   * Optional (NULL: no state), see lk_plugin_create_fn.
   */
  int32_t (*create)(const struct lk_param_value *params,
                    size_t n_params,
                    void **out_state,
                    struct lk_error_sink *err);
  /**
   * Optional, see lk_plugin_destroy_fn. Not called for a NULL state.
   */
  void (*destroy)(void *state);
  /**
   * Required, see lk_plugin_compute_fn.
   */
  int32_t (*compute)(const void *state,
                     const struct lk_param_value *params,
                     size_t n_params,
                     const struct lk_plugin_call_v1 *call,
                     struct lk_error_sink *err);
  /**
   * Optional WGSL source of a per-sample kernel following the per-sample kernel
   * contract v1 (plugins/README.md), or NULL. Only for per-sample losses. Without it the
   * GPU backend runs compute on the CPU.
   */
  const char *wgsl_source;
} lk_plugin_loss_v1;

/* ======================================================================================
 * 6. The plugin descriptor and the entry point
 * ====================================================================================== */

/**
 * What a plugin's entry point returns: a static descriptor owned by the plugin, valid
 * while the plugin is loaded.
 */
typedef struct lk_plugin_v1 {
  /**
   * LK_PLUGIN_ABI_VERSION the plugin was built against.
   */
  uint32_t abi_version;
  /**
   * sizeof(lk_plugin_v1) as the plugin was built.
   */
  uint32_t struct_size;
  /**
   * Plugin name, e.g. "asl".
   */
  const char *name;
  /**
   * Plugin version text, e.g. "1.0.0".
   */
  const char *version;
  /**
   * Number of losses.
   */
  size_t n_losses;
  /**
   * n_losses pointers to loss tables.
   */
  const struct lk_plugin_loss_v1 *const *losses;
} lk_plugin_v1;

/**
 * The plugin entry point, exported as lk_plugin_init (or lk_plugin_<stem>_init).
 * Check host->abi_version, set *out_plugin to a static descriptor and return 0; or
 * return non-zero with host->set_error(err, ...) (the load then fails with
 * LK_ERR_PLUGIN_FAILED and the plugin's message). Loading a plugin runs this code.
 */
typedef int32_t (*lk_plugin_init_fn)(const struct lk_host_api_v1 *host,
                                     struct lk_error_sink *err,
                                     const struct lk_plugin_v1 **out_plugin);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif  /* LOSSKIT_PLUGIN_H */
