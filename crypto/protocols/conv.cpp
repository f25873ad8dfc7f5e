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

AShare conv1d(Party& p, const AShare& x, const AShare& w, const core::Conv1dParams& params) {
  const core::Shape out = core::conv1d_out_shape(x.shape(), w.shape(), params);
  const AShare x4{x.data.reshape({x.data.size(0), x.data.size(1), 1, x.data.size(2)}), x.frac_bits};
  const AShare w4{w.data.reshape({w.data.size(0), w.data.size(1), 1, w.data.size(2)}), w.frac_bits};
  const AShare y = conv2d(p, x4, w4, params.as_2d());
  return {y.data.reshape(out), y.frac_bits};
}

AShare conv_transpose2d(Party& p,
                        const AShare& x,
                        const AShare& w,
                        const core::ConvTranspose2dParams& params) {
  constexpr const char* kOp = "conv_transpose2d";
  const core::Shape out = core::conv_transpose2d_out_shape(x.shape(), w.shape(), params);
  const core::Shape in = core::conv_transpose2d_input_shape(x.shape(), w.shape(), params);
  const AShare xe{core::zero_extend_hw(x.data, in[2], in[3], kOp), x.frac_bits};
  const BilinearOp op =
      BilinearOp::conv2d_input_grad(in, w.shape(), params.conv(), {out[2], out[3]});
  const AShare z = beaver(p, op, xe, w);
  return rescale(p, z, std::max(x.frac_bits, w.frac_bits));
}

AShare window_avg(Party& p, const AShare& x, const core::WindowTable& t, const char* op) {
  const AShare s{core::sum(core::gather_windows(x.data, t, op), -1), x.frac_bits};
  core::Tensor inv = core::Tensor::empty({t.out_h, t.out_w}, core::DType::kFloat64);
  double* pi = inv.data<double>();
  for (std::size_t o = 0; o < t.divisor.size(); ++o) {
    pi[o] = 1.0 / static_cast<double>(t.divisor[o]);
  }
  return mul_public(p, s, inv);
}

MaxResult window_max(Party& p, const AShare& x, const core::WindowTable& t, const char* op) {
  return max_lastdim(p, AShare{core::gather_windows(x.data, t, op), x.frac_bits});
}

AShare avg_pool2d(Party& p, const AShare& x, const core::Pool2dParams& params) {
  constexpr const char* kOp = "avg_pool2d";
  VEIL_CHECK(x.data.dim() == 4, "[{}] expected x [N, C, H, W], got {}", kOp,
             core::shape_str(x.shape()));
  return window_avg(
      p, x,
      core::pool2d_windows(x.data.size(2), x.data.size(3), params, core::WindowFill::kZero, kOp),
      kOp);
}

AShare max_pool2d(Party& p, const AShare& x, const core::Pool2dParams& params) {
  constexpr const char* kOp = "max_pool2d";
  VEIL_CHECK(x.data.dim() == 4, "[{}] expected x [N, C, H, W], got {}", kOp,
             core::shape_str(x.shape()));
  return window_max(p, x,
                    core::pool2d_windows(x.data.size(2), x.data.size(3), params,
                                         core::WindowFill::kRepeat, kOp),
                    kOp)
      .values;
}

namespace {

core::WindowTable adaptive_table(const AShare& x,
                                 const core::Shape& output_hw,
                                 core::WindowFill fill,
                                 const char* op) {
  VEIL_CHECK(x.data.dim() == 4 && output_hw.size() == 2,
             "[{}] expected x [N, C, H, W] and an output size {{oh, ow}}, got x {} and {}", op,
             core::shape_str(x.shape()), core::shape_str(output_hw));
  return core::adaptive_pool2d_windows(x.data.size(2), x.data.size(3), output_hw[0], output_hw[1],
                                       fill, op);
}

}  // namespace

AShare adaptive_avg_pool2d(Party& p, const AShare& x, const core::Shape& output_hw) {
  constexpr const char* kOp = "adaptive_avg_pool2d";
  return window_avg(p, x, adaptive_table(x, output_hw, core::WindowFill::kZero, kOp), kOp);
}

AShare adaptive_max_pool2d(Party& p, const AShare& x, const core::Shape& output_hw) {
  constexpr const char* kOp = "adaptive_max_pool2d";
  return window_max(p, x, adaptive_table(x, output_hw, core::WindowFill::kRepeat, kOp), kOp).values;
}

}  // namespace veil::crypto
