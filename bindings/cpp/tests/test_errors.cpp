// Every error path of the C API's bad-input table, seen through the wrapper: each bad input
// gives an lk::Error with its own status code and a message naming the input or parameter,
// and nothing is written on error. NULL arguments, which the wrapper never passes itself,
// are checked on the C functions through lk::check.
#include "check.hpp"

#include <limits>
#include <vector>

namespace {

constexpr int64_t N = 3, C = 4;
const std::vector<float> kLogits = {0.5f, -1.0f, 2.0f, 0.0f, 1.5f, 0.25f, -0.5f, 3.0f, -2.0f, 0.0f, 0.75f, 1.0f};
const std::vector<int64_t> kTarget = {2, 0, 3};

lk::TensorView logits() { return lk::TensorView(kLogits, {N, C}); }
lk::TensorView target() { return lk::TensorView(kTarget, {N}); }

void test_status_text() {
  CHECK(lk::status_str(LK_OK) == std::string(lk_status_str(0)));
  CHECK(lk::status_str(12345) == "unknown status");
  const lk::Error e(LK_ERR_INVALID_PARAM, "x: y = 2 outside [0, 1]");
  CHECK(std::string(e.what()).find("x: y = 2 outside [0, 1]") != std::string::npos);
  CHECK(std::string(e.what()).find(lk::status_str(LK_ERR_INVALID_PARAM)) != std::string::npos);
  CHECK(e.status_text() == lk::status_str(LK_ERR_INVALID_PARAM));
}

void test_context_and_loss_creation() {
  CHECK_ERROR(LK_ERR_INVALID_ARG, "42", lk::Context(static_cast<lk::Backend>(42)));
  if (lk::backend_available(lk::Backend::Wgpu)) {
    lk::Context g(lk::Backend::Wgpu);
    CHECK(g.backend() == lk::Backend::Wgpu);
  } else {
    CHECK_ERROR(LK_ERR_BACKEND_UNAVAILABLE, "", lk::Context(lk::Backend::Wgpu));
  }
  lk::Context ctx(lk::Backend::Cpu);
  CHECK_ERROR(LK_ERR_UNKNOWN_LOSS, "no_such_loss", ctx.loss("no_such_loss"));
  CHECK_ERROR(LK_ERR_UNKNOWN_LOSS, "no_such_loss", ctx.describe("no_such_loss"));

  // NULLs, straight on the C API.
  lk_loss* out = nullptr;
  CHECK_ERROR(LK_ERR_NULL_ARG, "ctx", lk::check(lk_loss_create(nullptr, "cross_entropy", &out)));
  CHECK_ERROR(LK_ERR_NULL_ARG, "id", lk::check(lk_loss_create(ctx.native(), nullptr, &out)));
  CHECK_ERROR(LK_ERR_NULL_ARG, "out_loss", lk::check(lk_loss_create(ctx.native(), "cross_entropy", nullptr)));
  CHECK(out == nullptr);  // out-params are untouched on error
  CHECK_ERROR(LK_ERR_NULL_ARG, "out_ctx", lk::check(lk_context_create(LK_BACKEND_CPU, nullptr)));
  CHECK_ERROR(LK_ERR_NULL_ARG, "out_info", lk::check(lk_loss_describe(ctx.native(), "cross_entropy", nullptr)));
  lk_input_info ii{};
  CHECK_ERROR(LK_ERR_INVALID_ARG, "", lk::check(lk_loss_describe_input(ctx.native(), "cross_entropy", 99, &ii)));
  CHECK(lk_loss_param_choice(ctx.native(), "cross_entropy", 0, 0) == nullptr);  // not an enum
  CHECK(lk_last_error_message() != nullptr);
  lk_loss_free(nullptr);
  lk_context_free(nullptr);
}

void test_params(const lk::Context& ctx) {
  lk::Loss loss = ctx.loss("cross_entropy");
  CHECK_ERROR(LK_ERR_UNKNOWN_PARAM, "no_such_param", loss.set("no_such_param", 1.0));
  CHECK_ERROR(LK_ERR_INVALID_PARAM, "label_smoothing", loss.set("label_smoothing", 1.5));
  CHECK_ERROR(LK_ERR_INVALID_PARAM, "label_smoothing", loss.set("label_smoothing", -0.1));
  CHECK_ERROR(LK_ERR_INVALID_PARAM, "label_smoothing",
              loss.set("label_smoothing", std::numeric_limits<double>::quiet_NaN()));
  CHECK(loss.get_f64("label_smoothing") == 0.0);  // never clamped, previous value kept
  CHECK_ERROR(LK_ERR_INVALID_PARAM, "label_smoothing", loss.set_i64("label_smoothing", 1));
  CHECK_ERROR(LK_ERR_INVALID_PARAM, "label_smoothing", loss.set_bool("label_smoothing", true));
  CHECK_ERROR(LK_ERR_INVALID_PARAM, "label_smoothing", loss.set_enum("label_smoothing", "x"));
  CHECK_ERROR(LK_ERR_INVALID_PARAM, "label_smoothing", (void)loss.get_i64("label_smoothing"));
  CHECK_ERROR(LK_ERR_UNKNOWN_PARAM, "nope", (void)loss.get_f64("nope"));
  CHECK_ERROR(LK_ERR_NULL_ARG, "", lk::check(lk_loss_set_f64(loss.native(), nullptr, 0.1)));
  CHECK_ERROR(LK_ERR_NULL_ARG, "", lk::check(lk_loss_set_f64(nullptr, "label_smoothing", 0.1)));
  CHECK_ERROR(LK_ERR_NULL_ARG, "", lk::check(lk_loss_get_f64(loss.native(), "label_smoothing", nullptr)));
  // Every f64 parameter with a finite bound refuses a value beyond it.
  for (const auto& p : loss.info().params) {
    if (p.type != lk::ParamType::F64) continue;
    if (std::isfinite(p.max_f64)) CHECK_ERROR(LK_ERR_INVALID_PARAM, p.name, loss.set(p.name, p.max_f64 + 1.0));
    if (std::isfinite(p.min_f64)) CHECK_ERROR(LK_ERR_INVALID_PARAM, p.name, loss.set(p.name, p.min_f64 - 1.0));
  }

  // Order-free configuration: the setters check each value alone; a combination the loss
  // refuses is reported by check() and by compute, naming both parameters.
  lk::Loss dpo = ctx.loss("dpo");
  dpo.set_enum("loss_type", "exo_pair");
  CHECK(dpo.get_enum("loss_type") == "exo_pair");
  CHECK_ERROR(LK_ERR_INVALID_PARAM, "label_smoothing", dpo.check());
  CHECK_ERROR(LK_ERR_INVALID_PARAM, "loss_type", dpo.check());
  dpo.set_f64("label_smoothing", 0.1);
  dpo.check();
  CHECK_ERROR(LK_ERR_INVALID_PARAM, "beta", (void)dpo.get_bool("beta"));
  CHECK_ERROR(LK_ERR_INVALID_PARAM, "beta", (void)dpo.get_enum("beta"));
  CHECK_ERROR(LK_ERR_UNKNOWN_PARAM, "nope", (void)dpo.get_enum("nope"));
  CHECK_ERROR(LK_ERR_NULL_ARG, "", lk::check(lk_loss_get_bool(dpo.native(), "beta", nullptr)));
  CHECK_ERROR(LK_ERR_NULL_ARG, "", lk::check(lk_loss_get_enum(dpo.native(), "loss_type", nullptr)));
  CHECK_ERROR(LK_ERR_NULL_ARG, "", lk::check(lk_loss_check(nullptr)));
}

void test_wrapper_prechecks(const lk::Loss& loss) {
  std::vector<float> eleven(11);
  CHECK_ERROR(LK_ERR_SHAPE_MISMATCH, "11 elements", lk::TensorView(eleven, {N, C}));
  CHECK_ERROR(LK_ERR_INVALID_ARG, "dimensions", lk::Shape({1, 1, 1, 1, 1, 1, 1, 1, 1}));
  CHECK_ERROR(LK_ERR_SHAPE_MISMATCH, "negative", lk::Shape({-1}));
  CHECK_ERROR(LK_ERR_INVALID_ARG, "inputs given",
              loss.compute({logits(), target(), lk::absent(), lk::absent(), lk::absent(), lk::absent(),
                            lk::absent(), lk::absent(), lk::absent()}));
  lk::ComputeOptions opt;
  opt.aux = {"no_such_output"};
  CHECK_ERROR(LK_ERR_INVALID_ARG, "no_such_output", loss.compute({logits(), target()}, opt));
  opt.aux.clear();
  opt.grad_output = {1.0f, 2.0f};  // two values for a mean
  CHECK_ERROR(LK_ERR_SHAPE_MISMATCH, "2 elements", loss.compute({logits(), target()}, opt));
}

void test_compute_errors(const lk::Loss& loss) {
  float out = -7.0f;
  std::vector<float> grad(size_t(N * C), -7.0f);
  auto run = [&](const std::vector<lk::TensorView>& in, lk::Reduction red = lk::Reduction::Mean) {
    loss.compute_into(in, red, lk::OutputView(&out, 1, {}), {lk::OutputView(grad, {N, C})});
  };

  // NULL: a required input absent, and NULL pointers in the C call.
  CHECK_ERROR(LK_ERR_NULL_ARG, "target", run({logits(), lk::absent()}));
  CHECK_ERROR(LK_ERR_NULL_ARG, "target", run({logits()}));
  const lk_tensor in[2] = {logits().c(), target().c()};
  lk_tensor o = lk::OutputView(&out, 1, {}).c();
  CHECK_ERROR(LK_ERR_NULL_ARG, "loss", lk::check(lk_loss_compute(nullptr, in, 2, LK_REDUCTION_MEAN, nullptr, &o, nullptr, 0, nullptr, 0)));
  CHECK_ERROR(LK_ERR_NULL_ARG, "loss_out", lk::check(lk_loss_compute(loss.native(), in, 2, LK_REDUCTION_MEAN, nullptr, nullptr, nullptr, 0, nullptr, 0)));
  CHECK_ERROR(LK_ERR_NULL_ARG, "inputs", lk::check(lk_loss_compute(loss.native(), nullptr, 2, LK_REDUCTION_MEAN, nullptr, &o, nullptr, 0, nullptr, 0)));
  CHECK_ERROR(LK_ERR_NULL_ARG, "grads", lk::check(lk_loss_compute(loss.native(), in, 2, LK_REDUCTION_MEAN, nullptr, &o, nullptr, 1, nullptr, 0)));
  CHECK_ERROR(LK_ERR_NULL_ARG, "aux", lk::check(lk_loss_compute(loss.native(), in, 2, LK_REDUCTION_MEAN, nullptr, &o, nullptr, 0, nullptr, 1)));
  lk_tensor noshape = logits().c();
  noshape.shape = nullptr;
  const lk_tensor in_noshape[2] = {noshape, target().c()};
  CHECK_ERROR(LK_ERR_NULL_ARG, "shape", lk::check(lk_loss_compute(loss.native(), in_noshape, 2, LK_REDUCTION_MEAN, nullptr, &o, nullptr, 0, nullptr, 0)));
  lk_tensor nodata = o;
  nodata.data = nullptr;
  CHECK_ERROR(LK_ERR_NULL_ARG, "loss_out", lk::check(lk_loss_compute(loss.native(), in, 2, LK_REDUCTION_MEAN, nullptr, &nodata, nullptr, 0, nullptr, 0)));

  // Rank and shape.
  CHECK_ERROR(LK_ERR_SHAPE_MISMATCH, "logits", run({lk::TensorView(kLogits, {N * C}), target()}));
  CHECK_ERROR(LK_ERR_SHAPE_MISMATCH, "target",
              run({logits(), lk::TensorView(std::vector<int64_t>{2, 0}, {2})}));
  CHECK_ERROR(LK_ERR_SHAPE_MISMATCH, "class_weights",
              run({logits(), target(), lk::TensorView(std::vector<float>(5, 1.0f), {5})}));
  CHECK_ERROR(LK_ERR_SHAPE_MISMATCH, "sample_weight",
              run({logits(), target(), lk::absent(), lk::TensorView(std::vector<float>(2, 1.0f), {2})}));
  std::vector<float> out2(2);
  CHECK_ERROR(LK_ERR_SHAPE_MISMATCH, "loss output",
              loss.compute_into({logits(), target()}, lk::Reduction::Mean, lk::OutputView(out2, {2})));
  CHECK_ERROR(LK_ERR_SHAPE_MISMATCH, "loss output",
              loss.compute_into({logits(), target()}, lk::Reduction::None, lk::OutputView(&out, 1, {1})));
  std::vector<float> gsmall(static_cast<size_t>(C));
  CHECK_ERROR(LK_ERR_SHAPE_MISMATCH, "gradient",
              loss.compute_into({logits(), target()}, lk::Reduction::Mean, lk::OutputView(&out, 1, {}),
                                {lk::OutputView(gsmall, {1, C})}));
  std::vector<float> go3(3, 1.0f);
  CHECK_ERROR(LK_ERR_SHAPE_MISMATCH, "grad_output",
              loss.compute_into({logits(), target()}, lk::Reduction::Mean, lk::OutputView(&out, 1, {}), {},
                                lk::TensorView(go3, {3})));

  // Dtype.
  const std::vector<int64_t> ilogits(size_t(N * C), 1);
  CHECK_ERROR(LK_ERR_DTYPE, "logits", run({lk::TensorView(ilogits, {N, C}), target()}));
  CHECK_ERROR(LK_ERR_DTYPE, "target", run({logits(), lk::TensorView(std::vector<float>{2, 0, 3}, {N})}));
  lk_tensor f64 = logits().c();
  f64.dtype.bits = 64;
  CHECK_ERROR(LK_ERR_DTYPE, "inputs[0]", run({lk::TensorView::from_c(f64), target()}));
  lk_tensor lanes = logits().c();
  lanes.dtype.lanes = 2;
  CHECK_ERROR(LK_ERR_DTYPE, "inputs[0]", run({lk::TensorView::from_c(lanes), target()}));

  // Targets and input values.
  CHECK_ERROR(LK_ERR_INVALID_TARGET, "target[1] = 4",
              run({logits(), lk::TensorView(std::vector<int64_t>{2, 4, 3}, {N})}));
  CHECK_ERROR(LK_ERR_INVALID_TARGET, "target[2] = -5",
              run({logits(), lk::TensorView(std::vector<int64_t>{2, 0, -5}, {N})}));
  CHECK_ERROR(LK_ERR_INVALID_INPUT, "class_weights",
              run({logits(), target(), lk::TensorView(std::vector<float>{1, -1, 1, 1}, {C})}));

  // Invalid arguments.
  CHECK_ERROR(LK_ERR_INVALID_ARG, "reduction", run({logits(), target()}, static_cast<lk::Reduction>(7)));
  std::vector<float> buf = kLogits;
  CHECK_ERROR(LK_ERR_INVALID_ARG, "overlaps",
              loss.compute_into({lk::TensorView(buf, {N, C}), target()}, lk::Reduction::Mean,
                                lk::OutputView(buf.data() + 4, 1, {})));
  std::vector<float> gt(static_cast<size_t>(N));
  CHECK_ERROR(LK_ERR_INVALID_ARG, "not differentiable",
              loss.compute_into({logits(), target()}, lk::Reduction::Mean, lk::OutputView(&out, 1, {}),
                                {lk::OutputView(), lk::OutputView(gt, {N})}));
  const lk_tensor in5[5] = {logits().c(), target().c(), lk::absent().c(), lk::absent().c(), lk::absent().c()};
  CHECK_ERROR(LK_ERR_INVALID_ARG, "5 inputs",
              lk::check(lk_loss_compute(loss.native(), in5, 5, LK_REDUCTION_MEAN, nullptr, &o, nullptr, 0, nullptr, 0)));
  std::vector<float> lse(static_cast<size_t>(N));
  CHECK_ERROR(LK_ERR_INVALID_ARG, "no_such_output",
              loss.compute_into({logits(), target()}, lk::Reduction::Mean, lk::OutputView(&out, 1, {}), {},
                                lk::TensorView(), {lk::AuxOutput{"no_such_output", lk::OutputView(lse, {N})}}));

  // Unsupported layouts and devices.
  lk_tensor dev = logits().c();
  dev.device.device_type = 2;  // kDLCUDA
  CHECK_ERROR(LK_ERR_UNSUPPORTED, "device", run({lk::TensorView::from_c(dev), target()}));
  const int64_t strides[2] = {C, 2};
  lk_tensor strided = lk::TensorView(kLogits.data(), size_t(N * C / 2), {N, C / 2}).c();
  strided.strides = strides;
  CHECK_ERROR(LK_ERR_UNSUPPORTED, "strides",
              loss.compute_into({lk::TensorView::from_c(strided), target()}, lk::Reduction::Mean,
                                lk::OutputView(&out, 1, {})));

  // Nothing was written by any failing call.
  CHECK(out == -7.0f);
  for (float g : grad) CHECK(g == -7.0f);

  // The message belongs to the failing call, even after later successful calls.
  try {
    run({logits(), lk::TensorView(std::vector<int64_t>{9, 0, 3}, {N})});
    CHECK(false);
  } catch (const lk::Error& e) {
    const lk::Result ok = loss.compute({logits(), target()});
    CHECK(std::isfinite(ok.value()));
    CHECK(e.message().find("target[0] = 9") != std::string::npos);
  }
}

}  // namespace

int main() {
  try {
    test_status_text();
    test_context_and_loss_creation();
    lk::Context ctx(lk::Backend::Cpu);
    test_params(ctx);
    const lk::Loss loss = ctx.loss("cross_entropy");
    test_wrapper_prechecks(loss);
    test_compute_errors(loss);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    return 1;
  }
  TEST_MAIN_END();
}
