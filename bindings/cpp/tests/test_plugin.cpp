// The plugin host through the wrapper: the C example plugin (plugins/example_c/asl.c, built
// by CMake as a MODULE next to this test; its path comes in LK_ASL_PLUGIN) is loaded into
// a context, described, and its loss computed through the generic Loss::compute, checked
// against a float64 reference of the asymmetric loss written here. A missing file and a
// wrong entry symbol give their own lk::Error codes naming the file.
#include "check.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#ifndef LK_ASL_PLUGIN
#error "LK_ASL_PLUGIN (path of the built asl plugin) must be defined"
#endif

namespace {

constexpr int64_t N = 3, C = 4;
const std::vector<float> kLogits = {0.5f, -1.0f, 2.0f, 0.0f, 1.5f, 0.25f, -0.5f, 3.0f, -2.0f, 0.1f, 0.75f, 1.0f};
const std::vector<float> kTargets = {1, 0, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0};

double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

// The ASL term of one element (Ridnik et al. 2021): positives (1-p)^gp * -log p, negatives
// p_m^gn * -log(1 - p_m) with p_m = max(p - clip, 0).
double asl_elem(double x, double y, double gp, double gn, double clip) {
  const double p = 1.0 / (1.0 + std::exp(-x));
  const double pos = std::pow(1.0 - p, gp) * softplus(-x);
  const double pm = std::max(p - clip, 0.0);
  const double neg = pm > 0.0 ? std::pow(pm, gn) * -std::log(1.0 - pm) : 0.0;
  return y * pos + (1.0 - y) * neg;
}

std::vector<double> asl_rows(const std::vector<float>& x, double gp, double gn, double clip) {
  std::vector<double> rows(N, 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t c = 0; c < C; ++c) {
      const auto k = static_cast<std::size_t>(i * C + c);
      rows[static_cast<std::size_t>(i)] += asl_elem(x[k], kTargets[k], gp, gn, clip);
    }
  return rows;
}

void test_load_and_describe(const lk::Context& ctx) {
  CHECK(ctx.plugin_count() == 0);
  const auto before = ctx.loss_ids();
  CHECK(std::find(before.begin(), before.end(), "asymmetric_loss") == before.end());
  ctx.load_plugin(LK_ASL_PLUGIN);
  CHECK(ctx.plugin_count() == 1);
  const lk::PluginInfo pi = ctx.plugin(0);
  CHECK(pi.name == "asl");
  CHECK(!pi.version.empty());
  CHECK(pi.path == LK_ASL_PLUGIN);
  CHECK(pi.losses == std::vector<std::string>{"asymmetric_loss"});
  CHECK_ERROR(LK_ERR_INVALID_ARG, "", ctx.plugin(1));
  const auto after = ctx.loss_ids();
  CHECK(std::find(after.begin(), after.end(), "asymmetric_loss") != after.end());
  const lk::LossInfo li = ctx.describe("asymmetric_loss");
  CHECK(li.inputs.size() == 2);
  CHECK(li.inputs[0].differentiable && !li.inputs[1].differentiable);
  CHECK(li.param("gamma_neg") != nullptr);
  // Loading it again clashes with its own ids; nothing more is registered.
  CHECK_ERROR(LK_ERR_PLUGIN_DUPLICATE_ID, "asymmetric_loss", ctx.load_plugin(LK_ASL_PLUGIN));
  CHECK(ctx.plugin_count() == 1);
}

void test_compute(const lk::Context& ctx) {
  lk::Loss loss = ctx.loss("asymmetric_loss");
  const double gp = loss.get_f64("gamma_pos"), gn = loss.get_f64("gamma_neg"), clip = loss.get_f64("clip");
  const std::vector<lk::TensorView> in = {lk::TensorView(kLogits, {N, C}), lk::TensorView(kTargets, {N, C})};

  // Per-sample values.
  lk::ComputeOptions none;
  none.reduction = lk::Reduction::None;
  none.grads = false;
  const lk::Result rn = loss.compute(in, none);
  const std::vector<double> ref = asl_rows(kLogits, gp, gn, clip);
  CHECK(rn.loss.size() == std::size_t(N));
  for (std::size_t i = 0; i < ref.size(); ++i) CHECK_CLOSE(rn.loss[i], ref[i], 1e-5);

  // Mean, with the gradient against a central difference of the float64 reference.
  const lk::Result r = loss.compute(in);
  double mean = 0;
  for (double v : ref) mean += v / double(N);
  CHECK_CLOSE(r.value(), mean, 1e-5);
  CHECK(r.grads.size() == 2 && r.grads[0].size() == kLogits.size() && r.grads[1].empty());
  for (std::size_t k = 0; k < kLogits.size(); ++k) {
    const double h = 1e-4;
    // The mean of the reference with element k moved to xv (only row k / C changes).
    auto row_at = [&](double xv) {
      const std::size_t i = k / std::size_t(C);
      double s = 0;
      for (std::size_t c = 0; c < std::size_t(C); ++c) {
        const std::size_t j = i * std::size_t(C) + c;
        s += asl_elem(j == k ? xv : double(kLogits[j]), kTargets[j], gp, gn, clip);
      }
      return s / double(N);
    };
    const double fd = (row_at(double(kLogits[k]) + h) - row_at(double(kLogits[k]) - h)) / (2 * h);
    CHECK_CLOSE(r.grads[0][k], fd, 1e-4);
  }

  // A parameter set through the wrapper changes the value the plugin computes.
  loss.set("gamma_neg", 1.0).set("clip", 0.0);
  const lk::Result r2 = loss.compute(in, none);
  const std::vector<double> ref2 = asl_rows(kLogits, gp, 1.0, 0.0);
  for (std::size_t i = 0; i < ref2.size(); ++i) CHECK_CLOSE(r2.loss[i], ref2[i], 1e-5);
  CHECK_ERROR(LK_ERR_INVALID_PARAM, "clip", loss.set("clip", 1.5));
}

void test_errors() {
  lk::Context ctx(lk::Backend::Cpu);
  const std::string missing = "no_such_dir/libmissing_plugin.so";
  CHECK_ERROR(LK_ERR_PLUGIN_LOAD, "libmissing_plugin.so", ctx.load_plugin(missing));
  CHECK_ERROR(LK_ERR_PLUGIN_SYMBOL, "no_such_entry", ctx.load_plugin(LK_ASL_PLUGIN, "no_such_entry"));
  CHECK(ctx.plugin_count() == 0);
  CHECK_ERROR(LK_ERR_UNKNOWN_LOSS, "asymmetric_loss", ctx.loss("asymmetric_loss"));
  // The file-name entry point, chosen explicitly.
  ctx.load_plugin(LK_ASL_PLUGIN, "lk_plugin_asl_init");
  CHECK(ctx.plugin_count() == 1 && ctx.plugin(0).entry == "lk_plugin_asl_init");
  CHECK_ERROR(LK_ERR_NULL_ARG, "", lk::check(lk_plugin_load(ctx.native(), nullptr, nullptr)));
}

}  // namespace

int main() {
  lk::Context ctx(lk::Backend::Cpu);
  test_load_and_describe(ctx);
  test_compute(ctx);
  test_errors();
  TEST_MAIN_END();
}
