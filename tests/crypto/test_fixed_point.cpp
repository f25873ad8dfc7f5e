// Tests of crypto/fixed_point: rounding to nearest against std::llround, exact decoding of
// negatives, round-trip error bound 2^-(f+1), validation messages, and ring wrap-around.

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/tensor.h"
#include "crypto/fixed_point.h"

namespace {

using veil::core::DType;
using veil::core::Tensor;
using veil::crypto::FixedPointEncoder;

// Independent reference: round half away from zero via std::llround, as a two's complement word.
uint64_t reference_encode(double x, int f) {
  return static_cast<uint64_t>(static_cast<int64_t>(std::llround(std::ldexp(x, f))));
}

std::string message_of(const FixedPointEncoder& enc, const Tensor& x) {
  try {
    (void)enc.encode(x);
  } catch (const veil::ValueError& e) {
    return e.what();
  }
  return "no exception";
}

}  // namespace

TEST_CASE("FixedPoint: frac_bits range", "[fixed_point]") {
  CHECK_NOTHROW(FixedPointEncoder(0));
  CHECK_NOTHROW(FixedPointEncoder(40));
  CHECK_THROWS_AS(FixedPointEncoder(-1), veil::ValueError);
  CHECK_THROWS_AS(FixedPointEncoder(41), veil::ValueError);
  const FixedPointEncoder enc;
  CHECK(enc.frac_bits() == 16);
  CHECK(enc.scale() == 65536);
  CHECK(enc.max_abs() == std::ldexp(1.0, 46));
}

TEST_CASE("FixedPoint: round trip within 2^-(f+1) and equal to llround", "[fixed_point]") {
  std::mt19937_64 gen(12345);
  for (int f : {0, 1, 8, 13, 16, 20, 24, 32, 40}) {
    // GIVEN random values of both signs with |x| * 2^f < 2^53 (so decoding is exact)
    const FixedPointEncoder enc(f);
    const double bound = std::min(1000.0, enc.max_abs());
    std::uniform_real_distribution<double> dist(-bound, bound);
    std::vector<double> xs(4000);
    for (double& x : xs) {
      x = dist(gen);
    }
    // Exact ties, just below ties and small values near zero.
    const double q = std::ldexp(1.0, -f);
    for (double t : {0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, -0.49999999999999994}) {
      xs.push_back(t * q);
    }
    const Tensor x = Tensor::from_vector(xs, {static_cast<int64_t>(xs.size())});
    // WHEN encoded and decoded
    const Tensor e = enc.encode(x);
    REQUIRE(e.dtype() == DType::kRing64);
    REQUIRE(e.shape() == x.shape());
    const auto ev = e.to_vector<uint64_t>();
    const auto dv = enc.decode(e).to_vector<double>();
    // THEN the encoding equals llround and the round-trip error is at most half a step
    const double tol = std::ldexp(1.0, -(f + 1));
    for (std::size_t i = 0; i < xs.size(); ++i) {
      INFO("f = " << f << ", i = " << i);
      CHECK(ev[i] == reference_encode(xs[i], f));
      CHECK(enc.encode_scalar(xs[i]) == ev[i]);
      CHECK(std::abs(dv[i] - xs[i]) <= tol);
      CHECK(enc.decode_scalar(ev[i]) == dv[i]);
    }
  }
}

TEST_CASE("FixedPoint: rounding is to nearest, ties away from zero", "[fixed_point]") {
  const FixedPointEncoder enc(16);
  // 1e-4 * 65536 = 6.5536: rounds to 7 (a truncating encoder gives 6).
  CHECK(enc.encode_scalar(1e-4) == 7);
  CHECK(enc.encode_scalar(-1e-4) == static_cast<uint64_t>(int64_t{-7}));
  // Ties: 2.5 and -2.5 steps.
  CHECK(enc.encode_scalar(2.5 / 65536) == 3);
  CHECK(enc.encode_scalar(-2.5 / 65536) == static_cast<uint64_t>(int64_t{-3}));
  CHECK(enc.encode_scalar(0.49999999999999994 / 65536) == 0);
  CHECK(enc.encode_scalar(-0.0) == 0);
}

TEST_CASE("FixedPoint: negatives decode exactly", "[fixed_point]") {
  const FixedPointEncoder enc(16);
  CHECK(enc.decode_scalar(enc.encode_scalar(-1.5)) == -1.5);
  CHECK(enc.decode_scalar(enc.encode_scalar(-std::ldexp(1.0, -16))) == -std::ldexp(1.0, -16));
  CHECK(enc.decode_scalar(~uint64_t{0}) == -std::ldexp(1.0, -16));
  CHECK(enc.decode_scalar(uint64_t{1} << 63) == -std::ldexp(1.0, 47));
  const std::vector<double> xs = {-1.5, -0.25, -3.0, -1000.125, -std::ldexp(1.0, -16), 0.0, 7.75};
  const Tensor d = enc.decode(enc.encode(Tensor::from_vector(xs, {7})));
  CHECK(d.dtype() == DType::kFloat64);
  CHECK(d.to_vector<double>() == xs);
}

TEST_CASE("FixedPoint: float32 and strided inputs", "[fixed_point]") {
  const FixedPointEncoder enc(16);
  // GIVEN a float32 matrix and a transposed float64 view
  const std::vector<float> xf = {0.5F, -1.25F, 3.0e-4F, -7.0F, 100.0F, -0.1F};
  const Tensor tf = Tensor::from_vector(xf, {2, 3});
  const auto ef = enc.encode(tf).to_vector<uint64_t>();
  for (std::size_t i = 0; i < xf.size(); ++i) {
    CHECK(ef[i] == reference_encode(static_cast<double>(xf[i]), 16));
  }
  const std::vector<double> xd = {1, 2, 3, 4, 5, 6.5};
  const Tensor t = Tensor::from_vector(xd, {2, 3}).transpose(0, 1);  // [3, 2]
  REQUIRE_FALSE(t.is_contiguous());
  const Tensor e = enc.encode(t);
  CHECK(e.shape() == veil::core::Shape{3, 2});
  const std::vector<double> row_major = {1, 4, 2, 5, 3, 6.5};
  CHECK(enc.decode(e).to_vector<double>() == row_major);
  // and decode of a strided ring view
  CHECK(enc.decode(e.transpose(0, 1)).to_vector<double>() == xd);
}

TEST_CASE("FixedPoint: encode rejects non-finite and out-of-range values", "[fixed_point]") {
  const FixedPointEncoder enc(16);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> xs(20, 1.0);

  xs[17] = nan;
  std::string msg = message_of(enc, Tensor::from_vector(xs, {4, 5}));
  CHECK(msg.find("[encode] element 17 is NaN") != std::string::npos);

  xs[17] = 1.0;
  xs[5] = inf;
  xs[9] = -inf;  // the first bad element is reported
  msg = message_of(enc, Tensor::from_vector(xs, {20}));
  CHECK(msg.find("element 5 is +inf") != std::string::npos);
  xs[5] = 1.0;
  msg = message_of(enc, Tensor::from_vector(xs, {20}));
  CHECK(msg.find("element 9 is -inf") != std::string::npos);

  xs[9] = 1.0;
  xs[3] = -1.234e20;
  msg = message_of(enc, Tensor::from_vector(xs, {20}));
  CHECK(msg.find("element 3 is outside the fixed-point range") != std::string::npos);
  CHECK(msg.find("frac_bits 16") != std::string::npos);
  CHECK(msg.find("1.2") == std::string::npos);  // the bound, never the value

  // The bound itself is accepted, the next double above is not.
  CHECK(enc.encode_scalar(enc.max_abs()) == uint64_t{1} << 62);
  CHECK(enc.encode_scalar(-enc.max_abs()) == static_cast<uint64_t>(-(int64_t{1} << 62)));
  CHECK_THROWS_AS(enc.encode_scalar(std::nextafter(enc.max_abs(), inf)), veil::ValueError);
  CHECK_THROWS_AS(enc.encode_scalar(nan), veil::ValueError);
  CHECK_THROWS_AS(enc.encode_scalar(-inf), veil::ValueError);

  // float32 NaN, a custom op name, and wrong dtypes.
  const std::vector<float> xf = {1.0F, std::numeric_limits<float>::quiet_NaN()};
  try {
    (void)enc.encode(Tensor::from_vector(xf, {2}), "share");
    FAIL("expected ValueError");
  } catch (const veil::ValueError& e) {
    CHECK(std::string(e.what()).find("[share] element 1 is NaN") != std::string::npos);
  }
  CHECK_THROWS_AS(enc.encode(Tensor::zeros({2}, DType::kRing64)), veil::ValueError);
  CHECK_THROWS_AS(enc.decode(Tensor::zeros({2}, DType::kFloat64)), veil::ValueError);
}

TEST_CASE("FixedPoint: ring addition of encodings decodes to the sum", "[fixed_point]") {
  for (int f : {8, 16, 24}) {
    const FixedPointEncoder enc(f);
    const double step = std::ldexp(1.0, -f);
    const std::vector<std::pair<double, double>> pairs = {
        {-1.5, 0.25}, {-3.75, -2.5}, {5.0, -7.125}, {-step, -step}, {1000.5, -1000.5}};
    for (const auto& [a, b] : pairs) {
      // GIVEN values on the grid: encoding is exact and the wrapped sum is exact
      const uint64_t sum = enc.encode_scalar(a) + enc.encode_scalar(b);  // mod 2^64
      CHECK(enc.decode_scalar(sum) == a + b);
    }
  }
}
