#pragma once
// Naive references for the convolution family and pooling, written from the PyTorch definitions
// (independent of core/conv.cpp's im2col, col2im and window tables): each loops over every
// product term of the forward op and accumulates the output and, for an upstream gradient g, both
// input gradients. Templated on the element type so ring64 results can be compared bit-exactly.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/conv.h"
#include "core/tensor.h"

namespace veil::testing {

/// Output and gradients of a bilinear op y = f(x, w) for the upstream gradient g.
struct BilinearRef {
  core::Tensor y;
  core::Tensor dx;
  core::Tensor dw;
};

/// Transposed 2-D convolution by its scatter definition:
/// y[n, g C_og + o, i s - p + u d, j s - p + v d] += x[n, g C_ig + c, i, j] w[g C_ig + c, o, u, v].
/// `g` (shape of y) may be undefined: then dx and dw are left undefined.
template <class T>
BilinearRef naive_conv_transpose2d(const core::Tensor& x_in,
                                   const core::Tensor& w_in,
                                   const core::ConvTranspose2dParams& p,
                                   const core::Tensor& g_in = {}) {
  const core::Tensor x = x_in.contiguous();
  const core::Tensor w = w_in.contiguous();
  const core::Shape& xs = x.shape();
  const core::Shape& ws = w.shape();
  const int64_t cig = xs[1] / p.groups;
  const int64_t cog = ws[1];
  const int64_t c_out = cog * p.groups;
  const int64_t oh =
      (xs[2] - 1) * p.stride_h - 2 * p.pad_h + p.dilation_h * (ws[2] - 1) + p.output_pad_h + 1;
  const int64_t ow =
      (xs[3] - 1) * p.stride_w - 2 * p.pad_w + p.dilation_w * (ws[3] - 1) + p.output_pad_w + 1;
  BilinearRef r;
  r.y = core::Tensor::zeros({xs[0], c_out, oh, ow}, x.dtype());
  const bool grads = g_in.defined();
  core::Tensor g;
  if (grads) {
    g = g_in.contiguous();
    r.dx = core::Tensor::zeros(xs, x.dtype());
    r.dw = core::Tensor::zeros(ws, x.dtype());
  }
  const T* px = x.data<T>();
  const T* pw = w.data<T>();
  T* py = r.y.data<T>();
  for (int64_t n = 0; n < xs[0]; ++n) {
    for (int64_t ci = 0; ci < xs[1]; ++ci) {
      const int64_t grp = ci / cig;
      for (int64_t i = 0; i < xs[2]; ++i) {
        for (int64_t j = 0; j < xs[3]; ++j) {
          const int64_t xi = ((n * xs[1] + ci) * xs[2] + i) * xs[3] + j;
          for (int64_t o = 0; o < cog; ++o) {
            for (int64_t u = 0; u < ws[2]; ++u) {
              const int64_t yy = i * p.stride_h - p.pad_h + u * p.dilation_h;
              for (int64_t v = 0; v < ws[3]; ++v) {
                const int64_t xx = j * p.stride_w - p.pad_w + v * p.dilation_w;
                if (yy < 0 || yy >= oh || xx < 0 || xx >= ow) {
                  continue;
                }
                const int64_t yi = ((n * c_out + grp * cog + o) * oh + yy) * ow + xx;
                const int64_t wi = ((ci * ws[1] + o) * ws[2] + u) * ws[3] + v;
                py[yi] += px[xi] * pw[wi];
                if (grads) {
                  r.dx.data<T>()[xi] += g.data<T>()[yi] * pw[wi];
                  r.dw.data<T>()[wi] += g.data<T>()[yi] * px[xi];
                }
              }
            }
          }
        }
      }
    }
  }
  return r;
}

/// 1-D convolution by its definition:
/// y[n, o, l] = sum_{c, u} x[n, g C_ig + c, l s - p + u d] w[o, c, u], g = o / (C_out / groups).
template <class T>
BilinearRef naive_conv1d(const core::Tensor& x_in,
                         const core::Tensor& w_in,
                         const core::Conv1dParams& p,
                         const core::Tensor& g_in = {}) {
  const core::Tensor x = x_in.contiguous();
  const core::Tensor w = w_in.contiguous();
  const core::Shape& xs = x.shape();
  const core::Shape& ws = w.shape();
  const int64_t len = (xs[2] + 2 * p.padding - p.dilation * (ws[2] - 1) - 1) / p.stride + 1;
  const int64_t cog = ws[0] / p.groups;
  BilinearRef r;
  r.y = core::Tensor::zeros({xs[0], ws[0], len}, x.dtype());
  const bool grads = g_in.defined();
  core::Tensor g;
  if (grads) {
    g = g_in.contiguous();
    r.dx = core::Tensor::zeros(xs, x.dtype());
    r.dw = core::Tensor::zeros(ws, x.dtype());
  }
  const T* px = x.data<T>();
  const T* pw = w.data<T>();
  T* py = r.y.data<T>();
  for (int64_t n = 0; n < xs[0]; ++n) {
    for (int64_t o = 0; o < ws[0]; ++o) {
      const int64_t grp = o / cog;
      for (int64_t l = 0; l < len; ++l) {
        const int64_t yi = (n * ws[0] + o) * len + l;
        for (int64_t c = 0; c < ws[1]; ++c) {
          for (int64_t u = 0; u < ws[2]; ++u) {
            const int64_t pos = l * p.stride - p.padding + u * p.dilation;
            if (pos < 0 || pos >= xs[2]) {
              continue;
            }
            const int64_t xi = (n * xs[1] + grp * ws[1] + c) * xs[2] + pos;
            const int64_t wi = (o * ws[1] + c) * ws[2] + u;
            py[yi] += px[xi] * pw[wi];
            if (grads) {
              r.dx.data<T>()[xi] += g.data<T>()[yi] * pw[wi];
              r.dw.data<T>()[wi] += g.data<T>()[yi] * px[xi];
            }
          }
        }
      }
    }
  }
  return r;
}

/// One pooling window: the in-plane offsets of its input elements and the divisor of average
/// pooling.
struct RefWindow {
  std::vector<int64_t> taps;
  double divisor = 1;
};

/// Windows of a pooling with p on an h x w plane (PyTorch: floor mode; count_include_pad divides
/// by the kernel area).
inline std::vector<RefWindow> ref_pool_windows(int64_t h, int64_t w, const core::Pool2dParams& p) {
  const int64_t oh = (h + 2 * p.pad_h - p.dilation_h * (p.kernel_h - 1) - 1) / p.stride_h + 1;
  const int64_t ow = (w + 2 * p.pad_w - p.dilation_w * (p.kernel_w - 1) - 1) / p.stride_w + 1;
  std::vector<RefWindow> out;
  for (int64_t i = 0; i < oh; ++i) {
    for (int64_t j = 0; j < ow; ++j) {
      RefWindow win;
      for (int64_t u = 0; u < p.kernel_h; ++u) {
        for (int64_t v = 0; v < p.kernel_w; ++v) {
          const int64_t y = i * p.stride_h - p.pad_h + u * p.dilation_h;
          const int64_t x = j * p.stride_w - p.pad_w + v * p.dilation_w;
          if (y >= 0 && y < h && x >= 0 && x < w) {
            win.taps.push_back(y * w + x);
          }
        }
      }
      win.divisor = p.count_include_pad ? static_cast<double>(p.kernel_h * p.kernel_w)
                                        : static_cast<double>(win.taps.size());
      out.push_back(win);
    }
  }
  return out;
}

/// Windows of adaptive pooling from h x w to oh x ow: rows [floor(i h / oh), ceil((i + 1) h / oh))
/// computed in floating point, columns likewise; divisor = the window's size.
inline std::vector<RefWindow> ref_adaptive_windows(int64_t h, int64_t w, int64_t oh, int64_t ow) {
  auto lo = [](int64_t i, int64_t in, int64_t out) {
    return static_cast<int64_t>(std::floor(static_cast<double>(i * in) / static_cast<double>(out)));
  };
  auto hi = [](int64_t i, int64_t in, int64_t out) {
    return static_cast<int64_t>(
        std::ceil(static_cast<double>((i + 1) * in) / static_cast<double>(out)));
  };
  std::vector<RefWindow> out;
  for (int64_t i = 0; i < oh; ++i) {
    for (int64_t j = 0; j < ow; ++j) {
      RefWindow win;
      for (int64_t y = lo(i, h, oh); y < hi(i, h, oh); ++y) {
        for (int64_t x = lo(j, w, ow); x < hi(j, w, ow); ++x) {
          win.taps.push_back(y * w + x);
        }
      }
      win.divisor = static_cast<double>(win.taps.size());
      out.push_back(win);
    }
  }
  return out;
}

/// Pooling of float64 x [N, C, H, W] over `windows` (one per output position, row-major over
/// [oh, ow]): average (sum / divisor) or max (first maximum); dx for the upstream gradient g
/// [N, C, oh, ow] (to every tap / divisor, or to the maximum). Also reports the smallest gap
/// between a window's maximum and its runner-up (tests keep it well above the fixed-point error).
struct PoolRef {
  core::Tensor y;
  core::Tensor dx;
  double max_gap = 1e300;
};

inline PoolRef ref_pool(const core::Tensor& x_in,
                        const std::vector<RefWindow>& windows,
                        int64_t oh,
                        int64_t ow,
                        bool is_max,
                        const core::Tensor& g_in) {
  const core::Tensor x = x_in.contiguous();
  const core::Tensor g = g_in.contiguous();
  const core::Shape& xs = x.shape();
  PoolRef r;
  r.y = core::Tensor::zeros({xs[0], xs[1], oh, ow}, core::DType::kFloat64);
  r.dx = core::Tensor::zeros(xs, core::DType::kFloat64);
  const double* px = x.data<double>();
  const double* pg = g.data<double>();
  double* py = r.y.data<double>();
  double* pdx = r.dx.data<double>();
  const int64_t plane = xs[2] * xs[3];
  const auto n_out = static_cast<int64_t>(windows.size());
  for (int64_t pl = 0; pl < xs[0] * xs[1]; ++pl) {
    for (int64_t o = 0; o < n_out; ++o) {
      const RefWindow& win = windows[static_cast<std::size_t>(o)];
      const int64_t yo = pl * n_out + o;
      if (is_max) {
        int64_t best = win.taps[0];
        for (int64_t t : win.taps) {
          if (px[pl * plane + t] > px[pl * plane + best]) {
            best = t;
          }
        }
        for (int64_t t : win.taps) {
          if (t != best) {
            r.max_gap = std::min(r.max_gap, px[pl * plane + best] - px[pl * plane + t]);
          }
        }
        py[yo] = px[pl * plane + best];
        pdx[pl * plane + best] += pg[yo];
      } else {
        double s = 0;
        for (int64_t t : win.taps) {
          s += px[pl * plane + t];
          pdx[pl * plane + t] += pg[yo] / win.divisor;
        }
        py[yo] = s / win.divisor;
      }
    }
  }
  return r;
}

}  // namespace veil::testing
