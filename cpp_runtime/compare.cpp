#include "torchship/compare.h"

#include <limits>

#include "messages.h"

namespace torchship {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Comparison refused(Comparison result, const std::string& key, const std::string& got, const std::string& expected) {
  result.message = format_message(key, {{"name", result.name}, {"got", got}, {"expected", expected}});
  result.max_abs_error = result.max_rel_error = result.needed_atol = kNaN;
  return result;
}

}  // namespace

Comparison compare_output(const std::string& name, const at::Tensor& actual, const at::Tensor& expected,
                          const Tolerance& tolerance) {
  Comparison result;
  result.name = name;
  result.tolerance = tolerance;
  if (actual.sizes() != expected.sizes()) {
    return refused(result, "compare_shape", shape_text(actual.sizes()), shape_text(expected.sizes()));
  }
  if (actual.scalar_type() != expected.scalar_type()) {
    return refused(result, "compare_dtype", dtype_name(actual.scalar_type()), dtype_name(expected.scalar_type()));
  }
  if (actual.numel() == 0) {
    result.passed = true;
    return result;
  }
  const auto a = actual.to(at::kDouble), e = expected.to(at::kDouble);
  // Equal specials (both NaN, or the same infinity) are no error; a NaN against
  // anything else, or different infinities, an infinite one.
  const auto same_special = (a.isnan() & e.isnan()) | (a.isinf() & e.isinf() & a.eq(e));
  const auto diff = (a - e).abs().nan_to_num(kInf, kInf, kInf);
  const auto abs_error = diff.masked_fill(same_special, 0.0);
  const auto scale = e.abs();
  // abs / |e|, with 0 where abs is 0 and inf where abs is inf or |e| is 0 (or NaN).
  const auto rel_error = (abs_error / scale).nan_to_num(kInf, kInf, kInf).masked_fill(abs_error.eq(0.0), 0.0)
                             .masked_fill(abs_error.isinf(), kInf);
  const auto needed = (abs_error - tolerance.rtol * scale).clamp_min(0.0).nan_to_num(kInf, kInf, kInf)
                          .masked_fill(abs_error.eq(0.0), 0.0).masked_fill(abs_error.isinf(), kInf);
  result.max_abs_error = abs_error.max().item<double>();
  result.max_rel_error = rel_error.max().item<double>();
  result.needed_atol = needed.max().item<double>();
  result.passed = result.needed_atol <= tolerance.atol;
  return result;
}

}  // namespace torchship
