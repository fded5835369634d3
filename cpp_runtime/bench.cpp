#include "torchship/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <vector>

namespace torchship {
namespace {

// Nearest-rank percentile of sorted samples.
double percentile(const std::vector<double>& sorted, double q) {
  const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double time_us(const Model& model, const Feed& feed) {
  const auto start = std::chrono::steady_clock::now();
  model.run(feed);  // includes the copy back to the CPU, which syncs a GPU
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

BenchResult bench(const Model& model, const AxisSizes& sizes, int64_t iterations, int64_t warmup,
                  const std::map<std::string, int64_t>& scalars) {
  const auto feed = model.contract().random_inputs(sizes, scalars);

  BenchResult result;
  result.axes = feed.axes;
  result.rows = model.rows(feed);
  result.iterations = iterations;
  result.warmup = warmup;
  result.first_call_us = time_us(model, feed);
  for (int64_t i = 0; i < warmup; ++i) time_us(model, feed);
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(iterations));
  for (int64_t i = 0; i < iterations; ++i) samples.push_back(time_us(model, feed));
  std::sort(samples.begin(), samples.end());
  result.median_us = percentile(samples, 0.5);
  result.p90_us = percentile(samples, 0.9);
  result.p99_us = percentile(samples, 0.99);
  const double total_us = std::accumulate(samples.begin(), samples.end(), 0.0);
  result.mean_us = total_us / static_cast<double>(iterations);
  result.throughput = static_cast<double>(result.rows * iterations) / (total_us * 1e-6);
  return result;
}

}  // namespace torchship
