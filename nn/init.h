#pragma once
// Shared parameter initialisation and weight loading of the layers with a weight and an optional
// bias (Linear, Conv2d).

#include <cstdint>
#include <optional>
#include <utility>

#include "autograd/mpc_tensor.h"
#include "core/tensor.h"

namespace veil::nn::detail {

/// PyTorch's default for nn.Linear / nn.Conv2d: weight [w_shape], then bias [bias_size] (none when
/// 0), every element uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)], drawn in that order from
/// PRG(public_seed(seed, stream)) when a seed is given, else from the party's common PRG. Public
/// float64 values, identical on every party (no communication).
std::pair<core::Tensor, core::Tensor> fan_in_uniform(const core::Shape& w_shape,
                                                     int64_t bias_size,
                                                     int64_t fan_in,
                                                     std::optional<uint64_t> seed,
                                                     uint64_t stream,
                                                     Party& party);

/// Replaces the public weight (and bias, when defined) with float64 values of the same shapes,
/// in place. Throws ValueError naming `op` for a wrong dtype or shape, or for parameters that are
/// already secret (load before encrypt()).
void load_weight_and_bias(const char* op,
                          MpcTensor& weight,
                          MpcTensor& bias,
                          const core::Tensor& w,
                          const core::Tensor& b);

}  // namespace veil::nn::detail
