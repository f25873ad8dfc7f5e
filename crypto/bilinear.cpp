#include "crypto/bilinear.h"

#include <cstring>

#include "core/elementwise.h"
#include "core/ops.h"
#include "crypto/wire.h"

namespace veil::crypto {

BilinearOp BilinearOp::mul(const core::Shape& x, const core::Shape& y) {
  (void)core::broadcast_shapes(x, y, "mul");
  return {Kind::kMul, x, y, {}, {}};
}

BilinearOp BilinearOp::square(const core::Shape& shape) {
  return {Kind::kSquare, shape, shape, {}, {}};
}

BilinearOp BilinearOp::matmul(const core::Shape& x, const core::Shape& y) {
  VEIL_CHECK(x.size() == 2 && y.size() == 2 && x[1] == y[0],
             "[matmul] expected [m, k] @ [k, n], got {} @ {}", core::shape_str(x),
             core::shape_str(y));
  return {Kind::kMatmul, x, y, {}, {}};
}

BilinearOp BilinearOp::conv2d(const core::Shape& x,
                              const core::Shape& w,
                              const core::Conv2dParams& params) {
  (void)core::conv2d_out_shape(x, w, params);
  return {Kind::kConv2d, x, w, params, {}};
}

BilinearOp BilinearOp::conv2d_input_grad(const core::Shape& dy,
                                         const core::Shape& w,
                                         const core::Conv2dParams& params,
                                         const core::Shape& input_hw) {
  (void)core::conv2d_input_grad_shape(dy, w, params, input_hw);
  return {Kind::kConv2dInputGrad, dy, w, params, input_hw};
}

BilinearOp BilinearOp::conv2d_weight_grad(const core::Shape& x,
                                          const core::Shape& dy,
                                          const core::Conv2dParams& params,
                                          const core::Shape& kernel_hw) {
  (void)core::conv2d_weight_grad_shape(x, dy, params, kernel_hw);
  return {Kind::kConv2dWeightGrad, x, dy, params, kernel_hw};
}

core::Shape BilinearOp::out_shape() const {
  switch (kind) {
    case Kind::kMul:
      return core::broadcast_shapes(x_shape, y_shape, "mul");
    case Kind::kSquare:
      return x_shape;
    case Kind::kMatmul:
      return {x_shape[0], y_shape[1]};
    case Kind::kConv2d:
      return core::conv2d_out_shape(x_shape, y_shape, conv);
    case Kind::kConv2dInputGrad:
      return core::conv2d_input_grad_shape(x_shape, y_shape, conv, spatial);
    case Kind::kConv2dWeightGrad:
      return core::conv2d_weight_grad_shape(x_shape, y_shape, conv, spatial);
  }
  throw InternalError("[BilinearOp] unknown kind");
}

core::Tensor BilinearOp::apply(const core::Tensor& x, const core::Tensor& y) const {
  VEIL_INTERNAL_ASSERT(x.shape() == x_shape && y.shape() == y_shape, "{} applied to {} and {}",
                       str(), core::shape_str(x.shape()), core::shape_str(y.shape()));
  switch (kind) {
    case Kind::kMul:
    case Kind::kSquare:
      return core::mul(x, y);
    case Kind::kMatmul:
      return core::matmul(x, y);
    case Kind::kConv2d:
      return core::conv2d(x, y, conv);
    case Kind::kConv2dInputGrad:
      return core::conv2d_input_grad(x, y, conv, spatial);
    case Kind::kConv2dWeightGrad:
      return core::conv2d_weight_grad(x, y, conv, spatial);
  }
  throw InternalError("[BilinearOp] unknown kind");
}

const char* BilinearOp::name() const {
  switch (kind) {
    case Kind::kMul:
      return "mul";
    case Kind::kMatmul:
      return "matmul";
    case Kind::kConv2d:
      return "conv2d";
    case Kind::kConv2dInputGrad:
      return "conv2d_input_grad";
    case Kind::kConv2dWeightGrad:
      return "conv2d_weight_grad";
    case Kind::kSquare:
      return "square";
  }
  return "?";
}

std::string BilinearOp::str() const {
  std::string s =
      fmt::format("{} {} x {}", name(), core::shape_str(x_shape), core::shape_str(y_shape));
  if (kind == Kind::kConv2d) {
    s += fmt::format(" ({})", core::conv2d_params_str(conv));
  } else if (kind == Kind::kConv2dInputGrad) {
    s += fmt::format(" ({}, input {})", core::conv2d_params_str(conv), core::shape_str(spatial));
  } else if (kind == Kind::kConv2dWeightGrad) {
    s += fmt::format(" ({}, kernel {})", core::conv2d_params_str(conv), core::shape_str(spatial));
  }
  return s;
}

std::vector<std::byte> BilinearOp::serialize() const {
  WireWriter w;
  w.u64(static_cast<uint64_t>(kind));
  w.shape(x_shape);
  w.shape(y_shape);
  if (kind == Kind::kConv2d || kind == Kind::kConv2dInputGrad || kind == Kind::kConv2dWeightGrad) {
    for (int64_t v : {conv.stride_h, conv.stride_w, conv.pad_h, conv.pad_w, conv.dilation_h,
                      conv.dilation_w, conv.groups}) {
      w.u64(static_cast<uint64_t>(v));
    }
  }
  if (kind == Kind::kConv2dInputGrad || kind == Kind::kConv2dWeightGrad) {
    VEIL_INTERNAL_ASSERT(spatial.size() == 2, "{} without two spatial extents", name());
    for (int64_t v : spatial) {
      w.u64(static_cast<uint64_t>(v));
    }
  }
  return w.take();
}

BilinearOp BilinearOp::deserialize(std::span<const std::byte> bytes) {
  WireReader r(bytes, "BilinearOp::deserialize");
  const uint64_t k = r.u64();
  VEIL_CHECK_WITH(ProtocolError, k <= 5, "[BilinearOp::deserialize] unknown kind {}", k);
  core::Shape x = r.shape();
  core::Shape y = r.shape();
  if (k == 5) {
    r.finish();
    VEIL_CHECK_WITH(ProtocolError, x == y,
                    "[BilinearOp::deserialize] square with operand shapes {} and {}",
                    core::shape_str(x), core::shape_str(y));
    return square(x);
  }
  if (k < 2) {
    r.finish();
    return k == 0 ? mul(x, y) : matmul(x, y);
  }
  core::Conv2dParams c;
  for (int64_t* v :
       {&c.stride_h, &c.stride_w, &c.pad_h, &c.pad_w, &c.dilation_h, &c.dilation_w, &c.groups}) {
    const uint64_t raw = r.u64();
    VEIL_CHECK_WITH(ProtocolError, raw < (uint64_t{1} << 32),
                    "[BilinearOp::deserialize] implausible conv2d parameter");
    *v = static_cast<int64_t>(raw);
  }
  core::Shape hw;
  if (k >= 3) {
    for (int i = 0; i < 2; ++i) {
      const uint64_t raw = r.u64();
      VEIL_CHECK_WITH(ProtocolError, raw < (uint64_t{1} << 32),
                      "[BilinearOp::deserialize] implausible conv2d spatial extent");
      hw.push_back(static_cast<int64_t>(raw));
    }
  }
  r.finish();
  try {
    if (k == 3) {
      return conv2d_input_grad(x, y, c, hw);
    }
    if (k == 4) {
      return conv2d_weight_grad(x, y, c, hw);
    }
    return conv2d(x, y, c);
  } catch (const ValueError& e) {
    throw ProtocolError(fmt::format("[BilinearOp::deserialize] invalid conv2d: {}", e.what()));
  }
}

}  // namespace veil::crypto
