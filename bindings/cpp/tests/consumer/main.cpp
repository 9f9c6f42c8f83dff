// The smallest complete use of the installed package: a loss, its gradient, an error.
#include <losskit.hpp>
#include <losskit_plugin.h>  // installed beside losskit.h, for plugin authors

static_assert(LK_PLUGIN_ABI_VERSION == 1, "the installed plugin ABI header is v1");

#include <cstdio>

int main() {
  lk::Context ctx;
  lk::Loss loss = ctx.loss("cross_entropy");
  const std::vector<float> logits = {2.0f, 0.5f, -1.0f, 0.1f, 0.2f, 3.0f};  // [N = 2, C = 3]
  const std::vector<int64_t> target = {0, 2};
  const lk::Result r = loss.compute({lk::TensorView(logits, {2, 3}), lk::TensorView(target, {2})});
  std::printf("loss %.5f, d/dlogits[0] %.5f\n", double(r.value()), double(r.grads[0][0]));
  try {
    loss.set("label_smoothing", 2.0);
    return 1;
  } catch (const lk::Error& e) {
    std::printf("refused as expected: %s\n", e.what());
  }
  return r.value() > 0.0f && r.grads[0][0] < 0.0f ? 0 : 1;
}
