// CUDA tensors in core (core/tensor.cpp, core/cuda_dispatch.cpp, the device branches of
// core/ops.cpp and core/linalg.cpp). Runs everywhere: the device guards of a build without CUDA or
// without a GPU, and the layout merging that every device op relies on (checked against the views'
// own strides element by element). With a GPU: every op on CUDA tensors against the same op on the
// CPU (an independent implementation), bit for bit for ring64/int64/uint8 and for exactly rounded
// float ops, within stated tolerances for exp/log, float sums and float GEMMs; views, broadcasting,
// empty tensors and K > 2^16 included. GPU cases print "SKIPPED: no CUDA device" without one.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "core/conv.h"
#include "core/cuda_dispatch.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "kernels/cuda_backend.h"

namespace {

namespace kc = veil::kernels::cuda;
using Catch::Matchers::Contains;
using veil::core::Device;
using veil::core::DType;
using veil::core::Shape;
using veil::core::Tensor;

bool no_device() {
  if (kc::device_count() == 0) {
    std::puts("SKIPPED: no CUDA device");
    return true;
  }
  return false;
}

// ---- layout merging (host logic) ---------------------------------------------------------------

// Offset of the row-major element i of a layout.
int64_t layout_offset(const kc::Layout& l, int64_t i) {
  int64_t off = l.offset;
  for (int d = l.ndim; d-- > 0;) {
    off += (i % l.shape[d]) * l.stride[d];
    i /= l.shape[d];
  }
  return off;
}

// Offset of the row-major element i of a view given by shape and strides.
int64_t view_offset(const Shape& shape, const Shape& strides, int64_t i) {
  int64_t off = 0;
  for (std::size_t d = shape.size(); d-- > 0;) {
    off += (i % shape[d]) * strides[d];
    i /= shape[d];
  }
  return off;
}

// Every element of every operand is found at the same offset through the merged layouts.
void require_same_walk(const Shape& shape, const std::vector<Shape>& strides) {
  kc::Layout l[2];
  if (strides.size() == 1) {
    veil::core::cuda_ops::layouts(shape, {&strides[0]}, l, "test");
  } else {
    veil::core::cuda_ops::layouts(shape, {&strides[0], &strides[1]}, l, "test");
  }
  const int64_t n = veil::core::shape_numel(shape);
  for (std::size_t j = 0; j < strides.size(); ++j) {
    int64_t ln = 1;
    for (int d = 0; d < l[j].ndim; ++d) {
      ln *= l[j].shape[d];
    }
    REQUIRE(ln == n);
    for (int64_t i = 0; i < n; ++i) {
      REQUIRE(layout_offset(l[j], i) == view_offset(shape, strides[j], i));
    }
  }
}

}  // namespace

TEST_CASE("cuda tensors: creating one without the backend or a device throws", "[cuda_tensor]") {
  if (!kc::compiled()) {
    REQUIRE_THROWS_AS(Tensor::empty({2, 3}, DType::kRing64, Device::cuda()),
                      veil::NotCompiledError);
    REQUIRE_THROWS_WITH(Tensor::zeros({2}, DType::kFloat64, Device::cuda()),
                        Contains("-DVEIL_WITH_CUDA=ON"));
    REQUIRE_THROWS_AS(Tensor::from_vector<uint64_t>({1, 2}, {2}).to(Device::cuda()),
                      veil::NotCompiledError);
  } else {
    const int count = kc::device_count();
    REQUIRE_THROWS_AS(Tensor::empty({2, 3}, DType::kRing64, Device::cuda(count)), kc::CudaError);
    REQUIRE_THROWS_WITH(Tensor::empty({2}, DType::kRing64, Device::cuda(count + 3)),
                        Contains(fmt::format("device_count() = {}", count)) &&
                            Contains(fmt::format("cuda:{}", count + 3)));
    REQUIRE_THROWS_AS(Tensor::empty({2}, DType::kRing64, Device::cuda(-1)), kc::CudaError);
  }
  // Host tensors are unaffected; their description has no device.
  const Tensor h = Tensor::zeros({2, 3}, DType::kRing64);
  REQUIRE(!h.is_cuda());
  REQUIRE(h.str() == "Tensor(ring64, [2, 3])");
  REQUIRE(h.to(Device::cpu()).shares_storage_with(h));
  REQUIRE(veil::core::device_str(Device::cpu()) == "cpu");
  REQUIRE(veil::core::device_str(Device::cuda(1)) == "cuda:1");
}

TEST_CASE("cuda tensors: merged layouts walk the same elements as the views", "[cuda_tensor]") {
  SECTION("contiguous tensors of any rank become one dimension") {
    const Shape s{2, 3, 2, 3, 2, 3, 2, 3, 2, 3};  // 10 dims > kMaxDims
    kc::Layout l;
    const Shape st = veil::core::contiguous_strides(s);
    veil::core::cuda_ops::layouts(s, {&st}, &l, "test");
    REQUIRE(l.ndim == 1);
    REQUIRE(l.shape[0] == veil::core::shape_numel(s));
    REQUIRE(l.stride[0] == 1);
    require_same_walk(s, {st});
  }
  SECTION("transposed, sliced and broadcast views") {
    const Tensor base = Tensor::zeros({5, 7, 3}, DType::kUInt8);
    const Tensor tr = base.transpose(0, 2);
    require_same_walk(tr.shape(), {tr.strides()});
    const Tensor sl = base.slice(1, 2, 6);
    require_same_walk(sl.shape(), {sl.strides()});
    const Tensor ex = Tensor::zeros({5, 1, 3}, DType::kUInt8).expand({4, 5, 7, 3});
    const Tensor other = Tensor::zeros({4, 5, 7, 3}, DType::kUInt8);
    require_same_walk(ex.shape(), {other.strides(), ex.strides()});
    const Tensor t10 = Tensor::zeros({2, 3, 2, 3, 2, 3, 2, 3, 2, 3}, DType::kUInt8).transpose(0, 9);
    require_same_walk(t10.shape(), {t10.strides()});
  }
  SECTION("extent-1 dimensions and scalars") {
    const Shape s{1, 4, 1, 1, 5, 1};
    const Shape st = veil::core::contiguous_strides(s);
    kc::Layout l;
    veil::core::cuda_ops::layouts(s, {&st}, &l, "test");
    REQUIRE(l.ndim == 1);
    require_same_walk(s, {st});
    veil::core::cuda_ops::layouts({}, {&st}, &l, "test");
    REQUIRE(l.ndim == 0);
  }
  SECTION("too many dimensions after merging") {
    // Nine dimensions of extent 2 with strides that never merge (every other element skipped).
    Shape s(9, 2);
    Shape st(9);
    int64_t acc = 2;
    for (std::size_t d = 9; d-- > 0;) {
      st[d] = acc;
      acc *= 4;
    }
    kc::Layout l;
    REQUIRE_THROWS_WITH(veil::core::cuda_ops::layouts(s, {&st}, &l, "myop"),
                        Contains("[myop]") && Contains("at most 8"));
  }
}

// ---- GPU section
// ---------------------------------------------------------------------------------

namespace {

Tensor rand_tensor(DType t, const Shape& shape, std::mt19937_64& rng, bool positive = false) {
  const int64_t n = veil::core::shape_numel(shape);
  std::uniform_real_distribution<double> u(positive ? 0.01 : -4.0, 4.0);
  switch (t) {
    case DType::kRing64: {
      std::vector<uint64_t> v(static_cast<std::size_t>(n));
      for (auto& x : v) {
        x = rng();
      }
      return Tensor::from_vector(v, shape);
    }
    case DType::kInt64: {
      std::vector<int64_t> v(static_cast<std::size_t>(n));
      for (auto& x : v) {
        x = static_cast<int64_t>(rng());
      }
      return Tensor::from_vector(v, shape);
    }
    case DType::kUInt8: {
      std::vector<uint8_t> v(static_cast<std::size_t>(n));
      for (auto& x : v) {
        x = static_cast<uint8_t>(rng() % 4 == 0 ? 0 : rng());  // zeros for bitwise_not on uint8
      }
      return Tensor::from_vector(v, shape);
    }
    case DType::kFloat64: {
      std::vector<double> v(static_cast<std::size_t>(n));
      for (auto& x : v) {
        x = u(rng);
      }
      return Tensor::from_vector(v, shape);
    }
    case DType::kFloat32: {
      std::vector<float> v(static_cast<std::size_t>(n));
      for (auto& x : v) {
        x = static_cast<float>(u(rng));
      }
      return Tensor::from_vector(v, shape);
    }
  }
  return {};
}

// Small integers so that max/argmax meet ties.
Tensor rand_small(DType t, const Shape& shape, std::mt19937_64& rng) {
  const int64_t n = veil::core::shape_numel(shape);
  std::vector<int64_t> v(static_cast<std::size_t>(n));
  for (auto& x : v) {
    x = static_cast<int64_t>(rng() % 7) - 3;
  }
  return Tensor::from_vector(v, shape).to(t);
}

double elem_as_double(const Tensor& h, int64_t i) {
  switch (h.dtype()) {
    case DType::kFloat32:
      return h.data<float>()[i];
    case DType::kFloat64:
      return h.data<double>()[i];
    default:
      return 0.0;
  }
}

// The CUDA result `got` equals the CPU result `want`: same dtype and shape; integer dtypes bit for
// bit, floats |got - want| <= tol * (|want| + scale) (tol 0: equal values).
void require_match(const Tensor& want, const Tensor& got, double tol = 0.0, double scale = 1.0) {
  REQUIRE(got.is_cuda());
  REQUIRE(got.dtype() == want.dtype());
  REQUIRE(got.shape() == want.shape());
  const Tensor g = got.to(Device::cpu());
  const Tensor w = want.contiguous();
  REQUIRE(g.is_contiguous());
  if (w.dtype() == DType::kFloat32 || w.dtype() == DType::kFloat64) {
    for (int64_t i = 0; i < w.numel(); ++i) {
      const double a = elem_as_double(w, i);
      const double b = elem_as_double(g, i);
      if (tol == 0.0) {
        REQUIRE(a == b);
      } else {
        REQUIRE(std::abs(a - b) <= tol * (std::abs(a) + scale));
      }
    }
  } else {
    REQUIRE(w.nbytes() == g.nbytes());
    REQUIRE(std::memcmp(w.bytes().data(), g.bytes().data(), w.nbytes()) == 0);
  }
}

Tensor gpu(const Tensor& t) {
  return t.to(Device::cuda());
}

using View = std::function<Tensor(const Tensor&)>;

Tensor id(const Tensor& t) {
  return t;
}

// Operand layouts for binary ops: base shapes and the views taken of them (on each device).
struct BinaryCase {
  const char* name;
  Shape a;
  Shape b;
  View va;
  View vb;
};

std::vector<BinaryCase> binary_cases() {
  return {
      {"odd contiguous", {37, 19}, {37, 19}, id, id},
      {"broadcast", {5, 1, 7}, {3, 1}, id, id},
      {"scalar operand", {}, {13}, id, id},
      {"transposed", {19, 37}, {37, 19}, [](const Tensor& t) { return t.t(); }, id},
      {"sliced",
       {37, 25},
       {40, 19},
       [](const Tensor& t) { return t.slice(1, 3, 22); },
       [](const Tensor& t) {
         return t.slice(0, 2, 39);
       }},
      {"expanded",
       {1, 19},
       {37, 19},
       [](const Tensor& t) {
         return t.expand({37, 19});
       },
       id},
      {"empty", {0, 5}, {0, 5}, id, id},
      {"rank 10 transposed",
       {2, 3, 2, 3, 2, 3, 2, 3, 2, 3},
       {3, 3, 2, 3, 2, 3, 2, 3, 2, 2},
       id,
       [](const Tensor& t) {
         return t.transpose(0, 9);
       }},
  };
}

using BinaryFn = Tensor (*)(const Tensor&, const Tensor&);

void check_binary(BinaryFn f, DType t, std::mt19937_64& rng, double tol = 0.0) {
  for (const auto& c : binary_cases()) {
    INFO(c.name << ", " << veil::core::dtype_name(t));
    const Tensor a = rand_tensor(t, c.a, rng);
    const Tensor b = rand_tensor(t, c.b, rng);
    require_match(f(c.va(a), c.vb(b)), f(c.va(gpu(a)), c.vb(gpu(b))), tol);
  }
}

// Unary ops on a contiguous, a transposed, a sliced and an empty operand.
template <class F>
void check_unary(F f, DType t, std::mt19937_64& rng, double tol = 0.0, bool positive = false) {
  const std::vector<std::pair<Shape, View>> cases = {
      {{41, 17}, id},
      {{17, 41},
       [](const Tensor& x) {
         return x.t();
       }},
      {{9, 30},
       [](const Tensor& x) {
         return x.slice(1, 5, 28);
       }},
      {{0, 3}, id},
      {{}, id},
  };
  for (const auto& [shape, v] : cases) {
    INFO(veil::core::shape_str(shape) << ", " << veil::core::dtype_name(t));
    const Tensor a = rand_tensor(t, shape, rng, positive);
    require_match(f(v(a)), f(v(gpu(a))), tol);
  }
}

}  // namespace

TEST_CASE("cuda tensors: device copies, views and guards", "[cuda_tensor][gpu]") {
  if (no_device()) {
    return;
  }
  std::mt19937_64 rng(101);
  for (DType t : {DType::kRing64, DType::kInt64, DType::kUInt8, DType::kFloat32, DType::kFloat64}) {
    INFO(veil::core::dtype_name(t));
    const Tensor h = rand_tensor(t, {23, 31}, rng);
    const Tensor d = gpu(h);
    REQUIRE(d.is_cuda());
    REQUIRE(d.device() == Device::cuda());
    REQUIRE(d.to(Device::cuda()).shares_storage_with(d));
    require_match(h, d);
    // strided sources on either side
    require_match(h.t(), gpu(h.t()));
    require_match(h.t(), d.t().contiguous());
    require_match(h.slice(1, 4, 29), d.slice(1, 4, 29).clone());
    require_match(h.transpose(0, 1).reshape({31 * 23}), d.transpose(0, 1).reshape({-1}));
    require_match(h.slice(0, 1, 2).expand({5, 31}).contiguous(),
                  d.slice(0, 1, 2).expand({5, 31}).contiguous());
    // round trip of a view back to the host
    require_match(h.t().to(Device::cpu()), gpu(d.t().to(Device::cpu())));
  }
  // full() on the device (a fill kernel) equals full() on the host, for every element size
  require_match(Tensor::full<uint64_t>({7, 9}, 0x8000000000000001ULL),
                Tensor::full<uint64_t>({7, 9}, 0x8000000000000001ULL, Device::cuda()));
  require_match(Tensor::full<double>({65}, -2.5), Tensor::full<double>({65}, -2.5, Device::cuda()));
  require_match(Tensor::full<float>({3, 3}, 0.75F),
                Tensor::full<float>({3, 3}, 0.75F, Device::cuda()));
  require_match(Tensor::full<uint8_t>({5}, 1), Tensor::full<uint8_t>({5}, 1, Device::cuda()));
  REQUIRE(Tensor::full<int64_t>({0, 4}, -1, Device::cuda()).numel() == 0);
  for (DType t : {DType::kRing64, DType::kInt64, DType::kUInt8, DType::kFloat32, DType::kFloat64}) {
    INFO(veil::core::dtype_name(t));
    const Tensor h = rand_tensor(t, {23, 31}, rng);
    const Tensor d = gpu(h);
    // index_select0 with runs, repeats and reversed order
    const std::vector<int64_t> idx{3, 4, 5, 5, 22, 0, 1, 7};
    require_match(h.index_select0(idx), d.index_select0(idx));
    require_match(h.t().index_select0({30, 2, 3}), d.t().index_select0({30, 2, 3}));
    REQUIRE_THROWS_WITH(d.index_select0({23}), Contains("[index_select]"));
    // gather_last (one kernel on the device) with zeros, repeats and a strided source
    const std::vector<int64_t> cols{30, -1, 0, 0, 17, 29};
    require_match(veil::core::gather_last(h, cols), veil::core::gather_last(d, cols));
    require_match(veil::core::gather_last(h.t(), {22, -1, 3}),
                  veil::core::gather_last(d.t(), {22, -1, 3}));
    // dtype conversions on the device
    const bool is_float = t == DType::kFloat32 || t == DType::kFloat64;
    for (DType u :
         {DType::kRing64, DType::kInt64, DType::kUInt8, DType::kFloat32, DType::kFloat64}) {
      if (is_float && u == DType::kUInt8) {
        continue;  // negative floats have no uint8 value (undefined in C++ on the host)
      }
      require_match(h.to(u), d.to(u));
      require_match(h.t().to(u), d.t().to(u));
    }
    // copy_ across devices and within one
    Tensor dst = Tensor::zeros({31, 23}, t, Device::cuda());
    dst.copy_(h.t());
    require_match(h.t(), dst);
    Tensor dst2 = Tensor::zeros({31, 23}, t, Device::cuda());
    dst2.copy_(d.t());
    require_match(h.t(), dst2);
    Tensor host = Tensor::zeros({31, 23}, t);
    host.copy_(d.t());
    require_match(host, gpu(h.t()));
    // empty tensors
    const Tensor e = Tensor::zeros({0, 4}, t, Device::cuda());
    REQUIRE(e.to(Device::cpu()).numel() == 0);
    REQUIRE(gpu(Tensor::zeros({4, 0}, t)).numel() == 0);
  }
  // zeros on the device, item and to_vector as read-outs
  require_match(Tensor::zeros({3, 5}, DType::kRing64),
                Tensor::zeros({3, 5}, DType::kRing64, Device::cuda()));
  const Tensor v = gpu(Tensor::from_vector<int64_t>({4, -9, 17}, {3}));
  REQUIRE(v.to_vector<int64_t>() == std::vector<int64_t>{4, -9, 17});
  REQUIRE(v.slice(0, 1, 2).item<int64_t>() == -9);
  // host-only accessors name the way out
  Tensor r = gpu(Tensor::zeros({2, 3}, DType::kRing64));
  REQUIRE(r.str() == "Tensor(ring64, [2, 3], cuda:0)");
  REQUIRE_THROWS_WITH(r.data<uint64_t>(), Contains(".to(Device::cpu())"));
  REQUIRE_THROWS_AS(r.data<uint64_t>(), veil::ValueError);
  REQUIRE_THROWS_WITH(r.bytes(), Contains(".to(Device::cpu())"));
  REQUIRE_THROWS_WITH(r.mutable_bytes(), Contains("[Tensor::mutable_bytes]"));
  REQUIRE(r.device_data<uint64_t>() != nullptr);
}

TEST_CASE("cuda tensors: mixed devices and host-only ops are refused", "[cuda_tensor][gpu]") {
  if (no_device()) {
    return;
  }
  const Tensor h = Tensor::zeros({2, 3}, DType::kRing64);
  const Tensor d = gpu(h);
  const std::string msg = "expected tensors on one device, got cpu and cuda:0";
  REQUIRE_THROWS_WITH(veil::core::add(h, d), Contains("[add] " + msg));
  REQUIRE_THROWS_WITH(veil::core::bitwise_xor(h, d), Contains("[bitwise_xor] " + msg));
  REQUIRE_THROWS_WITH(veil::core::sub(d, h),
                      Contains("[sub] expected tensors on one device, got cuda:0 and cpu"));
  Tensor dd = d.clone();
  REQUIRE_THROWS_WITH(veil::core::add_(dd, h), Contains("[add_] expected tensors on one device"));
  REQUIRE_THROWS_WITH(veil::core::matmul(h, d.t()), Contains("[matmul] " + msg));
  REQUIRE_THROWS_WITH(veil::core::cat({h, d}, 0), Contains("[cat] " + msg));
  if (kc::device_count() > 1) {
    REQUIRE_THROWS_WITH(veil::core::add(d, d.to(Device::cuda(1))),
                        Contains("got cuda:0 and cuda:1"));
  }
  // dtype checks are those of the CPU
  REQUIRE_THROWS_WITH(veil::core::div(d, d), Contains("[div] expected a floating dtype"));
  REQUIRE_THROWS_WITH(veil::core::shift_left(d, 64), Contains("[shift_left]"));
  // the convolution family (host kernels, a round trip for device tensors) wants one device
  const Tensor x = gpu(Tensor::zeros({1, 1, 4, 4}, DType::kRing64));
  const Tensor w = Tensor::zeros({1, 1, 3, 3}, DType::kRing64);
  REQUIRE_THROWS_WITH(veil::core::conv2d(x, w, {}),
                      Contains("[conv2d] expected operands on one device"));
}

TEST_CASE("cuda tensors: the convolution family equals the CPU's and stays on the device",
          "[cuda_tensor][gpu]") {
  if (no_device()) {
    return;
  }
  namespace c = veil::core;
  std::mt19937_64 rng(11);
  auto ring = [&](const veil::core::Shape& s) {
    Tensor t = Tensor::empty(s, DType::kRing64);
    for (int64_t i = 0; i < t.numel(); ++i) {
      t.data<uint64_t>()[i] = rng();
    }
    return t;
  };
  const Tensor x = ring({2, 4, 9, 7});
  const Tensor w = ring({6, 2, 3, 2});
  // strided, padded, grouped; then dilated with asymmetric padding; then the plain LeNet case
  for (const c::Conv2dParams& p :
       {c::Conv2dParams{.stride_h = 2, .stride_w = 1, .pad_h = 1, .pad_w = 0, .groups = 2},
        c::Conv2dParams{.pad_h = 0, .pad_w = 2, .dilation_h = 2, .dilation_w = 3, .groups = 2},
        c::Conv2dParams{.groups = 2}}) {
    INFO(c::conv2d_params_str(p));
    const Tensor y = c::conv2d(x, w, p);
    const Tensor yd = c::conv2d(gpu(x), gpu(w), p);
    CHECK(yd.is_cuda());
    CHECK(yd.to(Device::cpu()).to_vector<uint64_t>() == y.to_vector<uint64_t>());
    const Tensor dy = ring(y.shape());
    const Tensor dx = c::conv2d_input_grad(gpu(dy), gpu(w), p, {9, 7});
    const Tensor dw = c::conv2d_weight_grad(gpu(x), gpu(dy), p, {3, 2});
    CHECK((dx.is_cuda() && dw.is_cuda()));
    CHECK(dx.to(Device::cpu()).to_vector<uint64_t>() ==
          c::conv2d_input_grad(dy, w, p, {9, 7}).to_vector<uint64_t>());
    CHECK(dw.to(Device::cpu()).to_vector<uint64_t>() ==
          c::conv2d_weight_grad(x, dy, p, {3, 2}).to_vector<uint64_t>());
  }
  // the pooling windows (overlapping, strided, padded, dilated) and their fold (the scatter-add
  // of the pooling backward), the zero extension of conv_transpose2d, and conv_transpose2d
  for (const c::Conv2dParams& p :
       {c::Conv2dParams{.stride_h = 1, .stride_w = 2, .pad_h = 1, .pad_w = 1},
        c::Conv2dParams{.stride_h = 2, .stride_w = 2},
        c::Conv2dParams{.stride_h = 2, .stride_w = 1, .pad_h = 1, .dilation_h = 2}}) {
    INFO(c::conv2d_params_str(p));
    const Tensor win = c::extract_windows(x, 3, 2, p, "max_pool2d");
    const Tensor wind = c::extract_windows(gpu(x), 3, 2, p, "max_pool2d");
    CHECK(wind.is_cuda());
    CHECK(wind.to(Device::cpu()).to_vector<uint64_t>() == win.to_vector<uint64_t>());
    const Tensor g = ring(win.shape());
    const Tensor folded = c::fold_windows(gpu(g), {9, 7}, 3, 2, p, "max_pool2d");
    CHECK(folded.is_cuda());
    CHECK(folded.to(Device::cpu()).to_vector<uint64_t>() ==
          c::fold_windows(g, {9, 7}, 3, 2, p, "max_pool2d").to_vector<uint64_t>());
  }
  for (DType t : {DType::kRing64, DType::kFloat64}) {
    const Tensor xf = t == DType::kRing64 ? x : x.to(DType::kFloat64);
    const Tensor ext = c::zero_extend_hw(gpu(xf), 11, 8, "conv_transpose2d");
    CHECK(ext.is_cuda());
    const Tensor ext_host = ext.to(Device::cpu());
    const Tensor want = c::zero_extend_hw(xf, 11, 8, "conv_transpose2d");
    CHECK(ext_host.shape() == want.shape());
    CHECK(std::ranges::equal(ext_host.bytes(), want.bytes()));
  }
  const c::ConvTranspose2dParams tp{
      .stride_h = 2, .stride_w = 3, .pad_h = 1, .output_pad_h = 1, .output_pad_w = 2, .groups = 2};
  const Tensor wt = ring({4, 3, 3, 2});
  const Tensor yt = c::conv_transpose2d(gpu(x), gpu(wt), tp);
  CHECK(yt.is_cuda());
  CHECK(yt.to(Device::cpu()).to_vector<uint64_t>() ==
        c::conv_transpose2d(x, wt, tp).to_vector<uint64_t>());
  // float64 (public layers, the plaintext twin): cuDNN where it loads, else im2col + cuBLAS; equal
  // to the CPU's loops up to the summation order
  {
    std::uniform_real_distribution<double> unit(-1.0, 1.0);
    auto real = [&](const veil::core::Shape& s) {
      Tensor t = Tensor::empty(s, DType::kFloat64);
      for (int64_t i = 0; i < t.numel(); ++i) {
        t.data<double>()[i] = unit(rng);
      }
      return t;
    };
    const auto close = [](const Tensor& got, const Tensor& want) {
      const std::vector<double> g = got.to(Device::cpu()).to_vector<double>();
      const std::vector<double> e = want.to_vector<double>();
      double worst = 0;
      for (std::size_t i = 0; i < e.size(); ++i) {
        worst = std::max(worst, std::abs(g[i] - e[i]));
      }
      return g.size() == e.size() && worst <= 1e-12;
    };
    const Tensor xf = real({2, 4, 9, 7});
    const Tensor wf = real({6, 2, 3, 2});
    for (const c::Conv2dParams& p :
         {c::Conv2dParams{.stride_h = 2, .stride_w = 1, .pad_h = 1, .pad_w = 0, .groups = 2},
          c::Conv2dParams{.pad_h = 0, .pad_w = 2, .dilation_h = 2, .dilation_w = 3, .groups = 2}}) {
      INFO(c::conv2d_params_str(p) << " (float64)");
      const Tensor y = c::conv2d(xf, wf, p);
      const Tensor yd = c::conv2d(gpu(xf), gpu(wf), p);
      CHECK(yd.is_cuda());
      CHECK(close(yd, y));
      const Tensor dy = real(y.shape());
      CHECK(close(c::conv2d_input_grad(gpu(dy), gpu(wf), p, {9, 7}),
                  c::conv2d_input_grad(dy, wf, p, {9, 7})));
      CHECK(close(c::conv2d_weight_grad(gpu(xf), gpu(dy), p, {3, 2}),
                  c::conv2d_weight_grad(xf, dy, p, {3, 2})));
    }
  }
  // the index-table windows of the adaptive poolings (overlapping windows: 9 -> 4 rows, 7 -> 5
  // columns, zero-filled; and upsampling, 7 -> 9 columns, where windows share input elements,
  // with repeated entries) and their adjoint scatter, for ring and float64
  for (const auto& [oh, ow, fill] :
       {std::tuple<int64_t, int64_t, c::WindowFill>{4, 5, c::WindowFill::kZero},
        {2, 9, c::WindowFill::kRepeat}}) {
    const c::WindowTable t = c::adaptive_pool2d_windows(9, 7, oh, ow, fill, "adaptive_pool2d");
    INFO("adaptive " << oh << "x" << ow);
    for (DType dt : {DType::kRing64, DType::kFloat64}) {
      const Tensor xs = dt == DType::kRing64 ? x : x.to(DType::kFloat64);
      const Tensor win = c::gather_windows(gpu(xs), t);
      CHECK(win.is_cuda());
      CHECK(std::ranges::equal(win.to(Device::cpu()).bytes(), c::gather_windows(xs, t).bytes()));
      const Tensor g = ring(win.shape());
      const Tensor gs = dt == DType::kRing64 ? g : g.to(DType::kFloat64);
      const Tensor back = c::scatter_windows(gpu(gs), t);
      const Tensor want = c::scatter_windows(gs, t);
      CHECK(back.is_cuda());
      CHECK(back.shape() == want.shape());
      CHECK(std::ranges::equal(back.to(Device::cpu()).bytes(), want.bytes()));
    }
  }
  // a view whose elements overlap cannot take a scatter-add
  Tensor base = gpu(ring({4, 4}));
  Tensor overlapping = base.as_strided({3, 2}, {1, 1});
  CHECK_THROWS_WITH(c::cuda_ops::add_into_view(overlapping, gpu(ring({3, 2})), "col2im"),
                    Contains("[col2im] expected a view that reaches each element once"));
  // a view that reaches outside its storage is refused
  CHECK_THROWS_WITH(x.as_strided({2, 2}, {1, 1000}), Contains("[as_strided]"));
}

TEST_CASE("cuda tensors: elementwise ops match the CPU", "[cuda_tensor][gpu]") {
  if (no_device()) {
    return;
  }
  namespace c = veil::core;
  std::mt19937_64 rng(7);
  for (DType t : {DType::kRing64, DType::kInt64, DType::kFloat32, DType::kFloat64}) {
    check_binary(c::add, t, rng);
    check_binary(c::sub, t, rng);
    check_binary(c::mul, t, rng);
    check_unary([](const Tensor& a) { return c::neg(a); }, t, rng);
  }
  for (DType t : {DType::kFloat32, DType::kFloat64}) {
    check_binary(c::div, t, rng);
    const double s = -1.7;
    check_unary([s](const Tensor& a) { return c::mul_scalar(a, s); }, t, rng);
    check_unary([s](const Tensor& a) { return c::add_scalar(a, s); }, t, rng);
    check_unary([](const Tensor& a) { return c::relu(a); }, t, rng);
    check_unary([](const Tensor& a) { return c::step(a); }, t, rng);
    // exp/log: the device's libm may differ by an ulp or two
    const double tol = t == DType::kFloat64 ? 1e-12 : 1e-6;
    check_unary([](const Tensor& a) { return c::exp(a); }, t, rng, tol);
    check_unary([](const Tensor& a) { return c::log(a); }, t, rng, tol, true);
  }
  for (DType t : {DType::kRing64, DType::kInt64, DType::kUInt8}) {
    check_binary(c::bitwise_xor, t, rng);
    check_binary(c::bitwise_and, t, rng);
    check_unary([](const Tensor& a) { return c::bitwise_not(a); }, t, rng);
  }
  const uint64_t s = rng();
  check_unary([s](const Tensor& a) { return c::mul_scalar(a, s); }, DType::kRing64, rng);
  check_unary([s](const Tensor& a) { return c::add_scalar(a, s); }, DType::kRing64, rng);
  for (int bits : {0, 1, 16, 37, 63}) {
    INFO("bits " << bits);
    check_unary([bits](const Tensor& a) { return c::shift_left(a, bits); }, DType::kRing64, rng);
    check_unary([bits](const Tensor& a) { return c::shift_right_arith(a, bits); }, DType::kRing64,
                rng);
    check_unary([bits](const Tensor& a) { return c::shift_right_logical(a, bits); }, DType::kRing64,
                rng);
  }
  // in place, with broadcast and strided right-hand sides
  for (DType t : {DType::kRing64, DType::kInt64, DType::kFloat64}) {
    const Tensor a = rand_tensor(t, {29, 13}, rng);
    const Tensor b = rand_tensor(t, {13}, rng);
    const Tensor bt = rand_tensor(t, {13, 29}, rng);
    Tensor ha = a.clone();
    Tensor da = gpu(a);
    c::add_(ha, b);
    c::add_(da, gpu(b));
    require_match(ha, da);
    c::sub_(ha, bt.t());
    c::sub_(da, gpu(bt).t());
    require_match(ha, da);
    REQUIRE_THROWS_WITH(c::add_(da, gpu(rand_tensor(t, {2, 29, 13}, rng))),
                        Contains("[add_] cannot broadcast"));
    Tensor view = gpu(a).t();
    REQUIRE_THROWS_WITH(c::add_(view, gpu(bt)), Contains("in-place target must be contiguous"));
  }
}

TEST_CASE("cuda tensors: reductions, cat and one_hot match the CPU", "[cuda_tensor][gpu]") {
  if (no_device()) {
    return;
  }
  namespace c = veil::core;
  std::mt19937_64 rng(11);
  const std::vector<std::pair<Shape, View>> cases = {
      {{7, 33, 5}, id},
      {{5, 33, 7},
       [](const Tensor& x) {
         return x.transpose(0, 2);
       }},
      {{7, 40, 5},
       [](const Tensor& x) {
         return x.slice(1, 3, 36);
       }},
      {{4, 0, 3}, id},
  };
  for (DType t : {DType::kRing64, DType::kInt64, DType::kFloat32, DType::kFloat64}) {
    const bool is_float = t == DType::kFloat32 || t == DType::kFloat64;
    const double eps = t == DType::kFloat32 ? 0x1p-23 : 0x1p-52;
    for (const auto& [shape, v] : cases) {
      INFO(c::shape_str(shape) << ", " << c::dtype_name(t));
      const Tensor a = rand_tensor(t, shape, rng);
      const Tensor da = gpu(a);
      // float sums may add in another order: |error| <= n eps sum|x| with |x| <= 4
      const double n_sum = static_cast<double>(std::max<int64_t>(a.numel(), 1));
      for (int64_t dim : {0, 1, -1}) {
        const double tol = is_float ? 4.0 * 40.0 * eps : 0.0;
        require_match(c::sum(v(a), dim), c::sum(v(da), dim), tol, 4.0 * 40.0);
        require_match(c::sum(v(a), dim, true), c::sum(v(da), dim, true), tol, 4.0 * 40.0);
      }
      require_match(c::sum_all(v(a)), c::sum_all(v(da)), is_float ? 4.0 * n_sum * eps : 0.0,
                    4.0 * n_sum);
      if (a.numel() > 0) {
        const Tensor s = rand_small(t, shape, rng);
        const Tensor ds = gpu(s);
        for (int64_t dim : {0, 1, 2}) {
          require_match(c::max(v(a), dim), c::max(v(da), dim));
          require_match(c::max(v(s), dim, true), c::max(v(ds), dim, true));
          require_match(c::argmax(v(s), dim), c::argmax(v(ds), dim));
          require_match(c::argmax(v(a), dim, true), c::argmax(v(da), dim, true));
        }
      } else {
        REQUIRE_THROWS_WITH(c::max(v(da), 1), Contains("[max] cannot reduce an empty"));
      }
    }
  }
  // ring max compares as int64
  const Tensor big = Tensor::from_vector<uint64_t>(
      {1, std::numeric_limits<uint64_t>::max(), 5, uint64_t{1} << 63}, {2, 2});
  require_match(c::max(big, 1), c::max(gpu(big), 1));
  require_match(c::argmax(big, 0), c::argmax(gpu(big), 0));
  // cat along every dim, with views and an empty piece
  for (DType t : {DType::kRing64, DType::kUInt8, DType::kFloat32}) {
    const Tensor a = rand_tensor(t, {3, 4, 5}, rng);
    const Tensor b = rand_tensor(t, {5, 4, 3}, rng);
    for (int64_t dim : {0, 1, 2, -1}) {
      Shape sb = a.shape();
      sb[static_cast<std::size_t>(dim < 0 ? 2 : dim)] = 2;
      Shape se = a.shape();
      se[static_cast<std::size_t>(dim < 0 ? 2 : dim)] = 0;
      const Tensor x = rand_tensor(t, sb, rng);
      const Tensor e = Tensor::zeros(se, t);
      require_match(c::cat({a, b.transpose(0, 2), x, e}, dim),
                    c::cat({gpu(a), gpu(b).transpose(0, 2), gpu(x), gpu(e)}, dim));
    }
    const Tensor lead = rand_tensor(t, {1, 3, 4}, rng);
    require_match(c::cat({lead, lead.slice(1, 1, 2)}, 1),
                  c::cat({gpu(lead), gpu(lead).slice(1, 1, 2)}, 1));
  }
  const Tensor labels = Tensor::from_vector<int64_t>({3, 0, 9, 3, 1}, {5});
  require_match(c::one_hot(labels, 10), c::one_hot(gpu(labels), 10));
  REQUIRE_THROWS_WITH(c::one_hot(gpu(labels), 4), Contains("[one_hot] label 9"));
}

TEST_CASE("cuda tensors: matmul matches the CPU", "[cuda_tensor][gpu]") {
  if (no_device()) {
    return;
  }
  namespace c = veil::core;
  std::mt19937_64 rng(13);
  struct Case {
    const char* name;
    int64_t m, k, n;
    View va, vb;
    Shape sa, sb;
  };
  const View tr = [](const Tensor& x) {
    return x.t();
  };
  const std::vector<Case> cases = {
      {"odd", 37, 61, 23, id, id, {37, 61}, {61, 23}},
      {"a transposed", 37, 61, 23, tr, id, {61, 37}, {61, 23}},
      {"b transposed", 37, 61, 23, id, tr, {37, 61}, {23, 61}},
      {"both transposed", 17, 9, 33, tr, tr, {9, 17}, {33, 9}},
      {"sliced rows and columns",
       20,
       30,
       11,
       [](const Tensor& x) { return x.slice(1, 2, 32); },
       [](const Tensor& x) { return x.slice(0, 1, 31).slice(1, 0, 11); },
       {20, 40},
       {35, 12}},
      {"broadcast operand (made contiguous)",
       6,
       5,
       4,
       [](const Tensor& x) {
         return x.expand({6, 5});
       },
       id,
       {1, 5},
       {5, 4}},
      {"vector shapes", 1, 9, 1, id, id, {1, 9}, {9, 1}},
      {"k = 0", 3, 0, 4, id, id, {3, 0}, {0, 4}},
      {"m = 0", 0, 5, 4, id, id, {0, 5}, {5, 4}},
      {"k > 2^16, small m and n", 3, 70001, 5, id, tr, {3, 70001}, {5, 70001}},
  };
  for (DType t : {DType::kRing64, DType::kFloat64, DType::kFloat32}) {
    for (const auto& cs : cases) {
      INFO(cs.name << ", " << c::dtype_name(t));
      const Tensor a = rand_tensor(t, cs.sa, rng);
      const Tensor b = rand_tensor(t, cs.sb, rng);
      const Tensor want = c::matmul(cs.va(a), cs.vb(b));
      REQUIRE(want.shape() == Shape{cs.m, cs.n});
      const Tensor got = c::matmul(cs.va(gpu(a)), cs.vb(gpu(b)));
      if (t == DType::kRing64) {
        require_match(want, got);
      } else {
        // |error| <= 2 k eps sum|a||b| with |a|, |b| <= 4
        const double eps = t == DType::kFloat32 ? 0x1p-23 : 0x1p-52;
        const double bound = 16.0 * static_cast<double>(std::max<int64_t>(cs.k, 1));
        require_match(want, got, 2.0 * static_cast<double>(std::max<int64_t>(cs.k, 1)) * eps,
                      bound);
      }
    }
  }
  REQUIRE_THROWS_WITH(c::matmul(gpu(Tensor::zeros({2, 2}, DType::kInt64)),
                                gpu(Tensor::zeros({2, 2}, DType::kInt64))),
                      Contains("[matmul] expected float64, float32 or ring64"));
  REQUIRE_THROWS_WITH(c::matmul(gpu(Tensor::zeros({2, 3}, DType::kRing64)),
                                gpu(Tensor::zeros({2, 3}, DType::kRing64))),
                      Contains("[matmul] inner dimensions differ"));
}
