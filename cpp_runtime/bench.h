// Latency benchmark: first call, then warm-up, then timed iterations.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "model.h"

namespace torchship {

struct BenchResult {
  int64_t batch = 0, iterations = 0, warmup = 0;
  double first_call_us = 0, median_us = 0, p90_us = 0, p99_us = 0;
  double throughput = 0;  // samples per second over all timed iterations
};

BenchResult bench(LoadedModel& model, int64_t batch, int64_t iterations, int64_t warmup,
                  const std::map<std::string, int64_t>& ints);

}  // namespace torchship
