#include "core/conv.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "core/error.h"
#include "core/ops.h"

namespace veil::core {

namespace {

// Output extent of one spatial dimension, or a negative value when the window does not fit.
int64_t out_extent(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation) {
  const int64_t span = dilation * (k - 1) + 1;
  const int64_t padded = in + 2 * pad;
  if (span > padded) {
    return -1;
  }
  return (padded - span) / stride + 1;
}

void check_params(const Conv2dParams& p, const char* op) {
  VEIL_CHECK(p.stride_h >= 1 && p.stride_w >= 1 && p.dilation_h >= 1 && p.dilation_w >= 1 &&
                 p.pad_h >= 0 && p.pad_w >= 0 && p.groups >= 1,
             "[{}] expected strides, dilations and groups >= 1 and pads >= 0, got {}", op,
             conv2d_params_str(p));
}

// Spatial output extents [H', W'] for a kh x kw window on x [N, C, H, W]; `window` names the
// window in the error message.
std::pair<int64_t, int64_t> window_extents(const Shape& x,
                                           int64_t kh,
                                           int64_t kw,
                                           const Conv2dParams& p,
                                           const char* op,
                                           const std::string& window) {
  const int64_t oh = out_extent(x[2], kh, p.stride_h, p.pad_h, p.dilation_h);
  const int64_t ow = out_extent(x[3], kw, p.stride_w, p.pad_w, p.dilation_w);
  VEIL_CHECK(oh >= 1 && ow >= 1,
             "[{}] expected the dilated window to fit in the padded input, got {} with {} on x {} "
             "(spatial {}x{} after padding, window {}x{} after dilation)",
             op, window, conv2d_params_str(p), shape_str(x), x[2] + 2 * p.pad_h, x[3] + 2 * p.pad_w,
             p.dilation_h * (kh - 1) + 1, p.dilation_w * (kw - 1) + 1);
  return {oh, ow};
}

// cols[k, n L + l] = x_pad[n, c0 + c, i sh + u dh, j sw + v dw] with k = (c kh + u) kw + v and
// l = i W' + j, for the channels [c0, c0 + cg) of a contiguous x.
template <class T>
void im2col(const T* x,
            const Shape& xs,
            int64_t c0,
            int64_t cg,
            int64_t kh,
            int64_t kw,
            int64_t oh,
            int64_t ow,
            const Conv2dParams& p,
            T* cols) {
  const int64_t n_batch = xs[0];
  const int64_t c_all = xs[1];
  const int64_t h = xs[2];
  const int64_t w = xs[3];
  const int64_t l_all = oh * ow;
  const int64_t row = n_batch * l_all;
  for (int64_t c = 0; c < cg; ++c) {
    for (int64_t u = 0; u < kh; ++u) {
      for (int64_t v = 0; v < kw; ++v) {
        T* dst = cols + ((c * kh + u) * kw + v) * row;
        for (int64_t n = 0; n < n_batch; ++n) {
          const T* plane = x + (n * c_all + c0 + c) * h * w;
          for (int64_t i = 0; i < oh; ++i) {
            const int64_t y = i * p.stride_h + u * p.dilation_h - p.pad_h;
            for (int64_t j = 0; j < ow; ++j) {
              const int64_t xx = j * p.stride_w + v * p.dilation_w - p.pad_w;
              const bool inside = y >= 0 && y < h && xx >= 0 && xx < w;
              dst[n * l_all + i * ow + j] = inside ? plane[y * w + xx] : T{0};
            }
          }
        }
      }
    }
  }
}

template <class T>
Tensor conv2d_impl(const Tensor& x_in, const Tensor& w_in, const Conv2dParams& p) {
  const Shape out_shape = conv2d_out_shape(x_in.shape(), w_in.shape(), p);
  const Tensor x = x_in.contiguous();
  const Tensor w = w_in.contiguous();
  const int64_t n_batch = out_shape[0];
  const int64_t c_out = out_shape[1];
  const int64_t oh = out_shape[2];
  const int64_t ow = out_shape[3];
  const int64_t l_all = oh * ow;
  const int64_t cg = w.shape()[1];
  const int64_t kh = w.shape()[2];
  const int64_t kw = w.shape()[3];
  const int64_t cog = c_out / p.groups;
  const int64_t k = cg * kh * kw;
  Tensor out = Tensor::empty(out_shape, x.dtype());
  T* po = out.data<T>();
  Tensor cols = Tensor::empty({k, n_batch * l_all}, x.dtype());
  for (int64_t g = 0; g < p.groups; ++g) {
    im2col<T>(x.data<T>(), x.shape(), g * cg, cg, kh, kw, oh, ow, p, cols.data<T>());
    const Tensor wg = w.slice(0, g * cog, (g + 1) * cog).reshape({cog, k});
    const Tensor res = matmul(wg, cols).contiguous();  // [cog, N L]
    const T* pr = res.data<T>();
    for (int64_t o = 0; o < cog; ++o) {
      for (int64_t n = 0; n < n_batch; ++n) {
        const T* src = pr + o * n_batch * l_all + n * l_all;
        T* dst = po + (n * c_out + g * cog + o) * l_all;
        std::copy(src, src + l_all, dst);
      }
    }
  }
  return out;
}

template <class T>
Tensor windows_impl(
    const Tensor& x_in, int64_t kh, int64_t kw, const Conv2dParams& p, int64_t oh, int64_t ow) {
  const Tensor x = x_in.contiguous();
  const Shape& xs = x.shape();
  const int64_t planes = xs[0] * xs[1];
  const int64_t h = xs[2];
  const int64_t w = xs[3];
  Tensor out = Tensor::empty({xs[0], xs[1], oh, ow, kh * kw}, x.dtype());
  T* po = out.data<T>();
  const T* px = x.data<T>();
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* plane = px + pl * h * w;
    for (int64_t i = 0; i < oh; ++i) {
      for (int64_t j = 0; j < ow; ++j) {
        for (int64_t u = 0; u < kh; ++u) {
          const int64_t y = i * p.stride_h + u * p.dilation_h - p.pad_h;
          for (int64_t v = 0; v < kw; ++v) {
            const int64_t xx = j * p.stride_w + v * p.dilation_w - p.pad_w;
            const bool inside = y >= 0 && y < h && xx >= 0 && xx < w;
            *po++ = inside ? plane[y * w + xx] : T{0};
          }
        }
      }
    }
  }
  return out;
}

}  // namespace

std::string conv2d_params_str(const Conv2dParams& p) {
  return fmt::format("stride {}x{}, pad {}x{}, dilation {}x{}, groups {}", p.stride_h, p.stride_w,
                     p.pad_h, p.pad_w, p.dilation_h, p.dilation_w, p.groups);
}

Shape conv2d_out_shape(const Shape& x, const Shape& w, const Conv2dParams& p) {
  VEIL_CHECK(x.size() == 4 && w.size() == 4,
             "[conv2d] expected x [N, C_in, H, W] and w [C_out, C_in/groups, kh, kw], got x {} "
             "and w {}",
             shape_str(x), shape_str(w));
  check_params(p, "conv2d");
  VEIL_CHECK(x[1] % p.groups == 0 && w[0] % p.groups == 0,
             "[conv2d] expected groups = {} to divide C_in and C_out, got x {} and w {}", p.groups,
             shape_str(x), shape_str(w));
  const int64_t cg = x[1] / p.groups;
  VEIL_CHECK(w[1] == cg && cg >= 1 && w[0] >= 1 && w[2] >= 1 && w[3] >= 1,
             "[conv2d] expected w [C_out, C_in/groups = {}, kh, kw] for x {}, got w {}", cg,
             shape_str(x), shape_str(w));
  const auto [oh, ow] = window_extents(x, w[2], w[3], p, "conv2d", "w " + shape_str(w));
  return {x[0], w[0], oh, ow};
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Conv2dParams& p) {
  VEIL_CHECK(
      x.dtype() == w.dtype() && (x.dtype() == DType::kFloat64 || x.dtype() == DType::kRing64),
      "[conv2d] expected float64 or ring64 operands of equal dtype, got {} and {}", x.str(),
      w.str());
  if (x.dtype() == DType::kRing64) {
    return conv2d_impl<uint64_t>(x, w, p);
  }
  return conv2d_impl<double>(x, w, p);
}

Tensor extract_windows(
    const Tensor& x, int64_t kh, int64_t kw, const Conv2dParams& p, const char* op) {
  VEIL_CHECK(x.dim() == 4, "[{}] expected x [N, C, H, W], got {}", op, shape_str(x.shape()));
  VEIL_CHECK(kh >= 1 && kw >= 1, "[{}] expected a window of at least 1x1, got {}x{}", op, kh, kw);
  check_params(p, op);
  const auto [oh, ow] =
      window_extents(x.shape(), kh, kw, p, op, fmt::format("a {}x{} window", kh, kw));
  switch (x.dtype()) {
    case DType::kRing64:
      return windows_impl<uint64_t>(x, kh, kw, p, oh, ow);
    case DType::kFloat64:
      return windows_impl<double>(x, kh, kw, p, oh, ow);
    case DType::kInt64:
      return windows_impl<int64_t>(x, kh, kw, p, oh, ow);
    default:
      break;
  }
  throw ValueError(
      fmt::format("[{}] expected a float64, int64 or ring64 tensor, got {}", op, x.str()));
}

}  // namespace veil::core
