// A minimal test harness for the binding tests (no third-party framework needed).
#ifndef LOSSKIT_TEST_CHECK_HPP
#define LOSSKIT_TEST_CHECK_HPP

#include <losskit.hpp>

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>

namespace lktest {

inline int& failures() {
  static int n = 0;
  return n;
}

inline void fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what.c_str());
  ++failures();
}

inline bool close(double a, double b, double tol) { return std::fabs(a - b) <= tol * (1.0 + std::fabs(b)); }

// Runs `f`, expecting an lk::Error with `code` whose message contains `needle`.
inline void expect_error(const char* file, int line, const char* expr, int32_t code, const std::string& needle,
                         const std::function<void()>& f) {
  try {
    f();
    fail(file, line, std::string(expr) + ": no lk::Error thrown (wanted code " + std::to_string(code) + ")");
  } catch (const lk::Error& e) {
    if (e.code() != code)
      fail(file, line, std::string(expr) + ": code " + std::to_string(e.code()) + " (" + e.what() + "), wanted " +
                           std::to_string(code));
    else if (e.message().find(needle) == std::string::npos)
      fail(file, line, std::string(expr) + ": message '" + e.message() + "' lacks '" + needle + "'");
  }
}

}  // namespace lktest

#define CHECK(cond)                                    \
  do {                                                 \
    if (!(cond)) lktest::fail(__FILE__, __LINE__, #cond); \
  } while (0)

#define CHECK_CLOSE(a, b, tol)                                                                            \
  do {                                                                                                    \
    const double a_ = static_cast<double>(a), b_ = static_cast<double>(b);                               \
    if (!lktest::close(a_, b_, tol))                                                                      \
      lktest::fail(__FILE__, __LINE__, std::string(#a " = ") + std::to_string(a_) + ", want " + std::to_string(b_)); \
  } while (0)

#define CHECK_ERROR(code, needle, ...) \
  lktest::expect_error(__FILE__, __LINE__, #__VA_ARGS__, code, needle, [&]() { __VA_ARGS__; })

#define TEST_MAIN_END()                                                   \
  do {                                                                    \
    if (lktest::failures()) {                                             \
      std::fprintf(stderr, "%d check(s) failed\n", lktest::failures());   \
      return 1;                                                           \
    }                                                                     \
    std::printf("all checks passed\n");                                   \
    return 0;                                                             \
  } while (0)

#endif
