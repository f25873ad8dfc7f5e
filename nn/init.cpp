#include "nn/init.h"

#include <cmath>
#include <string>
#include <utility>

#include "core/error.h"
#include "crypto/party.h"
#include "crypto/prg.h"

namespace veil::nn::detail {

std::pair<core::Tensor, core::Tensor> fan_in_uniform(const core::Shape& w_shape,
                                                     int64_t bias_size,
                                                     int64_t fan_in,
                                                     std::optional<uint64_t> seed,
                                                     uint64_t stream,
                                                     Party& party) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  core::Tensor w = core::Tensor::empty(w_shape, core::DType::kFloat64);
  core::Tensor b = core::Tensor::empty({bias_size}, core::DType::kFloat64);
  auto fill = [&](crypto::Prg& prg) {
    for (core::Tensor* t : {&w, &b}) {
      double* p = t->data<double>();
      for (int64_t i = 0; i < t->numel(); ++i) {
        p[i] = (2.0 * prg.uniform_double() - 1.0) * bound;
      }
    }
  };
  if (seed) {
    crypto::Prg prg(crypto::Prg::public_seed(*seed, stream));
    fill(prg);
  } else {
    fill(party.common_prg());
  }
  return {w, bias_size > 0 ? b : core::Tensor()};
}

void load_weight_and_bias(const char* op,
                          MpcTensor& weight,
                          MpcTensor& bias,
                          const core::Tensor& w,
                          const core::Tensor& b) {
  auto describe = [](const core::Tensor& t) {
    return t.defined() ? t.str() : std::string("an undefined tensor");
  };
  VEIL_CHECK(w.defined() && w.dtype() == core::DType::kFloat64 && w.shape() == weight.shape(),
             "[{}] expected a float64 weight {}, got {}", op, core::shape_str(weight.shape()),
             describe(w));
  VEIL_CHECK(weight.is_public() && (!bias.defined() || bias.is_public()),
             "[{}] the parameters are already secret; load weights before encrypt()", op);
  if (bias.defined()) {
    VEIL_CHECK(b.defined() && b.dtype() == core::DType::kFloat64 && b.shape() == bias.shape(),
               "[{}] expected a float64 bias {}, got {}", op, core::shape_str(bias.shape()),
               describe(b));
    bias.assign_(MpcTensor::from_public(b, bias.party()));
  }
  weight.assign_(MpcTensor::from_public(w, weight.party()));
}

}  // namespace veil::nn::detail

namespace veil::nn::init {

namespace {

// Checks that `tensor` can be (re)initialised: defined, public, a leaf.
void check_target(const MpcTensor& tensor, const char* op) {
  VEIL_CHECK(tensor.defined(), "[{}] expected a defined tensor, got an undefined MpcTensor", op);
  VEIL_CHECK(tensor.is_public(),
             "[{}] expected a public tensor, got a secret one {}; initialise before encrypt()", op,
             tensor.str());
  VEIL_CHECK(tensor.is_leaf(), "[{}] expected a leaf tensor, got the output of an op", op);
}

// Draws tensor.numel() values with `draw(prg)` in row-major order and assigns them (encoded).
template <class Draw>
MpcTensor fill(MpcTensor tensor, crypto::Prg* generator, Draw draw) {
  core::Tensor v = core::Tensor::empty(tensor.shape(), core::DType::kFloat64);
  double* pv = v.data<double>();
  crypto::Prg& prg = generator != nullptr ? *generator : tensor.party().common_prg();
  for (int64_t i = 0; i < v.numel(); ++i) {
    pv[i] = draw(prg);
  }
  tensor.assign_(MpcTensor::from_public(v, tensor.party()));
  return tensor;
}

int64_t fan_of(const core::Shape& shape, FanMode mode, const char* op) {
  VEIL_CHECK(shape.size() >= 2,
             "[{}] fan in and fan out need a tensor with at least 2 dimensions, got {}", op,
             core::shape_str(shape));
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(shape);
  const int64_t fan = mode == FanMode::kFanIn ? fan_in : fan_out;
  VEIL_CHECK(fan > 0, "[{}] expected a non-zero fan, got shape {}", op, core::shape_str(shape));
  return fan;
}

}  // namespace

double calculate_gain(Nonlinearity nonlinearity, double param) {
  switch (nonlinearity) {
    case Nonlinearity::kLinear:
    case Nonlinearity::kConv1D:
    case Nonlinearity::kConv2D:
    case Nonlinearity::kConv3D:
    case Nonlinearity::kConvTranspose1D:
    case Nonlinearity::kConvTranspose2D:
    case Nonlinearity::kConvTranspose3D:
    case Nonlinearity::kSigmoid:
      return 1.0;
    case Nonlinearity::kTanh:
      return 5.0 / 3.0;
    case Nonlinearity::kReLU:
      return std::sqrt(2.0);
    case Nonlinearity::kLeakyReLU:
      VEIL_CHECK(std::isfinite(param),
                 "[init.calculate_gain] expected a finite negative slope, got {}", param);
      return std::sqrt(2.0 / (1.0 + param * param));
    case Nonlinearity::kSELU:
      return 3.0 / 4.0;
  }
  VEIL_CHECK(false, "[init.calculate_gain] unknown nonlinearity {}",
             static_cast<int>(nonlinearity));
  return 1.0;
}

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const core::Shape& shape) {
  VEIL_CHECK(shape.size() >= 2,
             "[init.calculate_fan_in_and_fan_out] fan in and fan out need a tensor with at least "
             "2 dimensions, got {}",
             core::shape_str(shape));
  int64_t receptive = 1;
  for (std::size_t i = 2; i < shape.size(); ++i) {
    receptive *= shape[i];
  }
  return {shape[1] * receptive, shape[0] * receptive};
}

MpcTensor uniform_(MpcTensor tensor, double a, double b, crypto::Prg* generator) {
  check_target(tensor, "init.uniform_");
  VEIL_CHECK(std::isfinite(a) && std::isfinite(b) && a <= b,
             "[init.uniform_] expected finite bounds a <= b, got a = {}, b = {}", a, b);
  return fill(std::move(tensor), generator,
              [a, b](crypto::Prg& prg) { return a + (b - a) * prg.uniform_double(); });
}

MpcTensor normal_(MpcTensor tensor, double mean, double std, crypto::Prg* generator) {
  check_target(tensor, "init.normal_");
  VEIL_CHECK(std::isfinite(mean) && std::isfinite(std) && std >= 0,
             "[init.normal_] expected a finite mean and std >= 0, got mean = {}, std = {}", mean,
             std);
  return fill(std::move(tensor), generator,
              [mean, std](crypto::Prg& prg) { return mean + std * prg.normal(); });
}

MpcTensor constant_(MpcTensor tensor, double value) {
  check_target(tensor, "init.constant_");
  tensor.assign_(
      MpcTensor::from_public(core::Tensor::full<double>(tensor.shape(), value), tensor.party()));
  return tensor;
}

MpcTensor ones_(MpcTensor tensor) {
  return constant_(std::move(tensor), 1.0);
}

MpcTensor zeros_(MpcTensor tensor) {
  return constant_(std::move(tensor), 0.0);
}

MpcTensor xavier_uniform_(MpcTensor tensor, double gain, crypto::Prg* generator) {
  check_target(tensor, "init.xavier_uniform_");
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(tensor.shape());
  VEIL_CHECK(fan_in + fan_out > 0, "[init.xavier_uniform_] expected a non-empty shape, got {}",
             core::shape_str(tensor.shape()));
  const double bound =
      gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));  // sqrt(3) * std
  return uniform_(std::move(tensor), -bound, bound, generator);
}

MpcTensor xavier_normal_(MpcTensor tensor, double gain, crypto::Prg* generator) {
  check_target(tensor, "init.xavier_normal_");
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(tensor.shape());
  VEIL_CHECK(fan_in + fan_out > 0, "[init.xavier_normal_] expected a non-empty shape, got {}",
             core::shape_str(tensor.shape()));
  const double std = gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
  return normal_(std::move(tensor), 0.0, std, generator);
}

MpcTensor kaiming_uniform_(
    MpcTensor tensor, double a, FanMode mode, Nonlinearity nonlinearity, crypto::Prg* generator) {
  check_target(tensor, "init.kaiming_uniform_");
  const int64_t fan = fan_of(tensor.shape(), mode, "init.kaiming_uniform_");
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan));
  const double bound = std::sqrt(3.0) * std;
  return uniform_(std::move(tensor), -bound, bound, generator);
}

MpcTensor kaiming_normal_(
    MpcTensor tensor, double a, FanMode mode, Nonlinearity nonlinearity, crypto::Prg* generator) {
  check_target(tensor, "init.kaiming_normal_");
  const int64_t fan = fan_of(tensor.shape(), mode, "init.kaiming_normal_");
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan));
  return normal_(std::move(tensor), 0.0, std, generator);
}

}  // namespace veil::nn::init
