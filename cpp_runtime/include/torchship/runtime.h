// torchship's C++ runtime, all of it: `#include <torchship/runtime.h>` and link
// torchship::runtime (find_package(torchship)).
//
//   torchship::Model      load a model (either format), run it by name   model.h
//   torchship::Contract   its inputs, outputs and axes; random inputs    contract.h
//   check_samples         run samples.pt and compare with eager          check.h
//   bench                 latency of one shape                            bench.h
//   torchship::Error      the base of every error it throws               errors.h
#pragma once

#include "torchship/bench.h"
#include "torchship/check.h"
#include "torchship/compare.h"
#include "torchship/contract.h"
#include "torchship/errors.h"
#include "torchship/model.h"
