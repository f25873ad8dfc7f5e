#include "crypto/bilinear.h"

#include <cstring>

#include "core/elementwise.h"
#include "core/ops.h"
#include "crypto/wire.h"

namespace veil::crypto {

BilinearOp BilinearOp::mul(const core::Shape& x, const core::Shape& y) {
  (void)core::broadcast_shapes(x, y, "mul");
  return {Kind::kMul, x, y};
}

BilinearOp BilinearOp::matmul(const core::Shape& x, const core::Shape& y) {
  VEIL_CHECK(x.size() == 2 && y.size() == 2 && x[1] == y[0],
             "[matmul] expected [m, k] @ [k, n], got {} @ {}", core::shape_str(x),
             core::shape_str(y));
  return {Kind::kMatmul, x, y};
}

core::Shape BilinearOp::out_shape() const {
  if (kind == Kind::kMul) {
    return core::broadcast_shapes(x_shape, y_shape, "mul");
  }
  return {x_shape[0], y_shape[1]};
}

core::Tensor BilinearOp::apply(const core::Tensor& x, const core::Tensor& y) const {
  VEIL_INTERNAL_ASSERT(x.shape() == x_shape && y.shape() == y_shape, "{} applied to {} and {}",
                       str(), core::shape_str(x.shape()), core::shape_str(y.shape()));
  if (kind == Kind::kMul) {
    return core::mul(x, y);
  }
  return core::matmul(x, y);
}

const char* BilinearOp::name() const {
  return kind == Kind::kMul ? "mul" : "matmul";
}

std::string BilinearOp::str() const {
  return fmt::format("{} {} x {}", name(), core::shape_str(x_shape), core::shape_str(y_shape));
}

std::vector<std::byte> BilinearOp::serialize() const {
  WireWriter w;
  w.u64(static_cast<uint64_t>(kind));
  w.shape(x_shape);
  w.shape(y_shape);
  return w.take();
}

BilinearOp BilinearOp::deserialize(std::span<const std::byte> bytes) {
  WireReader r(bytes, "BilinearOp::deserialize");
  const uint64_t k = r.u64();
  VEIL_CHECK_WITH(ProtocolError, k <= 1, "[BilinearOp::deserialize] unknown kind {}", k);
  core::Shape x = r.shape();
  core::Shape y = r.shape();
  r.finish();
  return k == 0 ? mul(x, y) : matmul(x, y);
}

}  // namespace veil::crypto
