// Translation unit A of the double-include check: the header twice here, and again in B,
// linked into one program. Every function in losskit.hpp must be inline (or a template) for
// this to link.
#include <losskit.hpp>
#include <losskit.hpp>

#include <cstdio>

float mean_loss_from_b(const lk::Context& ctx);

int main() {
  try {
    lk::Context ctx(lk::Backend::Cpu);
    const std::vector<float> z = {1.0f, 2.0f, 0.5f, -1.0f};
    const std::vector<int64_t> y = {1, 0};
    const float a = ctx.loss("cross_entropy").compute({lk::TensorView(z, {2, 2}), lk::TensorView(y, {2})}).value();
    const float b = mean_loss_from_b(ctx);
    if (a != b) {
      std::fprintf(stderr, "A computed %g, B computed %g\n", double(a), double(b));
      return 1;
    }
    std::printf("both translation units agree: %g\n", double(a));
    return 0;
  } catch (const lk::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
