#include "crypto/bilinear.h"

#include <cstring>

#include "core/elementwise.h"
#include "core/ops.h"

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
  VEIL_INTERNAL_ASSERT(x.shape() == x_shape && y.shape() == y_shape,
                       "{} applied to {} and {}", str(), core::shape_str(x.shape()),
                       core::shape_str(y.shape()));
  if (kind == Kind::kMul) {
    return core::mul(x, y);
  }
  return core::matmul(x, y);
}

const char* BilinearOp::name() const { return kind == Kind::kMul ? "mul" : "matmul"; }

std::string BilinearOp::str() const {
  return fmt::format("{} {} x {}", name(), core::shape_str(x_shape), core::shape_str(y_shape));
}

namespace {
void put_u64(std::vector<std::byte>& out, uint64_t v) {
  const auto* p = reinterpret_cast<const std::byte*>(&v);
  out.insert(out.end(), p, p + 8);
}
uint64_t get_u64(std::span<const std::byte> in, std::size_t& at) {
  VEIL_CHECK_WITH(ProtocolError, at + 8 <= in.size(),
                  "[BilinearOp::deserialize] truncated descriptor ({} bytes)", in.size());
  uint64_t v = 0;
  std::memcpy(&v, in.data() + at, 8);
  at += 8;
  return v;
}
void put_shape(std::vector<std::byte>& out, const core::Shape& s) {
  put_u64(out, s.size());
  for (int64_t e : s) {
    put_u64(out, static_cast<uint64_t>(e));
  }
}
core::Shape get_shape(std::span<const std::byte> in, std::size_t& at) {
  const uint64_t n = get_u64(in, at);
  VEIL_CHECK_WITH(ProtocolError, n <= 8, "[BilinearOp::deserialize] implausible rank {}", n);
  core::Shape s(n);
  for (auto& e : s) {
    e = static_cast<int64_t>(get_u64(in, at));
    VEIL_CHECK_WITH(ProtocolError, e >= 0 && e < (int64_t{1} << 40),
                    "[BilinearOp::deserialize] implausible extent");
  }
  return s;
}
}  // namespace

std::vector<std::byte> BilinearOp::serialize() const {
  std::vector<std::byte> out;
  put_u64(out, static_cast<uint64_t>(kind));
  put_shape(out, x_shape);
  put_shape(out, y_shape);
  return out;
}

BilinearOp BilinearOp::deserialize(std::span<const std::byte> bytes) {
  std::size_t at = 0;
  const uint64_t k = get_u64(bytes, at);
  VEIL_CHECK_WITH(ProtocolError, k <= 1, "[BilinearOp::deserialize] unknown kind {}", k);
  core::Shape x = get_shape(bytes, at);
  core::Shape y = get_shape(bytes, at);
  VEIL_CHECK_WITH(ProtocolError, at == bytes.size(),
                  "[BilinearOp::deserialize] {} trailing bytes", bytes.size() - at);
  return k == 0 ? mul(x, y) : matmul(x, y);
}

}  // namespace veil::crypto
