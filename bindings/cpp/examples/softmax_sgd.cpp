// Train a softmax classifier with losskit's cross_entropy and a hand-written SGD loop.
//
// Data: three Gaussian blobs in 2-D. Model: logits = X W + b, with W [D, C] and b [C].
// Each step asks losskit for the mean loss and for d loss / d logits, written in place
// over the logits buffer (the fast path), then back-propagates through the linear layer by
// hand: dW = X^T dlogits, db = column sums of dlogits.
//
// Build: see bindings/README.md (CMake target losskit::losskit_cpp, or
//   g++ -std=c++17 softmax_sgd.cpp $(pkg-config --cflags --libs losskit)).
// Exits non-zero if training does not fit the data, so it doubles as a test.
#include <losskit.hpp>

#include <cstdio>
#include <random>
#include <vector>

int main() {
  constexpr int64_t kPerClass = 60, C = 3, D = 2, N = kPerClass * C;
  const float centres[C][D] = {{2.0f, 0.0f}, {-1.0f, 1.7f}, {-1.0f, -1.7f}};

  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 0.6f);
  std::vector<float> x(static_cast<size_t>(N * D));
  std::vector<int64_t> y(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    const int64_t c = i % C;
    y[size_t(i)] = c;
    for (int64_t d = 0; d < D; ++d) x[size_t(i * D + d)] = centres[c][d] + noise(rng);
  }

  std::vector<float> w(static_cast<size_t>(D * C), 0.0f), b(static_cast<size_t>(C), 0.0f);
  std::vector<float> logits(static_cast<size_t>(N * C));
  float loss_value = 0.0f, first_loss = 0.0f;
  const float lr = 0.5f;

  try {
    lk::Context ctx(lk::Backend::Cpu);
    lk::Loss loss = ctx.loss("cross_entropy");
    loss.set("label_smoothing", 0.05);
    lk::OutputView z(logits, {N, C});  // input and gradient: the same view = in place
    const lk::TensorView target(y, {N});
    const lk::OutputView out(&loss_value, 1, {});

    for (int step = 0; step < 100; ++step) {
      for (int64_t i = 0; i < N; ++i)
        for (int64_t c = 0; c < C; ++c) {
          float s = b[size_t(c)];
          for (int64_t d = 0; d < D; ++d) s += x[size_t(i * D + d)] * w[size_t(d * C + c)];
          logits[size_t(i * C + c)] = s;
        }
      loss.compute_into({z, target}, lk::Reduction::Mean, out, {z});  // logits now hold dL/dlogits
      if (step == 0) first_loss = loss_value;
      if (step % 20 == 0) std::printf("step %3d  loss %.4f\n", step, double(loss_value));
      for (int64_t c = 0; c < C; ++c) {
        float db = 0.0f;
        for (int64_t i = 0; i < N; ++i) db += logits[size_t(i * C + c)];
        b[size_t(c)] -= lr * db;
        for (int64_t d = 0; d < D; ++d) {
          float dw = 0.0f;
          for (int64_t i = 0; i < N; ++i) dw += x[size_t(i * D + d)] * logits[size_t(i * C + c)];
          w[size_t(d * C + c)] -= lr * dw;
        }
      }
    }
  } catch (const lk::Error& e) {
    std::fprintf(stderr, "losskit error: %s\n", e.what());
    return 1;
  }

  int64_t correct = 0;
  for (int64_t i = 0; i < N; ++i) {
    int64_t best = 0;
    float best_s = -1e30f;
    for (int64_t c = 0; c < C; ++c) {
      float s = b[size_t(c)];
      for (int64_t d = 0; d < D; ++d) s += x[size_t(i * D + d)] * w[size_t(d * C + c)];
      if (s > best_s) best_s = s, best = c;
    }
    correct += best == y[size_t(i)];
  }
  const double acc = double(correct) / double(N);
  std::printf("final loss %.4f (first %.4f), training accuracy %.3f\n", double(loss_value), double(first_loss), acc);
  if (!(loss_value < 0.5f * first_loss) || acc < 0.95) {
    std::fprintf(stderr, "training did not converge\n");
    return 1;
  }
  return 0;
}
