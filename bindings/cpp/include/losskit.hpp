// losskit.hpp: header-only C++17 wrapper over the losskit C API (losskit.h).
//
// What it adds to the C API, and nothing more (no maths lives here):
//  - RAII handles: lk::Context and lk::Loss are move-only and free their C object once.
//  - lk::Error (derived from std::runtime_error) carrying the lk_status code and the
//    thread-local message, read right after the failing call on the same thread.
//  - Typed parameter setters and getters (Loss::set picks the C setter from the C++ type).
//  - Tensor views over std::vector, std::array and raw arrays whose element count is checked
//    against the shape before anything reaches the library.
//  - A generic Loss::compute that sizes the loss, gradient and auxiliary outputs from the
//    loss's own description, so one call works for every registered loss.
//  - Introspection (Context::loss_ids, Context::describe) with std::string copies.
//  - Plugins: Context::load_plugin, plugin_count, plugin (name, version, path, loss ids).
//  - Device buffers: lk::Buffer, an RAII lk_buffer of a WGPU context, with typed
//    write/read and views (Buffer::view, Buffer::out_view) that enter the same compute path.
//
// Threads: a Context may be shared by threads; a Loss is configured by one thread, and
// its const member functions (compute, info, get) may run on many threads at once.
//
// Extending: every wrapper exposes the C handle through native(), and lk::check() turns any
// lk_status into an lk::Error, so C functions added later can be called with the same error
// handling before a dedicated wrapper exists. A TensorView can be made from any lk_tensor
// (TensorView::from_c, OutputView::from_c), which is also how Buffer views are built.
//
// Link with -llosskit (CMake: target losskit::losskit_cpp; pkg-config: losskit).

#ifndef LOSSKIT_HPP
#define LOSSKIT_HPP

#include <losskit.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace lk {

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Static text of a status code ("unknown status" for codes this library does not know).
inline std::string status_str(int32_t code) { return lk_status_str(code); }

/// A failed losskit call: the status code and the library's message.
class Error : public std::runtime_error {
 public:
  Error(int32_t code, std::string message)
      : std::runtime_error(format(code, message)), code_(code), message_(std::move(message)) {}

  /// The lk_status value (compare with LK_ERR_*; unknown future codes are kept as is).
  int32_t code() const noexcept { return code_; }
  /// The message losskit gave for this failure (may be empty).
  const std::string& message() const noexcept { return message_; }
  /// Static text of the code, e.g. "invalid parameter".
  std::string status_text() const { return status_str(code_); }

 private:
  static std::string format(int32_t code, const std::string& message) {
    std::string s = status_str(code) + " (" + std::to_string(code) + ")";
    if (!message.empty()) s += ": " + message;
    return s;
  }
  int32_t code_;
  std::string message_;
};

/// Throw an lk::Error for a non-OK status, reading the thread-local message at once.
/// Call it directly on the return value of a C function, with no lk_ call in between.
inline void check(int32_t status) {
  if (status == LK_OK) return;
  const char* msg = lk_last_error_message();
  throw Error(status, msg ? std::string(msg) : std::string());
}

// ---------------------------------------------------------------------------------------
// Enums and version
// ---------------------------------------------------------------------------------------

enum class Backend : int32_t { Auto = LK_BACKEND_AUTO, Cpu = LK_BACKEND_CPU, Wgpu = LK_BACKEND_WGPU };
enum class Reduction : int32_t { None = LK_REDUCTION_NONE, Mean = LK_REDUCTION_MEAN, Sum = LK_REDUCTION_SUM };
enum class DType { F32, I64 };
enum class ParamType : int32_t {
  F64 = LK_PARAM_F64,
  I64 = LK_PARAM_I64,
  Bool = LK_PARAM_BOOL,
  Enum = LK_PARAM_ENUM
};

/// The run-time library version, e.g. "0.1.0".
inline std::string version() { return lk_version_string(); }
/// True when the loaded library has the version and C ABI this header was compiled with.
inline bool version_matches() noexcept {
  return lk_version_number() == static_cast<uint32_t>(LK_VERSION_NUMBER) &&
         lk_abi_version() == static_cast<uint32_t>(LK_ABI_VERSION);
}
/// Whether a backend can be used on this machine.
inline bool backend_available(Backend b) noexcept { return lk_backend_available(static_cast<int32_t>(b)); }

namespace detail {
inline std::string str(const char* s) { return s ? std::string(s) : std::string(); }

inline lk_dtype c_dtype(DType t) noexcept {
  lk_dtype d{};
  d.code = t == DType::F32 ? LK_DTYPE_CODE_FLOAT : LK_DTYPE_CODE_INT;
  d.bits = t == DType::F32 ? 32 : 64;
  d.lanes = 1;
  return d;
}

inline std::vector<std::string> split_letters(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (c != ' ') {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

inline bool is_number(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}
}  // namespace detail

// ---------------------------------------------------------------------------------------
// Tensor views
// ---------------------------------------------------------------------------------------

/// Row-major sizes of a tensor (at most LK_MAX_NDIM of them).
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) { assign(dims.begin(), dims.end()); }
  explicit Shape(const std::vector<int64_t>& dims) { assign(dims.begin(), dims.end()); }

  int32_t ndim() const noexcept { return ndim_; }
  int64_t operator[](std::size_t k) const noexcept { return dims_[k]; }
  const int64_t* data() const noexcept { return dims_.data(); }
  std::vector<int64_t> to_vector() const { return {dims_.begin(), dims_.begin() + ndim_}; }
  /// Product of the sizes (1 for a scalar).
  std::size_t numel() const {
    std::size_t n = 1;
    for (std::size_t k = 0; k < std::size_t(ndim_); ++k) n *= static_cast<std::size_t>(dims_[k]);
    return n;
  }
  std::string to_string() const {
    std::string s = "[";
    for (std::size_t k = 0; k < std::size_t(ndim_); ++k) s += (k ? ", " : "") + std::to_string(dims_[k]);
    return s + "]";
  }

 private:
  template <class It>
  void assign(It b, It e) {
    for (; b != e; ++b) {
      if (ndim_ == LK_MAX_NDIM)
        throw Error(LK_ERR_INVALID_ARG, "shape has more than " + std::to_string(LK_MAX_NDIM) + " dimensions");
      if (*b < 0) throw Error(LK_ERR_SHAPE_MISMATCH, "shape has a negative size " + std::to_string(*b));
      dims_[static_cast<std::size_t>(ndim_++)] = *b;
    }
  }
  std::array<int64_t, LK_MAX_NDIM> dims_{};
  int32_t ndim_ = 0;
};

/// A borrowed, contiguous, row-major view of f32 or i64 host memory (or, through from_c,
/// any lk_tensor). It does not own the data, which must outlive the compute call.
/// The element count is checked against the shape when the view is made.
class TensorView {
 public:
  /// An absent optional input (or an unwanted gradient slot).
  TensorView() = default;

  TensorView(const float* data, std::size_t count, Shape shape) : TensorView(data, DType::F32, count, shape) {}
  TensorView(const int64_t* data, std::size_t count, Shape shape) : TensorView(data, DType::I64, count, shape) {}
  TensorView(const std::vector<float>& v, Shape shape) : TensorView(v.data(), v.size(), shape) {}
  TensorView(const std::vector<int64_t>& v, Shape shape) : TensorView(v.data(), v.size(), shape) {}
  /// A 1-D view of a whole vector.
  explicit TensorView(const std::vector<float>& v) : TensorView(v.data(), v.size(), Shape{int64_t(v.size())}) {}
  explicit TensorView(const std::vector<int64_t>& v) : TensorView(v.data(), v.size(), Shape{int64_t(v.size())}) {}
  template <std::size_t K>
  TensorView(const std::array<float, K>& a, Shape shape) : TensorView(a.data(), K, shape) {}
  template <std::size_t K>
  TensorView(const std::array<int64_t, K>& a, Shape shape) : TensorView(a.data(), K, shape) {}

  /// Wrap an existing lk_tensor (a DLPack DLTensor has the same layout). Its shape and
  /// strides arrays are copied; the data is borrowed. losskit validates it in the call.
  static TensorView from_c(const lk_tensor& t) {
    TensorView v;
    v.t_ = t;
    if (t.ndim < 0 || t.ndim > LK_MAX_NDIM)
      throw Error(LK_ERR_INVALID_ARG, "lk_tensor ndim " + std::to_string(t.ndim) + " outside [0, 8]");
    std::vector<int64_t> dims(t.shape, t.shape + (t.shape ? t.ndim : 0));
    v.shape_ = Shape(dims);
    if (t.strides) {
      v.has_strides_ = true;
      for (int32_t k = 0; k < t.ndim; ++k) v.strides_[static_cast<std::size_t>(k)] = t.strides[k];
    }
    v.present_ = t.data != nullptr;
    return v;
  }

  bool present() const noexcept { return present_; }
  const Shape& shape() const noexcept { return shape_; }
  const void* data() const noexcept { return t_.data; }
  DType dtype() const noexcept { return t_.dtype.code == LK_DTYPE_CODE_INT ? DType::I64 : DType::F32; }

  /// The C view. It points into this object: keep the object alive and unmoved while the
  /// returned value is in use.
  lk_tensor c() const noexcept {
    lk_tensor t = t_;
    t.ndim = shape_.ndim();
    t.shape = shape_.ndim() ? shape_.data() : nullptr;
    t.strides = has_strides_ ? strides_.data() : nullptr;
    return t;
  }

 protected:
  TensorView(const void* data, DType dt, std::size_t count, Shape shape) : shape_(shape), present_(true) {
    if (shape.numel() != count)
      throw Error(LK_ERR_SHAPE_MISMATCH, "a buffer of " + std::to_string(count) + " elements cannot be viewed as shape " +
                                             shape.to_string() + " (" + std::to_string(shape.numel()) + " elements)");
    t_.data = const_cast<void*>(data);
    t_.device.device_type = LK_DEVICE_CPU;
    t_.device.device_id = 0;
    t_.dtype = detail::c_dtype(dt);
  }

  lk_tensor t_{nullptr, {LK_DEVICE_CPU, 0}, 0, {LK_DTYPE_CODE_FLOAT, 32, 1}, nullptr, nullptr, 0};
  Shape shape_;
  std::array<int64_t, LK_MAX_NDIM> strides_{};
  bool has_strides_ = false;
  bool present_ = false;
};

/// A writable f32 view: a loss output, a gradient slot or an auxiliary output. Passing the
/// same OutputView as an input and as that input's gradient slot computes the gradient in
/// place (when the loss allows it).
class OutputView : public TensorView {
 public:
  /// An unwanted output slot.
  OutputView() = default;
  OutputView(float* data, std::size_t count, Shape shape) : TensorView(data, DType::F32, count, shape) {}
  OutputView(std::vector<float>& v, Shape shape) : OutputView(v.data(), v.size(), shape) {}
  explicit OutputView(std::vector<float>& v) : OutputView(v.data(), v.size(), Shape{int64_t(v.size())}) {}
  template <std::size_t K>
  OutputView(std::array<float, K>& a, Shape shape) : OutputView(a.data(), K, shape) {}
  /// Wrap an existing writable lk_tensor (f32; host memory or an lk_buffer).
  static OutputView from_c(const lk_tensor& t) {
    OutputView o;
    static_cast<TensorView&>(o) = TensorView::from_c(t);
    return o;
  }
  /// The host data (for a device view: the lk_buffer handle, not host memory).
  float* data() const noexcept { return static_cast<float*>(t_.data); }
};

/// An absent optional input.
inline TensorView absent() { return TensorView(); }

// ---------------------------------------------------------------------------------------
// Introspection
// ---------------------------------------------------------------------------------------

struct InputInfo {
  std::string name, shape, doc;
  std::vector<std::string> letters;  // shape split at commas ("N,C" -> {"N", "C"})
  DType dtype = DType::F32;
  bool differentiable = false;
  bool optional = false;
};

struct ParamInfo {
  std::string name, doc;
  ParamType type = ParamType::F64;
  double default_f64 = 0, min_f64 = 0, max_f64 = 0;
  bool min_open = false, max_open = false;
  int64_t default_i64 = 0, min_i64 = 0, max_i64 = 0;
  bool default_bool = false;
  std::string default_enum;
  std::vector<std::string> choices;
};

struct AuxInfo {
  std::string name, shape, doc;
  std::vector<std::string> letters;
};

/// Everything the registry says about one loss.
struct LossInfo {
  std::string id, family, summary, source, rows;
  bool batch_level = false;
  bool in_place = false;
  std::vector<InputInfo> inputs;
  std::vector<ParamInfo> params;
  std::vector<AuxInfo> aux;

  const ParamInfo* param(const std::string& name) const {
    for (const auto& p : params)
      if (p.name == name) return &p;
    return nullptr;
  }
};

namespace detail {
inline LossInfo describe(const lk_context* ctx, const std::string& id) {
  lk_loss_info li{};
  check(lk_loss_describe(ctx, id.c_str(), &li));
  LossInfo out;
  out.id = str(li.id);
  out.family = str(li.family);
  out.summary = str(li.summary);
  out.source = str(li.source);
  out.rows = str(li.rows);
  out.batch_level = li.batch_level;
  out.in_place = li.in_place;
  for (std::size_t k = 0; k < li.n_inputs; ++k) {
    lk_input_info ii{};
    check(lk_loss_describe_input(ctx, id.c_str(), k, &ii));
    InputInfo x;
    x.name = str(ii.name);
    x.shape = str(ii.shape);
    x.doc = str(ii.doc);
    x.letters = split_letters(x.shape);
    x.dtype = ii.dtype.code == LK_DTYPE_CODE_INT ? DType::I64 : DType::F32;
    x.differentiable = ii.differentiable;
    x.optional = ii.optional;
    out.inputs.push_back(std::move(x));
  }
  for (std::size_t k = 0; k < li.n_params; ++k) {
    lk_param_info pi{};
    check(lk_loss_describe_param(ctx, id.c_str(), k, &pi));
    ParamInfo p;
    p.name = str(pi.name);
    p.doc = str(pi.doc);
    p.type = static_cast<ParamType>(pi.type_);
    p.default_f64 = pi.default_f64;
    p.min_f64 = pi.min_f64;
    p.max_f64 = pi.max_f64;
    p.min_open = pi.min_open;
    p.max_open = pi.max_open;
    p.default_i64 = pi.default_i64;
    p.min_i64 = pi.min_i64;
    p.max_i64 = pi.max_i64;
    p.default_bool = pi.default_bool;
    p.default_enum = str(pi.default_enum);
    for (std::size_t c = 0; c < pi.n_choices; ++c) {
      const char* name = lk_loss_param_choice(ctx, id.c_str(), k, c);
      if (!name) {
        // This function reports failure by NULL only; read the message at once.
        const char* m = lk_last_error_message();
        throw Error(LK_ERR_INTERNAL, id + ": choice " + std::to_string(c) + " of '" + p.name + "': " + str(m));
      }
      p.choices.push_back(str(name));
    }
    out.params.push_back(std::move(p));
  }
  for (std::size_t k = 0; k < li.n_aux; ++k) {
    lk_aux_info ai{};
    check(lk_loss_describe_aux(ctx, id.c_str(), k, &ai));
    AuxInfo a;
    a.name = str(ai.name);
    a.shape = str(ai.shape);
    a.doc = str(ai.doc);
    a.letters = split_letters(a.shape);
    out.aux.push_back(std::move(a));
  }
  return out;
}
}  // namespace detail

// ---------------------------------------------------------------------------------------
// Context
// ---------------------------------------------------------------------------------------

class Loss;

/// One loaded plugin (Context::plugin).
struct PluginInfo {
  std::string name, version, path, entry;
  /// Ids of the losses it registered.
  std::vector<std::string> losses;
};

/// A backend and the losses it knows. Move-only; freed on destruction. May be shared by
/// threads (by reference).
class Context {
 public:
  explicit Context(Backend backend = Backend::Auto) {
    lk_context* p = nullptr;
    check(lk_context_create(static_cast<int32_t>(backend), &p));
    ptr_.reset(p);
  }

  /// The backend computations run on (Auto resolved at creation).
  Backend backend() const noexcept { return static_cast<Backend>(lk_context_backend(ptr_.get())); }

  /// Ids of every loss this context knows (builtins, then plugins).
  std::vector<std::string> loss_ids() const {
    std::vector<std::string> ids;
    const std::size_t n = lk_loss_count(ptr_.get());
    for (std::size_t k = 0; k < n; ++k) ids.push_back(detail::str(lk_loss_id_at(ptr_.get(), k)));
    return ids;
  }

  /// The full description of a loss (inputs, parameters with ranges and choices, aux).
  LossInfo describe(const std::string& id) const { return detail::describe(ptr_.get(), id); }

  /// Create a loss with its default parameters.
  inline Loss loss(const std::string& id) const;

  /// Load a plugin (a shared object) and register its losses into this context.
  /// LOADING A PLUGIN RUNS ITS CODE: load only plugins you trust. `entry` NULL: the
  /// default entry symbols (lk_plugin_init, then lk_plugin_<stem>_init). Throws lk::Error
  /// (LK_ERR_PLUGIN_LOAD, LK_ERR_PLUGIN_SYMBOL, LK_ERR_PLUGIN_ABI, ...) naming the file;
  /// on error nothing is registered.
  void load_plugin(const std::string& path, const char* entry = nullptr) const {
    check(lk_plugin_load(ptr_.get(), path.c_str(), entry));
  }

  /// Number of plugins loaded into this context.
  std::size_t plugin_count() const noexcept { return lk_plugin_count(ptr_.get()); }

  /// The plugin at `index` (load order); LK_ERR_INVALID_ARG when out of range.
  inline PluginInfo plugin(std::size_t index) const;

  /// The C handle, for C functions without a wrapper yet. Still owned by this object.
  lk_context* native() const noexcept { return ptr_.get(); }

 private:
  struct Free {
    void operator()(lk_context* p) const noexcept { lk_context_free(p); }
  };
  std::unique_ptr<lk_context, Free> ptr_;
};

// ---------------------------------------------------------------------------------------
// Loss
// ---------------------------------------------------------------------------------------

/// The outputs of Loss::compute.
struct Result {
  /// One value for Mean/Sum, one per sample for None.
  std::vector<float> loss;
  /// One entry per input of the loss, in order; empty when the input is not
  /// differentiable, was absent, or gradients were not asked for.
  std::vector<std::vector<float>> grads;
  /// The auxiliary outputs that were asked for, by name.
  std::map<std::string, std::vector<float>> aux;

  /// The reduced loss (first value).
  float value() const { return loss.at(0); }
};

/// Options of the generic Loss::compute.
struct ComputeOptions {
  Reduction reduction = Reduction::Mean;
  /// Compute the gradient of every present differentiable input.
  bool grads = true;
  /// Upstream gradient (empty = 1): one value for Mean/Sum, one per sample for None.
  std::vector<float> grad_output;
  /// Names of auxiliary outputs to return (see LossInfo::aux).
  std::vector<std::string> aux;
};

/// A named auxiliary output destination for the low-level compute.
struct AuxOutput {
  std::string name;
  OutputView view;
};

/// A configured loss. Move-only; freed on destruction. Configure (set) from one thread,
/// then compute from any number of threads.
class Loss {
 public:
  Loss(const Context& ctx, const std::string& id) {
    lk_loss* p = nullptr;
    lk::check(lk_loss_create(ctx.native(), id.c_str(), &p));
    ptr_.reset(p);
    info_ = std::make_shared<const LossInfo>(ctx.describe(id));
  }

  /// The loss id.
  std::string id() const { return detail::str(lk_loss_id(ptr_.get())); }
  /// The loss's description, captured at creation.
  const LossInfo& info() const noexcept { return *info_; }

  // Typed setters. Out-of-range values throw lk::Error (LK_ERR_INVALID_PARAM) and keep the
  // previous value; unknown names throw LK_ERR_UNKNOWN_PARAM. Each setter checks the value
  // against its own range only, so parameters may be set in any order; combinations are
  // checked by check() and by every compute.
  Loss& set_f64(const std::string& name, double v) {
    lk::check(lk_loss_set_f64(ptr_.get(), name.c_str(), v));
    return *this;
  }
  Loss& set_i64(const std::string& name, int64_t v) {
    lk::check(lk_loss_set_i64(ptr_.get(), name.c_str(), v));
    return *this;
  }
  Loss& set_bool(const std::string& name, bool v) {
    lk::check(lk_loss_set_bool(ptr_.get(), name.c_str(), v));
    return *this;
  }
  Loss& set_enum(const std::string& name, const std::string& choice) {
    lk::check(lk_loss_set_enum(ptr_.get(), name.c_str(), choice.c_str()));
    return *this;
  }
  /// Set by C++ type: floating point -> f64, bool -> bool, other integers -> i64,
  /// strings -> enum choice.
  template <class T>
  Loss& set(const std::string& name, const T& v) {
    using U = std::decay_t<T>;
    if constexpr (std::is_same_v<U, bool>) {
      return set_bool(name, v);
    } else if constexpr (std::is_floating_point_v<U>) {
      return set_f64(name, static_cast<double>(v));
    } else if constexpr (std::is_integral_v<U>) {
      return set_i64(name, static_cast<int64_t>(v));
    } else if constexpr (std::is_convertible_v<const T&, std::string>) {
      return set_enum(name, std::string(v));
    } else {
      static_assert(std::is_convertible_v<const T&, std::string>, "lk::Loss::set: unsupported parameter type");
      return *this;
    }
  }

  double get_f64(const std::string& name) const {
    double v = 0;
    lk::check(lk_loss_get_f64(ptr_.get(), name.c_str(), &v));
    return v;
  }
  int64_t get_i64(const std::string& name) const {
    int64_t v = 0;
    lk::check(lk_loss_get_i64(ptr_.get(), name.c_str(), &v));
    return v;
  }
  bool get_bool(const std::string& name) const {
    bool v = false;
    lk::check(lk_loss_get_bool(ptr_.get(), name.c_str(), &v));
    return v;
  }
  /// The chosen choice of an enum parameter.
  std::string get_enum(const std::string& name) const {
    const char* v = nullptr;
    lk::check(lk_loss_get_enum(ptr_.get(), name.c_str(), &v));
    return detail::str(v);
  }

  /// Check the parameters together (what compute checks first): throws lk::Error
  /// (LK_ERR_INVALID_PARAM, naming the parameters) for a combination the loss refuses.
  void check() const { lk::check(lk_loss_check(ptr_.get())); }

  /// Low-level compute: the C call with views. `grads[k]` receives the gradient of
  /// `inputs[k]` (a default OutputView = not wanted); pass the same view as an input and as
  /// its gradient slot to compute it in place. `grad_output` empty = 1.
  void compute_into(const std::vector<TensorView>& inputs, Reduction reduction, const OutputView& loss_out,
                    const std::vector<OutputView>& grads = {}, const TensorView& grad_output = TensorView(),
                    const std::vector<AuxOutput>& aux = {}) const {
    std::vector<lk_tensor> in;
    in.reserve(inputs.size());
    for (const auto& v : inputs) in.push_back(v.c());
    std::vector<lk_tensor> gs;
    gs.reserve(grads.size());
    for (const auto& g : grads) gs.push_back(g.c());
    std::vector<lk_aux_output> ax;
    ax.reserve(aux.size());
    for (const auto& a : aux) ax.push_back(lk_aux_output{a.name.c_str(), a.view.c()});
    const lk_tensor out = loss_out.c();
    const lk_tensor go = grad_output.c();
    lk::check(lk_loss_compute(ptr_.get(), in.empty() ? nullptr : in.data(), in.size(), static_cast<int32_t>(reduction),
                          grad_output.present() ? &go : nullptr, &out, gs.empty() ? nullptr : gs.data(), gs.size(),
                          ax.empty() ? nullptr : ax.data(), ax.size()));
  }

  /// Generic compute: allocates the loss, the gradient of every present differentiable
  /// input and the asked auxiliary outputs from the loss's description, then calls
  /// compute_into. Works the same for every registered loss.
  Result compute(const std::vector<TensorView>& inputs, const ComputeOptions& opt = {}) const {
    const LossInfo& li = *info_;
    if (inputs.size() > li.inputs.size())
      throw Error(LK_ERR_INVALID_ARG, li.id + ": " + std::to_string(inputs.size()) + " inputs given, the loss takes " +
                                          std::to_string(li.inputs.size()));
    // Sizes of the shape letters, from the present inputs (losskit re-checks them all).
    std::map<std::string, int64_t> dims;
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      if (!inputs[k].present()) continue;
      const auto& letters = li.inputs[k].letters;
      const Shape& s = inputs[k].shape();
      for (std::size_t a = 0; a < letters.size() && a < static_cast<std::size_t>(s.ndim()); ++a)
        dims.emplace(letters[a], s[a]);
    }
    auto letter_size = [&](const std::string& l) -> int64_t {
      if (detail::is_number(l)) return std::stoll(l);
      auto it = dims.find(l);
      if (it == dims.end())
        throw Error(LK_ERR_NULL_ARG, li.id + ": cannot size '" + l + "': no present input has that dimension");
      return it->second;
    };

    Result r;
    const int64_t n_out = opt.reduction == Reduction::None ? letter_size(li.rows) : 1;
    r.loss.assign(static_cast<std::size_t>(n_out), 0.0f);
    OutputView out(r.loss, opt.reduction == Reduction::None ? Shape{n_out} : Shape{});

    std::vector<OutputView> gviews;
    r.grads.resize(li.inputs.size());
    if (opt.grads) {
      gviews.resize(inputs.size());
      for (std::size_t k = 0; k < inputs.size(); ++k) {
        if (!li.inputs[k].differentiable || !inputs[k].present()) continue;
        r.grads[k].assign(inputs[k].shape().numel(), 0.0f);
        gviews[k] = OutputView(r.grads[k], inputs[k].shape());
      }
    }

    std::vector<AuxOutput> aviews;
    for (const auto& name : opt.aux) {
      const AuxInfo* ai = nullptr;
      for (const auto& a : li.aux)
        if (a.name == name) ai = &a;
      if (!ai) throw Error(LK_ERR_INVALID_ARG, li.id + ": no auxiliary output '" + name + "'");
      std::vector<int64_t> sh;
      for (const auto& l : ai->letters) sh.push_back(letter_size(l));
      Shape shape(sh);
      auto& buf = r.aux[name];
      buf.assign(shape.numel(), 0.0f);
      aviews.push_back(AuxOutput{name, OutputView(buf, shape)});
    }

    TensorView go;
    if (!opt.grad_output.empty())
      go = TensorView(opt.grad_output.data(), opt.grad_output.size(),
                      opt.reduction == Reduction::None ? Shape{int64_t(opt.grad_output.size())} : Shape{});
    compute_into(inputs, opt.reduction, out, gviews, go, aviews);
    return r;
  }

  /// The C handle, still owned by this object.
  lk_loss* native() const noexcept { return ptr_.get(); }

 private:
  struct Free {
    void operator()(lk_loss* p) const noexcept { lk_loss_free(p); }
  };
  std::unique_ptr<lk_loss, Free> ptr_;
  std::shared_ptr<const LossInfo> info_;
};

inline Loss Context::loss(const std::string& id) const { return Loss(*this, id); }

inline PluginInfo Context::plugin(std::size_t index) const {
  lk_plugin_info pi{};
  check(lk_plugin_describe(ptr_.get(), index, &pi));
  PluginInfo out;
  out.name = detail::str(pi.name);
  out.version = detail::str(pi.version);
  out.path = detail::str(pi.path);
  out.entry = detail::str(pi.entry);
  for (std::size_t k = 0; k < pi.n_losses; ++k) out.losses.push_back(detail::str(lk_plugin_loss_id_at(ptr_.get(), index, k)));
  return out;
}

// ---------------------------------------------------------------------------------------
// Device buffers
// ---------------------------------------------------------------------------------------

/// A device-resident buffer of a WGPU context (lk_buffer). Move-only; freed on
/// destruction; it keeps its context's GPU device alive, so it may outlive the Context.
/// Views (view, out_view) refer to it with device type LK_DEVICE_LKBUFFER and are passed
/// to Loss::compute_into like host views (inputs and gradients; the loss output,
/// grad_output and aux outputs stay in host memory). Offsets and sizes of write/read are
/// in bytes, multiples of 4. Do not write a buffer while a compute using it runs on
/// another thread.
class Buffer {
 public:
  /// Allocate `n_bytes` on the context's GPU (contents unspecified until written).
  /// A CPU context throws LK_ERR_UNSUPPORTED.
  Buffer(const Context& ctx, uint64_t n_bytes) {
    lk_buffer* p = nullptr;
    check(lk_buffer_create(ctx.native(), n_bytes, &p));
    ptr_.reset(p);
  }

  /// A buffer holding a copy of `data`.
  template <class T>
  static Buffer from(const Context& ctx, const std::vector<T>& data) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, int64_t>, "lk::Buffer: float or int64_t data");
    Buffer b(ctx, uint64_t(data.size() * sizeof(T)));
    b.write(data);
    return b;
  }

  /// Size in bytes.
  uint64_t size() const noexcept { return lk_buffer_size(ptr_.get()); }

  /// Copy `n_bytes` host bytes to byte `offset` of the buffer.
  void write(const void* src, std::size_t n_bytes, uint64_t offset = 0) const {
    check(lk_buffer_write(ptr_.get(), offset, src, n_bytes));
  }
  template <class T>
  void write(const std::vector<T>& v, uint64_t offset = 0) const {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, int64_t>, "lk::Buffer: float or int64_t data");
    write(v.data(), v.size() * sizeof(T), offset);
  }

  /// Copy `n_bytes` from byte `offset` of the buffer to host memory (waits for computes
  /// that write the buffer).
  void read(void* dst, std::size_t n_bytes, uint64_t offset = 0) const {
    check(lk_buffer_read(ptr_.get(), offset, dst, n_bytes));
  }
  /// `count` elements of type T from byte `offset`.
  template <class T>
  std::vector<T> read(std::size_t count, uint64_t offset = 0) const {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, int64_t>, "lk::Buffer: float or int64_t data");
    std::vector<T> v(count);
    read(v.data(), count * sizeof(T), offset);
    return v;
  }

  /// A read-only view of `shape` elements of `dtype` from byte `byte_offset`; throws
  /// LK_ERR_BUFFER_TOO_SMALL when it does not fit.
  TensorView view(DType dtype, Shape shape, uint64_t byte_offset = 0) const {
    return TensorView::from_c(tensor(dtype, shape, byte_offset));
  }
  /// A writable f32 view (a gradient slot, or an input computed in place).
  OutputView out_view(Shape shape, uint64_t byte_offset = 0) const {
    return OutputView::from_c(tensor(DType::F32, shape, byte_offset));
  }

  /// The C handle, still owned by this object.
  lk_buffer* native() const noexcept { return ptr_.get(); }

 private:
  lk_tensor tensor(DType dtype, const Shape& shape, uint64_t byte_offset) const {
    const uint64_t el = dtype == DType::F32 ? 4 : 8;
    const uint64_t need = byte_offset + uint64_t(shape.numel()) * el;
    if (need > size())
      throw Error(LK_ERR_BUFFER_TOO_SMALL, "a device buffer of " + std::to_string(size()) + " bytes cannot hold shape " +
                                               shape.to_string() + " at byte offset " + std::to_string(byte_offset));
    lk_tensor t{};
    t.data = ptr_.get();
    t.device.device_type = LK_DEVICE_LKBUFFER;
    t.device.device_id = 0;
    t.ndim = shape.ndim();
    t.dtype = detail::c_dtype(dtype);
    t.shape = shape.ndim() ? shape.data() : nullptr;
    t.strides = nullptr;
    t.byte_offset = byte_offset;
    return t;  // from_c copies the shape before `shape` goes away
  }
  struct Free {
    void operator()(lk_buffer* p) const noexcept { lk_buffer_free(p); }
  };
  std::unique_ptr<lk_buffer, Free> ptr_;
};

}  // namespace lk

#endif  // LOSSKIT_HPP
