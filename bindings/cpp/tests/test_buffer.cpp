// Device buffers (lk::Buffer) through the wrapper. Without a GPU adapter the GPU part is
// skipped (exit code 77, which CTest reports as skipped) unless LOSSKIT_REQUIRE_GPU=1, when
// a missing adapter is a failure. What runs everywhere: a CPU context refuses buffers.
// On a GPU: write/read round trips, offsets, size checks, and cross_entropy computed with
// logits, targets and the gradient in device buffers, against the same call on host memory
// of a CPU context.
#include "check.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t N = 5, C = 7;

bool gpu_required() {
  const char* v = std::getenv("LOSSKIT_REQUIRE_GPU");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

void test_cpu_context_refuses() {
  lk::Context cpu(lk::Backend::Cpu);
  CHECK_ERROR(LK_ERR_UNSUPPORTED, "", lk::Buffer(cpu, 64));
  lk_buffer* out = nullptr;
  CHECK_ERROR(LK_ERR_NULL_ARG, "", lk::check(lk_buffer_create(nullptr, 64, &out)));
  CHECK(out == nullptr);
  CHECK(lk_buffer_size(nullptr) == 0);
  lk_buffer_free(nullptr);
}

void test_round_trip(const lk::Context& gpu) {
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -0.5f};
  lk::Buffer b = lk::Buffer::from(gpu, a);
  CHECK(b.size() == a.size() * sizeof(float));
  CHECK(b.read<float>(a.size()) == a);
  // Offsets in bytes.
  b.write(std::vector<float>{9.0f, 8.0f}, 8);
  const std::vector<float> back = b.read<float>(3, 4);
  CHECK(back == (std::vector<float>{-2.0f, 9.0f, 8.0f}));
  const std::vector<int64_t> ids = {3, -1, 1LL << 40};
  lk::Buffer bi = lk::Buffer::from(gpu, ids);
  CHECK(bi.read<int64_t>(3) == ids);
  // Misaligned or out-of-range copies and views that do not fit are refused.
  float x[2] = {0, 0};
  CHECK_ERROR(LK_ERR_INVALID_ARG, "", b.write(x, sizeof x, 2));
  CHECK_ERROR(LK_ERR_INVALID_ARG, "", b.read(x, sizeof x, b.size()));
  CHECK_ERROR(LK_ERR_BUFFER_TOO_SMALL, "", b.view(lk::DType::F32, {7}));
  CHECK_ERROR(LK_ERR_BUFFER_TOO_SMALL, "", b.out_view({2, 2}, 12));
  // Moving keeps a single owner.
  lk::Buffer moved = std::move(b);
  CHECK(moved.size() == a.size() * sizeof(float));
}

void test_compute_on_device(const lk::Context& gpu) {
  std::vector<float> logits(static_cast<std::size_t>(N * C));
  for (std::size_t k = 0; k < logits.size(); ++k) logits[k] = float(int(k * 37 % 23) - 11) / 4.0f;
  const std::vector<int64_t> target = {0, 6, 3, 2, 5};

  // Reference: host memory on a CPU context.
  lk::Context cpu(lk::Backend::Cpu);
  lk::Loss ref_loss = cpu.loss("cross_entropy");
  ref_loss.set("label_smoothing", 0.1);
  const lk::Result ref = ref_loss.compute({lk::TensorView(logits, {N, C}), lk::TensorView(target, {N})});

  lk::Loss loss = gpu.loss("cross_entropy");
  loss.set("label_smoothing", 0.1);
  // Logits after 16 bytes of padding, to exercise byte_offset.
  lk::Buffer x(gpu, 16 + logits.size() * sizeof(float));
  x.write(logits, 16);
  lk::Buffer t = lk::Buffer::from(gpu, target);
  lk::Buffer g(gpu, logits.size() * sizeof(float));
  std::vector<float> value(1, -1.0f);
  loss.compute_into({x.view(lk::DType::F32, {N, C}, 16), t.view(lk::DType::I64, {N})}, lk::Reduction::Mean,
                    lk::OutputView(value, {}), {g.out_view({N, C})});
  CHECK_CLOSE(value[0], ref.value(), 1e-5);
  const std::vector<float> grad = g.read<float>(logits.size());
  for (std::size_t k = 0; k < grad.size(); ++k) CHECK_CLOSE(grad[k], ref.grads[0][k], 1e-5);
  // The inputs are left as they were.
  CHECK(x.read<float>(logits.size(), 16) == logits);

  // Per-sample losses into host memory, from the same device inputs.
  std::vector<float> rows(static_cast<std::size_t>(N), 0.0f);
  loss.compute_into({x.view(lk::DType::F32, {N, C}, 16), t.view(lk::DType::I64, {N})}, lk::Reduction::None,
                    lk::OutputView(rows, {N}));
  double mean = 0;
  for (float v : rows) mean += double(v) / double(N);
  CHECK_CLOSE(mean, ref.value(), 1e-5);

  // A bad target in device memory is still reported as one.
  lk::Buffer bad = lk::Buffer::from(gpu, std::vector<int64_t>{0, 6, 3, 99, 5});
  CHECK_ERROR(LK_ERR_INVALID_TARGET, "", loss.compute_into({x.view(lk::DType::F32, {N, C}, 16),
                                                             bad.view(lk::DType::I64, {N})},
                                                            lk::Reduction::Mean, lk::OutputView(value, {})));
}

}  // namespace

int main() {
  test_cpu_context_refuses();
  if (!lk::backend_available(lk::Backend::Wgpu)) {
    if (gpu_required()) {
      std::fprintf(stderr, "FAILED: LOSSKIT_REQUIRE_GPU=1 but lk_backend_available(LK_BACKEND_WGPU) is false\n");
      return 1;
    }
    std::printf("SKIPPED: no GPU adapter (lk_backend_available(LK_BACKEND_WGPU) is false); set LOSSKIT_REQUIRE_GPU=1 to fail instead\n");
    if (lktest::failures()) TEST_MAIN_END();
    return 77;
  }
  lk::Context gpu(lk::Backend::Wgpu);
  test_round_trip(gpu);
  test_compute_on_device(gpu);
  TEST_MAIN_END();
}
