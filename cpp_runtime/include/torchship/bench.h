// Latency benchmark: first call, then warm-up, then timed iterations.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "torchship/model.h"

namespace torchship {

struct BenchResult {
  AxisSizes axes;     // the size of every dynamic axis the inputs have
  int64_t rows = 1;   // the size of the leading axis (the batch): samples per call
  int64_t iterations = 0, warmup = 0;
  double first_call_us = 0, mean_us = 0, median_us = 0, p90_us = 0, p99_us = 0;
  double throughput = 0;  // samples per second over all timed iterations
};

// Times Model::run on random inputs (Contract::random_inputs with `sizes` and `scalars`).
BenchResult bench(const Model& model, const AxisSizes& sizes, int64_t iterations, int64_t warmup,
                  const std::map<std::string, int64_t>& scalars);

}  // namespace torchship
