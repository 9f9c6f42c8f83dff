// Translation unit B of the double-include check (see double_include_a.cpp).
#include <losskit.hpp>

float mean_loss_from_b(const lk::Context& ctx) {
  lk::Loss loss(ctx, "cross_entropy");
  const std::vector<float> z = {1.0f, 2.0f, 0.5f, -1.0f};
  const std::vector<int64_t> y = {1, 0};
  return loss.compute({lk::TensorView(z, {2, 2}), lk::TensorView(y, {2})}).value();
}
