#include "nn/init.h"

#include <cmath>
#include <string>

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
