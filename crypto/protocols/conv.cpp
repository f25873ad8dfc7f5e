#include "crypto/protocols/conv.h"

#include <algorithm>

#include "core/error.h"
#include "core/ops.h"
#include "crypto/bilinear.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/nonlinear.h"

namespace veil::crypto {

namespace {

core::Conv2dParams pool_params(int64_t stride, int64_t padding) {
  core::Conv2dParams c;
  c.stride_h = c.stride_w = stride;
  c.pad_h = c.pad_w = padding;
  return c;
}

}  // namespace

AShare conv2d(Party& p, const AShare& x, const AShare& w, const core::Conv2dParams& params) {
  const AShare z = beaver(p, BilinearOp::conv2d(x.shape(), w.shape(), params), x, w);
  return rescale(p, z, std::max(x.frac_bits, w.frac_bits));
}

AShare conv2d_public_weight(Party& p,
                            const AShare& x,
                            const core::Tensor& w_float,
                            const core::Conv2dParams& params) {
  VEIL_CHECK(x.data.defined() && x.data.dtype() == core::DType::kRing64,
             "[conv2d] expected a ring64 share, got {}", x.data.str());
  VEIL_CHECK(w_float.defined() && (w_float.dtype() == core::DType::kFloat64 ||
                                   w_float.dtype() == core::DType::kFloat32),
             "[conv2d] expected a float public kernel, got {}", w_float.str());
  const core::Tensor w = p.encoder().encode(w_float, "conv2d");
  const AShare raw{core::conv2d(x.data, w, params), x.frac_bits + p.frac_bits()};
  return rescale(p, raw, std::max(x.frac_bits, p.frac_bits()));
}

AShare avg_pool2d(Party& p, const AShare& x, int64_t kernel, int64_t stride, int64_t padding) {
  const core::Tensor win =
      core::extract_windows(x.data, kernel, kernel, pool_params(stride, padding), "avg_pool2d");
  const AShare s{core::sum(win, -1), x.frac_bits};
  return mul_public(p, s, 1.0 / static_cast<double>(kernel * kernel));
}

AShare max_pool2d(Party& p, const AShare& x, int64_t kernel, int64_t stride) {
  const core::Tensor win =
      core::extract_windows(x.data, kernel, kernel, pool_params(stride, 0), "max_pool2d");
  return max_lastdim(p, AShare{win, x.frac_bits}).values;
}

}  // namespace veil::crypto
