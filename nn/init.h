#pragma once
// Parameter initialisation.
//
// veil::nn::init: torch.nn.init's initialisers (uniform_, normal_, constant_, ones_, zeros_,
// xavier_*, kaiming_*, calculate_gain) for PUBLIC tensors. Values are drawn in row-major order
// from a public PRG that is identical on every party — the party's common PRG (keyed at setup
// from every party's contribution; different in every session) or a generator the caller keyed
// with crypto::Prg::public_seed(seed, stream) for reproducible values — so every party gets the
// same float64 values, which are then encoded with the party's frac_bits (rounded to 2^-f).
// No communication. Initialise before Module::encrypt(); every party must make the same calls
// in the same order (they consume the same PRG stream).
//
// veil::nn::detail: the default initialisation and weight loading of Linear and Conv2d.

#include <cstdint>
#include <optional>
#include <utility>

#include "autograd/mpc_tensor.h"
#include "core/tensor.h"
#include "crypto/prg.h"

namespace veil::nn::init {

/// Which fan kaiming_* divides by (torch's mode='fan_in' / 'fan_out').
enum class FanMode { kFanIn, kFanOut };

/// Non-linearities known to calculate_gain (torch's nonlinearity strings).
enum class Nonlinearity {
  kLinear,
  kConv1D,
  kConv2D,
  kConv3D,
  kConvTranspose1D,
  kConvTranspose2D,
  kConvTranspose3D,
  kSigmoid,
  kTanh,
  kReLU,
  kLeakyReLU,
  kSELU,
};

/// The recommended gain of torch.nn.init.calculate_gain: 1 for linear, conv* and sigmoid; 5/3
/// for tanh; sqrt(2) for ReLU; sqrt(2 / (1 + param^2)) for leaky ReLU with negative slope
/// `param` (default 0.01); 3/4 for SELU. `param` is used by kLeakyReLU only. Throws ValueError
/// for a non-finite param.
double calculate_gain(Nonlinearity nonlinearity, double param = 0.01);

/// (fan_in, fan_out) of a weight shape as PyTorch computes them: fan_in = shape[1] * r,
/// fan_out = shape[0] * r with r = prod(shape[2:]) (the receptive field). Note: veil's Linear
/// stores its weight as [in, out] (the transpose of PyTorch's [out, in]), so for a Linear weight
/// this fan_in is out_features; pass FanMode::kFanOut to kaiming_* to scale by in_features.
/// Conv2d's [C_out, C_in/groups, kh, kw] matches PyTorch. Throws ValueError for fewer than 2
/// dimensions.
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const core::Shape& shape);

/// Fills `tensor` with U(a, b): a + (b - a) u, u a 53-bit uniform in [0, 1) from `generator`
/// (nullptr: the party's common PRG). Returns the same handle (the value is replaced in place
/// with MpcTensor::assign_, so every copy of the handle and the module registry see it;
/// requires_grad is kept). Throws ValueError "[init.uniform_] ..." for an undefined, secret or
/// non-leaf tensor, or b < a.
MpcTensor uniform_(MpcTensor tensor,
                   double a = 0.0,
                   double b = 1.0,
                   crypto::Prg* generator = nullptr);
/// Fills `tensor` with N(mean, std^2) samples (Box–Muller on two uniforms from the PRG). Throws
/// ValueError "[init.normal_] ..." as uniform_, or for std < 0.
MpcTensor normal_(MpcTensor tensor,
                  double mean = 0.0,
                  double std = 1.0,
                  crypto::Prg* generator = nullptr);
/// Fills `tensor` with `value` (encoded: round to 2^-f). Throws ValueError for an undefined,
/// secret or non-leaf tensor or a value outside the fixed-point range.
MpcTensor constant_(MpcTensor tensor, double value);
/// constant_(tensor, 1).
MpcTensor ones_(MpcTensor tensor);
/// constant_(tensor, 0).
MpcTensor zeros_(MpcTensor tensor);
/// Glorot uniform: U(-b, b) with b = gain sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio,
/// AISTATS 2010, eq. 16). Throws ValueError for fewer than 2 dimensions (see
/// calculate_fan_in_and_fan_out) and as uniform_.
MpcTensor xavier_uniform_(MpcTensor tensor, double gain = 1.0, crypto::Prg* generator = nullptr);
/// Glorot normal: N(0, std^2) with std = gain sqrt(2 / (fan_in + fan_out)).
MpcTensor xavier_normal_(MpcTensor tensor, double gain = 1.0, crypto::Prg* generator = nullptr);
/// He uniform: U(-b, b) with b = sqrt(3) gain / sqrt(fan), gain = calculate_gain(nonlinearity, a)
/// and fan = fan_in or fan_out by `mode` (He et al., ICCV 2015, §2.2). `a` is the negative slope
/// of the leaky ReLU that follows (used with kLeakyReLU only). Throws ValueError for fewer than
/// 2 dimensions, a zero fan, and as uniform_.
MpcTensor kaiming_uniform_(MpcTensor tensor,
                           double a = 0.0,
                           FanMode mode = FanMode::kFanIn,
                           Nonlinearity nonlinearity = Nonlinearity::kLeakyReLU,
                           crypto::Prg* generator = nullptr);
/// He normal: N(0, std^2) with std = gain / sqrt(fan) (same gain and fan as kaiming_uniform_).
MpcTensor kaiming_normal_(MpcTensor tensor,
                          double a = 0.0,
                          FanMode mode = FanMode::kFanIn,
                          Nonlinearity nonlinearity = Nonlinearity::kLeakyReLU,
                          crypto::Prg* generator = nullptr);

}  // namespace veil::nn::init

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
