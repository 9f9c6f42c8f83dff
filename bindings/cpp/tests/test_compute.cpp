// Computing through the wrapper: values and gradients against a plain double-precision
// softmax cross-entropy written here, reductions, parameters, optional inputs, auxiliary
// outputs, in-place gradients, raw arrays, handle ownership and concurrent computes.
#include "check.hpp"

#include <algorithm>
#include <thread>
#include <vector>

namespace {

constexpr int64_t N = 3, C = 4;
const std::vector<float> kLogits = {0.5f, -1.0f, 2.0f, 0.0f,   //
                                    1.5f, 0.25f, -0.5f, 3.0f,  //
                                    -2.0f, 0.0f, 0.75f, 1.0f};
const std::vector<int64_t> kTarget = {2, 0, 3};

double lse(const float* z) {
  double m = z[0];
  for (int64_t c = 1; c < C; ++c) m = std::max(m, double(z[c]));
  double s = 0;
  for (int64_t c = 0; c < C; ++c) s += std::exp(double(z[c]) - m);
  return m + std::log(s);
}

// Label-smoothed cross-entropy of one row and its gradient (no weights).
double row_ref(const float* z, int64_t y, double eps, double* grad) {
  const double L = lse(z);
  double sum_z = 0;
  for (int64_t c = 0; c < C; ++c) sum_z += z[c];
  for (int64_t c = 0; c < C; ++c) {
    const double p = std::exp(double(z[c]) - L);
    grad[c] = (1 - eps) * (p - (c == y ? 1.0 : 0.0)) + eps / double(C) * (double(C) * p - 1.0);
  }
  return (1 - eps) * (L - z[y]) + eps / double(C) * (double(C) * L - sum_z);
}

void test_describe(const lk::Context& ctx) {
  CHECK(lk::version_matches());
  CHECK(lk::version() == std::to_string(LK_VERSION_MAJOR) + "." + std::to_string(LK_VERSION_MINOR) + "." +
                             std::to_string(LK_VERSION_PATCH));
  CHECK(ctx.backend() == lk::Backend::Cpu);
  const auto ids = ctx.loss_ids();
  CHECK(std::find(ids.begin(), ids.end(), "cross_entropy") != ids.end());
  for (const auto& id : ids) {
    const lk::LossInfo info = ctx.describe(id);
    CHECK(info.id == id);
    CHECK(!info.inputs.empty());
    for (const auto& p : info.params) {
      if (p.type == lk::ParamType::Enum) {
        CHECK(!p.choices.empty());
        CHECK(std::find(p.choices.begin(), p.choices.end(), p.default_enum) != p.choices.end());
      }
    }
  }
  const lk::LossInfo ce = ctx.describe("cross_entropy");
  CHECK(ce.rows == "N");
  CHECK(ce.in_place);
  CHECK(ce.inputs.size() >= 2);
  CHECK(ce.inputs[0].name == "logits" && ce.inputs[0].differentiable && ce.inputs[0].dtype == lk::DType::F32);
  CHECK((ce.inputs[0].letters == std::vector<std::string>{"N", "C"}));
  CHECK(ce.inputs[1].dtype == lk::DType::I64 && !ce.inputs[1].differentiable);
  const lk::ParamInfo* ls = ce.param("label_smoothing");
  CHECK(ls != nullptr);
  if (ls) {
    CHECK(ls->type == lk::ParamType::F64);
    CHECK(ls->default_f64 == 0.0 && ls->min_f64 == 0.0 && ls->max_f64 == 1.0);
  }
  CHECK(ce.param("no_such_param") == nullptr);
}

void test_mean_and_grads(const lk::Context& ctx, double eps) {
  lk::Loss loss = ctx.loss("cross_entropy");
  if (eps != 0) loss.set("label_smoothing", eps);
  CHECK_CLOSE(loss.get_f64("label_smoothing"), eps, 0);
  const lk::Result r = loss.compute({lk::TensorView(kLogits, {N, C}), lk::TensorView(kTarget, {N})});
  CHECK(r.loss.size() == 1);
  CHECK(r.grads.size() == loss.info().inputs.size());
  CHECK(r.grads[0].size() == size_t(N * C));
  CHECK(r.grads[1].empty());
  double want = 0;
  std::vector<double> g(size_t(N * C));
  for (int64_t i = 0; i < N; ++i) want += row_ref(&kLogits[size_t(i * C)], kTarget[size_t(i)], eps, &g[size_t(i * C)]);
  CHECK_CLOSE(r.value(), want / double(N), 1e-5);
  for (size_t k = 0; k < g.size(); ++k) CHECK_CLOSE(r.grads[0][k], g[k] / double(N), 1e-5);
}

void test_reductions_and_grad_output(const lk::Context& ctx) {
  lk::Loss loss = ctx.loss("cross_entropy");
  const std::vector<lk::TensorView> in = {lk::TensorView(kLogits, {N, C}), lk::TensorView(kTarget, {N})};
  lk::ComputeOptions none;
  none.reduction = lk::Reduction::None;
  const lk::Result rn = loss.compute(in, none);
  CHECK(rn.loss.size() == size_t(N));
  double sum = 0;
  for (int64_t i = 0; i < N; ++i) {
    const float* z = &kLogits[size_t(i * C)];
    CHECK_CLOSE(rn.loss[size_t(i)], lse(z) - z[kTarget[size_t(i)]], 1e-5);
    sum += rn.loss[size_t(i)];
  }
  lk::ComputeOptions s;
  s.reduction = lk::Reduction::Sum;
  s.grads = false;
  const lk::Result rs = loss.compute(in, s);
  CHECK_CLOSE(rs.value(), sum, 1e-5);
  CHECK(rs.grads[0].empty());

  // grad_output scales the gradient of the reduced loss (mean: one value; none: one per row).
  const lk::Result base = loss.compute(in);
  lk::ComputeOptions scaled;
  scaled.grad_output = {2.5f};
  const lk::Result r2 = loss.compute(in, scaled);
  CHECK_CLOSE(r2.value(), base.value(), 1e-6);
  for (size_t k = 0; k < base.grads[0].size(); ++k) CHECK_CLOSE(r2.grads[0][k], 2.5 * base.grads[0][k], 1e-5);
  none.grad_output = {1.0f, 0.0f, -2.0f};
  const lk::Result rn2 = loss.compute(in, none);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t c = 0; c < C; ++c) {
      const size_t k = size_t(i * C + c);
      CHECK_CLOSE(rn2.grads[0][k], double(none.grad_output[size_t(i)]) * double(N) * base.grads[0][k], 1e-5);
    }
}

void test_params_optional_inputs_and_aux(const lk::Context& ctx) {
  lk::Loss loss = ctx.loss("cross_entropy");
  loss.set("ignore_index", -1);  // an int goes to the i64 setter
  CHECK(loss.get_i64("ignore_index") == -1);
  const std::vector<int64_t> target = {2, -1, 3};
  const std::vector<float> ones(size_t(C), 1.0f);
  const lk::Result a = loss.compute({lk::TensorView(kLogits, {N, C}), lk::TensorView(target, {N})});
  const lk::Result b =
      loss.compute({lk::TensorView(kLogits, {N, C}), lk::TensorView(target, {N}), lk::TensorView(ones, {C})});
  const lk::Result c = loss.compute(
      {lk::TensorView(kLogits, {N, C}), lk::TensorView(target, {N}), lk::absent(), lk::absent()});
  const double want = ((lse(&kLogits[0]) - kLogits[2]) + (lse(&kLogits[8]) - kLogits[11])) / 2.0;
  CHECK_CLOSE(a.value(), want, 1e-5);
  CHECK_CLOSE(b.value(), want, 1e-5);
  CHECK_CLOSE(c.value(), want, 1e-5);
  for (int64_t k = C; k < 2 * C; ++k) CHECK(a.grads[0][size_t(k)] == 0.0f);  // ignored row

  // Class weights: the mean divides by the sum of the targets' weights.
  const std::vector<float> w = {1.0f, 1.0f, 3.0f, 0.5f};
  const lk::Result d = loss.compute({lk::TensorView(kLogits, {N, C}), lk::TensorView(target, {N}), lk::TensorView(w, {C})});
  const double wd = (3.0 * (lse(&kLogits[0]) - kLogits[2]) + 0.5 * (lse(&kLogits[8]) - kLogits[11])) / 3.5;
  CHECK_CLOSE(d.value(), wd, 1e-5);

  lk::ComputeOptions opt;
  opt.aux = {"lse"};
  const lk::Result e = loss.compute({lk::TensorView(kLogits, {N, C}), lk::TensorView(kTarget, {N})}, opt);
  CHECK(e.aux.count("lse") == 1);
  CHECK(e.aux.at("lse").size() == size_t(N));
  CHECK_CLOSE(e.aux.at("lse")[0], lse(&kLogits[0]), 1e-5);
  CHECK_CLOSE(e.aux.at("lse")[2], lse(&kLogits[8]), 1e-5);

  // Setting every parameter of every loss back to its default through the typed setter.
  for (const auto& id : ctx.loss_ids()) {
    lk::Loss l = ctx.loss(id);
    for (const auto& p : l.info().params) {
      switch (p.type) {
        case lk::ParamType::F64: l.set(p.name, p.default_f64); CHECK(l.get_f64(p.name) == p.default_f64); break;
        case lk::ParamType::I64: l.set(p.name, p.default_i64); CHECK(l.get_i64(p.name) == p.default_i64); break;
        case lk::ParamType::Bool: l.set(p.name, p.default_bool); CHECK(l.get_bool(p.name) == p.default_bool); break;
        case lk::ParamType::Enum: l.set(p.name, p.default_enum); CHECK(l.get_enum(p.name) == p.default_enum); break;
      }
    }
  }
}

void test_in_place_and_raw_arrays(const lk::Context& ctx) {
  const lk::Loss loss = ctx.loss("cross_entropy");
  const lk::Result ref = loss.compute({lk::TensorView(kLogits, {N, C}), lk::TensorView(kTarget, {N})});

  // The gradient written over the logits: the same view as input 0 and as its gradient.
  std::vector<float> z = kLogits;
  lk::OutputView zv(z, {N, C});
  float out = 0;
  loss.compute_into({zv, lk::TensorView(kTarget, {N})}, lk::Reduction::Mean, lk::OutputView(&out, 1, {}), {zv});
  CHECK_CLOSE(out, ref.value(), 1e-6);
  for (size_t k = 0; k < z.size(); ++k) CHECK_CLOSE(z[k], ref.grads[0][k], 1e-6);

  // Raw arrays and std::array.
  float raw[N * C];
  std::copy(kLogits.begin(), kLogits.end(), raw);
  std::array<int64_t, 3> t = {2, 0, 3};
  std::array<float, N * C> g{};
  std::array<float, 1> o{};
  loss.compute_into({lk::TensorView(raw, size_t(N * C), {N, C}), lk::TensorView(t, {N})}, lk::Reduction::Mean,
                    lk::OutputView(o, {1}), {lk::OutputView(g, {N, C})});
  CHECK_CLOSE(o[0], ref.value(), 1e-6);
  for (size_t k = 0; k < g.size(); ++k) CHECK_CLOSE(g[k], ref.grads[0][k], 1e-6);
}

void test_ownership_and_threads() {
  std::vector<lk::Loss> losses;
  {
    lk::Context ctx(lk::Backend::Cpu);
    losses.push_back(ctx.loss("cross_entropy"));
    losses.push_back(lk::Loss(ctx, "cross_entropy"));
    losses[1].set("label_smoothing", 0.25);
  }  // the context is freed before its losses: they keep what they need alive
  lk::Loss moved = std::move(losses[0]);
  const lk::Result r = moved.compute({lk::TensorView(kLogits, {N, C}), lk::TensorView(kTarget, {N})});
  CHECK(std::isfinite(r.value()));

  // One configured loss, computed from several threads at once (compute is const).
  const lk::Loss& shared = losses[1];
  const lk::Result want = shared.compute({lk::TensorView(kLogits, {N, C}), lk::TensorView(kTarget, {N})});
  std::vector<int> ok(8, 0);
  std::vector<std::thread> th;
  for (size_t t = 0; t < ok.size(); ++t)
    th.emplace_back([&, t] {
      int good = 1;
      for (int rep = 0; rep < 200; ++rep) {
        const lk::Result got = shared.compute({lk::TensorView(kLogits, {N, C}), lk::TensorView(kTarget, {N})});
        good &= got.loss == want.loss && got.grads[0] == want.grads[0];
      }
      ok[t] = good;
    });
  for (auto& x : th) x.join();
  for (int v : ok) CHECK(v == 1);
}

}  // namespace

int main() {
  try {
    lk::Context ctx(lk::Backend::Cpu);
    test_describe(ctx);
    test_mean_and_grads(ctx, 0.0);
    test_mean_and_grads(ctx, 0.1);
    test_reductions_and_grad_output(ctx);
    test_params_optional_inputs_and_aux(ctx);
    test_in_place_and_raw_arrays(ctx);
    test_ownership_and_threads();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    return 1;
  }
  TEST_MAIN_END();
}
