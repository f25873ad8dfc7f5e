#include "nn/linear.h"

#include <cmath>

#include "autograd/functions.h"
#include "crypto/prg.h"

namespace veil::nn {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features)
    : LinearImpl(LinearOptions(in_features, out_features)) {}

LinearImpl::LinearImpl(const LinearOptions& options, Party& party) : options_(options) {
  const int64_t in = options.in_features();
  const int64_t out = options.out_features();
  VEIL_CHECK(in >= 1 && out >= 1, "[Linear] expected in_features, out_features >= 1, got {}, {}",
             in, out);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  core::Tensor w = core::Tensor::empty({in, out}, core::DType::kFloat64);
  core::Tensor b = core::Tensor::empty({out}, core::DType::kFloat64);
  auto fill = [&](crypto::Prg& prg) {
    for (core::Tensor* t : {&w, &b}) {
      if (t == &b && !options.bias()) {
        break;
      }
      double* p = t->data<double>();
      for (int64_t i = 0; i < t->numel(); ++i) {
        p[i] = (2.0 * prg.uniform_double() - 1.0) * bound;
      }
    }
  };
  if (options.seed()) {
    crypto::Prg prg(crypto::Prg::public_seed(*options.seed(), options.stream()));
    fill(prg);
  } else {
    fill(party.common_prg());
  }
  weight = register_parameter("weight", MpcTensor::from_public(w, party));
  if (options.bias()) {
    bias = register_parameter("bias", MpcTensor::from_public(b, party));
  }
}

MpcTensor LinearImpl::forward(const MpcTensor& x) {
  VEIL_CHECK(x.defined() && x.dim() == 2 && x.size(1) == options_.in_features(),
             "[Linear] expected input [N, {}], got {}", options_.in_features(),
             x.defined() ? core::shape_str(x.shape()) : std::string("an undefined tensor"));
  MpcTensor y = matmul(x, weight);           // [N, in] @ [in, out] -> [N, out]
  return bias.defined() ? add(y, bias) : y;  // + [out] broadcast over rows
}

void LinearImpl::load_weights(const core::Tensor& w, const core::Tensor& b) {
  const int64_t in = options_.in_features();
  const int64_t out = options_.out_features();
  const core::Shape w_shape{in, out};
  const core::Shape b_shape{out};
  VEIL_CHECK(w.defined() && w.dtype() == core::DType::kFloat64 && w.shape() == w_shape,
             "[Linear::load_weights] expected a float64 weight [{}, {}], got {}", in, out,
             w.defined() ? w.str() : std::string("an undefined tensor"));
  VEIL_CHECK(weight.is_public() && (!bias.defined() || bias.is_public()),
             "[Linear::load_weights] the parameters are already secret; load weights before "
             "encrypt()");
  if (bias.defined()) {
    VEIL_CHECK(b.defined() && b.dtype() == core::DType::kFloat64 && b.shape() == b_shape,
               "[Linear::load_weights] expected a float64 bias [{}], got {}", out,
               b.defined() ? b.str() : std::string("an undefined tensor"));
    bias.assign_(MpcTensor::from_public(b, bias.party()));
  }
  weight.assign_(MpcTensor::from_public(w, weight.party()));
}

}  // namespace veil::nn
