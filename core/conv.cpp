#include "core/conv.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "core/cuda_dispatch.h"
#include "core/error.h"
#include "core/log.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "kernels/cuda_dnn.h"

namespace veil::core {

namespace {

// The convolution family runs where its operands live; both must be on one device. On a CUDA
// device it is built from device views and kernels (below), and float64 convolutions go through
// cuDNN where it loads; nothing makes a round trip through host memory.
Device cuda_device_of(const Tensor& a, const Tensor& b, const char* op) {
  VEIL_CHECK(a.device() == b.device(), "[{}] expected operands on one device, got {} and {}", op,
             a.str(), b.str());
  return a.device();
}

// ---- the device path of conv2d and its gradients: im2col as a strided view of the zero-padded
// input, made contiguous on the device (one gather), then one GEMM per group through core::matmul
// (ring64: the tensor-core ring GEMM; float64: cuBLAS); col2im (the input gradient's scatter-add)
// and the pooling windows' fold add each kernel offset's values into a strided view of the padded
// input, one race-free kernel per offset (cuda_ops::add_into_view).

// x [N, C, H, W] padded by ph rows and pw columns of zeros on each side, contiguous.
Tensor pad_hw(const Tensor& x, int64_t ph, int64_t pw) {
  Tensor t = x.contiguous();
  const Shape s = t.shape();
  if (ph > 0) {
    const Tensor z = Tensor::zeros({s[0], s[1], ph, s[3]}, t.dtype(), t.device());
    t = cat({z, t, z}, 2);
  }
  if (pw > 0) {
    const Tensor z = Tensor::zeros({s[0], s[1], t.size(2), pw}, t.dtype(), t.device());
    t = cat({z, t, z}, 3);
  }
  return t;
}

// For each kernel offset (u, v): channels [c0, c0 + cg) of the zero-padded input xp [N, C, Hp, Wp]
// (contiguous, on a device), at the positions that the windows read at that offset, get
// src(u, v) [N, cg, oh, ow] added. The positions of one offset are distinct (stride >= 1), so
// each offset is one kernel without atomics; the order of the offsets is that of the host loops,
// so ring results are bit for bit the host's.
void add_window_offsets(Tensor& xp,
                        int64_t c0,
                        int64_t cg,
                        int64_t kh,
                        int64_t kw,
                        int64_t oh,
                        int64_t ow,
                        const Conv2dParams& p,
                        const std::function<Tensor(int64_t, int64_t)>& src) {
  const int64_t c = xp.size(1);
  const int64_t hp = xp.size(2);
  const int64_t wp = xp.size(3);
  for (int64_t u = 0; u < kh; ++u) {
    for (int64_t v = 0; v < kw; ++v) {
      Tensor view = xp.as_strided({xp.size(0), cg, oh, ow},
                                  {c * hp * wp, hp * wp, p.stride_h * wp, p.stride_w},
                                  c0 * hp * wp + u * p.dilation_h * wp + v * p.dilation_w);
      cuda_ops::add_into_view(view, src(u, v), "col2im");
    }
  }
}

// The dtypes of the window ops (their host paths throw the same for the others).
void check_window_dtype(const Tensor& t, const char* op) {
  VEIL_CHECK(
      t.dtype() == DType::kRing64 || t.dtype() == DType::kFloat64 || t.dtype() == DType::kInt64,
      "[{}] expected a float64, int64 or ring64 tensor, got {}", op, t.str());
}

// The [N, C, h, w] interior of a padded xp (rows and columns ph, pw onward), contiguous.
Tensor crop_hw(const Tensor& xp, int64_t ph, int64_t pw, int64_t h, int64_t w) {
  return xp.slice(2, ph, ph + h).slice(3, pw, pw + w).contiguous();
}

// ---- float64 on a device: cuDNN when it loads (kernels/cuda_dnn.h), else the im2col path above.

// Cleared when a cuDNN call fails (a library that loads but does not work with this driver or
// device): the process then keeps to the im2col path, after one warning.
std::atomic<bool> dnn_usable{true};

// cuDNN's descriptors take no zero extents: empty convolutions stay on the im2col path.
bool use_dnn(const Tensor& a, const Tensor& b, const Shape& out) {
  return a.is_cuda() && a.dtype() == DType::kFloat64 && a.numel() > 0 && b.numel() > 0 &&
         shape_numel(out) > 0 && dnn_usable.load() && kernels::cuda::dnn_available();
}

// Runs a cuDNN convolution into a fresh float64 tensor of `shape`; nullopt (and cuDNN off for the
// process) when cuDNN fails, so that the caller takes its im2col path.
std::optional<Tensor> try_dnn(const Shape& shape,
                              Device device,
                              const std::function<void(double*)>& call) {
  Tensor out = Tensor::empty(shape, DType::kFloat64, device);
  try {
    call(static_cast<double*>(cuda_ops::ptr(out)));
    return out;
  } catch (const kernels::cuda::CudaError& e) {
    if (dnn_usable.exchange(false)) {
      log_warning(
          fmt::format("cuDNN failed ({}); float64 convolutions use im2col + cuBLAS", e.what()));
    }
    return std::nullopt;
  }
}

kernels::cuda::ConvGeometry dnn_geometry(const Shape& x,
                                         const Shape& w,
                                         const Shape& y,
                                         const Conv2dParams& p) {
  return {.n = x[0],
          .c = x[1],
          .h = x[2],
          .w = x[3],
          .k = w[0],
          .r = w[2],
          .s = w[3],
          .p = y[2],
          .q = y[3],
          .pad_h = p.pad_h,
          .pad_w = p.pad_w,
          .stride_h = p.stride_h,
          .stride_w = p.stride_w,
          .dilation_h = p.dilation_h,
          .dilation_w = p.dilation_w,
          .groups = p.groups};
}

const double* dnn_in(const Tensor& t) {
  return static_cast<const double*>(cuda_ops::ptr(t));
}

// The column matrices of all groups, [groups, Cg kh kw, N oh ow], of the padded input xp.
Tensor im2col_view(const Tensor& xp,
                   int64_t groups,
                   int64_t kh,
                   int64_t kw,
                   int64_t oh,
                   int64_t ow,
                   const Conv2dParams& p) {
  const int64_t n = xp.size(0);
  const int64_t c = xp.size(1);
  const int64_t hp = xp.size(2);
  const int64_t wp = xp.size(3);
  const int64_t cg = c / groups;
  const Tensor v = xp.as_strided({groups, cg, kh, kw, n, oh, ow},
                                 {cg * hp * wp, hp * wp, p.dilation_h * wp, p.dilation_w,
                                  c * hp * wp, p.stride_h * wp, p.stride_w});
  return v.contiguous().reshape({groups, cg * kh * kw, n * oh * ow});
}

// dy [N, C_out, oh, ow] as [C_out, N oh ow] (contiguous).
Tensor dy_matrix(const Tensor& dy) {
  const Shape s = dy.shape();
  return dy.contiguous()
      .reshape({s[0], s[1], s[2] * s[3]})
      .transpose(0, 1)
      .contiguous()
      .reshape({s[1], s[0] * s[2] * s[3]});
}

Tensor conv2d_device(const Tensor& x, const Tensor& w, const Conv2dParams& p) {
  const Shape out_shape = conv2d_out_shape(x.shape(), w.shape(), p);
  const int64_t c_out = out_shape[1];
  const int64_t cog = c_out / p.groups;
  const int64_t k = w.size(1) * w.size(2) * w.size(3);
  const Tensor cols = im2col_view(pad_hw(x, p.pad_h, p.pad_w), p.groups, w.size(2), w.size(3),
                                  out_shape[2], out_shape[3], p);
  const Tensor wm = w.contiguous().reshape({c_out, k});
  std::vector<Tensor> parts;
  for (int64_t g = 0; g < p.groups; ++g) {
    parts.push_back(matmul(wm.slice(0, g * cog, (g + 1) * cog),
                           cols.slice(0, g, g + 1).reshape({k, cols.size(2)})));
  }
  const Tensor y = parts.size() == 1 ? parts[0] : cat(parts, 0);  // [C_out, N oh ow]
  return y.reshape({c_out, out_shape[0], out_shape[2] * out_shape[3]})
      .transpose(0, 1)
      .contiguous()
      .reshape(out_shape);
}

Tensor weight_grad_device(const Tensor& x,
                          const Tensor& dy,
                          const Conv2dParams& p,
                          const Shape& dw_shape) {
  const int64_t cog = dw_shape[0] / p.groups;
  const int64_t k = dw_shape[1] * dw_shape[2] * dw_shape[3];
  const Tensor cols = im2col_view(pad_hw(x, p.pad_h, p.pad_w), p.groups, dw_shape[2], dw_shape[3],
                                  dy.size(2), dy.size(3), p);
  const Tensor dym = dy_matrix(dy);
  std::vector<Tensor> parts;
  for (int64_t g = 0; g < p.groups; ++g) {
    const Tensor cg = cols.slice(0, g, g + 1).reshape({k, cols.size(2)});
    parts.push_back(matmul(dym.slice(0, g * cog, (g + 1) * cog), cg.t().contiguous()));
  }
  return (parts.size() == 1 ? parts[0] : cat(parts, 0)).reshape(dw_shape);
}

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

// The index map shared by im2col and its adjoint, in runs: for every output row (n, i) of every
// window offset (c, u, v) it calls inside(col, pos, len, step) for the entries whose input lies
// inside x (entry col + t reads x[pos + t step], t < len) and outside(col, len) for the entries
// that fall on padding (col .. col + len - 1), in the order of the columns. col is an offset in
// the [cg kh kw, N L] column matrix (row k = (c kh + u) kw + v, column n L + l with l = i W' + j);
// pos an offset in the contiguous x [N, C, H, W] of shape xs, whose channels c0 .. c0 + cg - 1
// are used. Rows k in [k_lo, k_hi) only (disjoint row ranges write disjoint parts of the matrix).
template <class Inside, class Outside>
void for_each_window_run(const Shape& xs,
                         int64_t c0,
                         int64_t kh,
                         int64_t kw,
                         int64_t oh,
                         int64_t ow,
                         const Conv2dParams& p,
                         int64_t k_lo,
                         int64_t k_hi,
                         Inside&& inside,
                         Outside&& outside) {
  const int64_t n_batch = xs[0];
  const int64_t c_all = xs[1];
  const int64_t h = xs[2];
  const int64_t w = xs[3];
  const int64_t l_all = oh * ow;
  const int64_t row = n_batch * l_all;
  // the first j with j sw >= t (t may be negative), clamped to [0, ow]
  auto first_j = [&](int64_t t) {
    return t <= 0 ? int64_t{0} : std::min(ow, (t + p.stride_w - 1) / p.stride_w);
  };
  for (int64_t k = k_lo; k < k_hi; ++k) {
    const int64_t c = k / (kh * kw);
    const int64_t u = k / kw % kh;
    const int64_t v = k % kw;
    const int64_t col_row = k * row;
    const int64_t shift = v * p.dilation_w - p.pad_w;         // x column of j = 0
    const int64_t j_lo = first_j(-shift);                     // x column >= 0 from here
    const int64_t j_hi = std::max(j_lo, first_j(w - shift));  // x column >= w from here
    for (int64_t n = 0; n < n_batch; ++n) {
      const int64_t plane = (n * c_all + c0 + c) * h * w;
      for (int64_t i = 0; i < oh; ++i) {
        const int64_t y = i * p.stride_h + u * p.dilation_h - p.pad_h;
        const int64_t col = col_row + n * l_all + i * ow;
        if (y < 0 || y >= h) {
          outside(col, ow);
          continue;
        }
        if (j_lo > 0) {
          outside(col, j_lo);
        }
        if (j_hi > j_lo) {
          inside(col + j_lo, plane + y * w + j_lo * p.stride_w + shift, j_hi - j_lo, p.stride_w);
        }
        if (j_hi < ow) {
          outside(col + j_hi, ow - j_hi);
        }
      }
    }
  }
}

// cols = im2col(x) for the channels [c0, c0 + cg) of a contiguous x (zeros for padding); the
// rows of the column matrix are filled in parallel.
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
  const int64_t rows = cg * kh * kw;
  const int64_t grain =
      std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, xs[0] * oh * ow));
  parallel_for(0, rows, grain, [&](int64_t k_lo, int64_t k_hi) {
    for_each_window_run(
        xs, c0, kh, kw, oh, ow, p, k_lo, k_hi,
        [&](int64_t col, int64_t pos, int64_t len, int64_t step) {
          T* dst = cols + col;
          const T* src = x + pos;
          if (step == 1) {
            std::copy(src, src + len, dst);
            return;
          }
          for (int64_t t = 0; t < len; ++t) {
            dst[t] = src[t * step];
          }
        },
        [&](int64_t col, int64_t len) { std::fill(cols + col, cols + col + len, T{0}); });
  });
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

// The adjoint of im2col: x[pos] += cols[col] for every in-range entry (wraps mod 2^64 for ring),
// in the order of the column matrix's entries (one thread: rows of different window offsets add
// into the same x).
template <class T>
void col2im(const T* cols,
            const Shape& xs,
            int64_t c0,
            int64_t cg,
            int64_t kh,
            int64_t kw,
            int64_t oh,
            int64_t ow,
            const Conv2dParams& p,
            T* x) {
  for_each_window_run(
      xs, c0, kh, kw, oh, ow, p, 0, cg * kh * kw,
      [&](int64_t col, int64_t pos, int64_t len, int64_t step) {
        const T* src = cols + col;
        T* dst = x + pos;
        for (int64_t t = 0; t < len; ++t) {
          dst[t * step] += src[t];
        }
      },
      [](int64_t /*col*/, int64_t /*len*/) {});
}

// dY of one group as a [cog, N L] matrix (contiguous) from a contiguous dy [N, C_out, L].
template <class T>
Tensor gather_dy(const Tensor& dy, int64_t c0, int64_t cog) {
  const int64_t n_batch = dy.shape()[0];
  const int64_t c_out = dy.shape()[1];
  const int64_t l_all = dy.shape()[2] * dy.shape()[3];
  Tensor m = Tensor::empty({cog, n_batch * l_all}, dy.dtype());
  const T* pd = dy.data<T>();
  T* pm = m.data<T>();
  for (int64_t o = 0; o < cog; ++o) {
    for (int64_t n = 0; n < n_batch; ++n) {
      const T* src = pd + (n * c_out + c0 + o) * l_all;
      std::copy(src, src + l_all, pm + (o * n_batch + n) * l_all);
    }
  }
  return m;
}

template <class T>
Tensor input_grad_impl(const Tensor& dy_in,
                       const Tensor& w_in,
                       const Conv2dParams& p,
                       const Shape& dx_shape) {
  const Tensor dy = dy_in.contiguous();
  const Tensor w = w_in.contiguous();
  const int64_t cg = w.shape()[1];
  const int64_t kh = w.shape()[2];
  const int64_t kw = w.shape()[3];
  const int64_t cog = w.shape()[0] / p.groups;
  const int64_t k = cg * kh * kw;
  Tensor dx = Tensor::zeros(dx_shape, dy.dtype());
  for (int64_t g = 0; g < p.groups; ++g) {
    const Tensor wg = w.slice(0, g * cog, (g + 1) * cog).reshape({cog, k});
    const Tensor cols = matmul(wg.t(), gather_dy<T>(dy, g * cog, cog)).contiguous();  // [k, N L]
    col2im<T>(cols.data<T>(), dx_shape, g * cg, cg, kh, kw, dy.shape()[2], dy.shape()[3], p,
              dx.data<T>());
  }
  return dx;
}

// The device path of the input gradient: per group one GEMM, then col2im into the padded input.
Tensor input_grad_device(const Tensor& dy,
                         const Tensor& w,
                         const Conv2dParams& p,
                         const Shape& dx_shape) {
  const int64_t c_out = w.size(0);
  const int64_t cg = w.size(1);
  const int64_t kh = w.size(2);
  const int64_t kw = w.size(3);
  const int64_t cog = c_out / p.groups;
  const int64_t k = cg * kh * kw;
  const int64_t n = dy.size(0);
  const int64_t oh = dy.size(2);
  const int64_t ow = dy.size(3);
  const Tensor dym = dy_matrix(dy);
  const Tensor wm = w.contiguous().reshape({c_out, k});
  Tensor dxp = Tensor::zeros(
      {dx_shape[0], dx_shape[1], dx_shape[2] + 2 * p.pad_h, dx_shape[3] + 2 * p.pad_w}, dy.dtype(),
      dy.device());
  for (int64_t g = 0; g < p.groups; ++g) {
    const Tensor wgt = wm.slice(0, g * cog, (g + 1) * cog).t().contiguous();  // [k, cog]
    // rows (c, u, v), columns (n, i, j)
    const Tensor cols = matmul(wgt, dym.slice(0, g * cog, (g + 1) * cog)).contiguous();
    const int64_t l = n * oh * ow;
    add_window_offsets(dxp, g * cg, cg, kh, kw, oh, ow, p, [&](int64_t u, int64_t v) {
      return cols.as_strided({n, cg, oh, ow}, {oh * ow, kh * kw * l, ow, 1}, (u * kw + v) * l);
    });
  }
  return crop_hw(dxp, p.pad_h, p.pad_w, dx_shape[2], dx_shape[3]);
}

template <class T>
Tensor weight_grad_impl(const Tensor& x_in,
                        const Tensor& dy_in,
                        const Conv2dParams& p,
                        const Shape& dw_shape) {
  const Tensor x = x_in.contiguous();
  const Tensor dy = dy_in.contiguous();
  const int64_t cog = dw_shape[0] / p.groups;
  const int64_t cg = dw_shape[1];
  const int64_t kh = dw_shape[2];
  const int64_t kw = dw_shape[3];
  const int64_t k = cg * kh * kw;
  const int64_t oh = dy.shape()[2];
  const int64_t ow = dy.shape()[3];
  Tensor dw = Tensor::empty(dw_shape, x.dtype());
  T* pw = dw.data<T>();
  Tensor cols = Tensor::empty({k, x.shape()[0] * oh * ow}, x.dtype());
  for (int64_t g = 0; g < p.groups; ++g) {
    im2col<T>(x.data<T>(), x.shape(), g * cg, cg, kh, kw, oh, ow, p, cols.data<T>());
    const Tensor res = matmul(gather_dy<T>(dy, g * cog, cog), cols.t()).contiguous();  // [cog, k]
    std::copy(res.data<T>(), res.data<T>() + cog * k, pw + g * cog * k);
  }
  return dw;
}

template <class T>
Tensor fold_impl(const Tensor& win_in,
                 const Shape& xs,
                 int64_t kh,
                 int64_t kw,
                 const Conv2dParams& p,
                 int64_t oh,
                 int64_t ow) {
  const Tensor win = win_in.contiguous();
  Tensor out = Tensor::zeros(xs, win.dtype());
  T* po = out.data<T>();
  const T* pw = win.data<T>();
  const int64_t planes = xs[0] * xs[1];
  const int64_t h = xs[2];
  const int64_t w = xs[3];
  for (int64_t pl = 0; pl < planes; ++pl) {
    T* plane = po + pl * h * w;
    for (int64_t i = 0; i < oh; ++i) {
      for (int64_t j = 0; j < ow; ++j) {
        for (int64_t u = 0; u < kh; ++u) {
          const int64_t y = i * p.stride_h + u * p.dilation_h - p.pad_h;
          for (int64_t v = 0; v < kw; ++v) {
            const int64_t xx = j * p.stride_w + v * p.dilation_w - p.pad_w;
            const T val = *pw++;
            if (y >= 0 && y < h && xx >= 0 && xx < w) {
              plane[y * w + xx] += val;
            }
          }
        }
      }
    }
  }
  return out;
}

void check_hw(const Shape& hw, const char* op, const char* what) {
  VEIL_CHECK(hw.size() == 2 && hw[0] >= 1 && hw[1] >= 1,
             "[{}] expected {} as two extents >= 1, got {}", op, what, shape_str(hw));
}

void check_dtypes(const Tensor& a, const Tensor& b, const char* op) {
  VEIL_CHECK(
      a.dtype() == b.dtype() && (a.dtype() == DType::kFloat64 || a.dtype() == DType::kRing64),
      "[{}] expected float64 or ring64 operands of equal dtype, got {} and {}", op, a.str(),
      b.str());
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

template <class T>
Tensor extend_impl(const Tensor& x_in, int64_t h, int64_t w) {
  const Tensor x = x_in.contiguous();
  const int64_t xh = x.size(2);
  const int64_t xw = x.size(3);
  Tensor out = Tensor::zeros({x.size(0), x.size(1), h, w}, x.dtype());
  const T* src = x.data<T>();
  T* dst = out.data<T>();
  for (int64_t pl = 0; pl < x.size(0) * x.size(1); ++pl) {
    for (int64_t i = 0; i < xh; ++i) {
      std::copy(src + (pl * xh + i) * xw, src + (pl * xh + i + 1) * xw, dst + (pl * h + i) * w);
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
  const bool on_device = cuda_device_of(x, w, "conv2d").type == Device::Type::kCUDA;
  VEIL_CHECK(
      x.dtype() == w.dtype() && (x.dtype() == DType::kFloat64 || x.dtype() == DType::kRing64),
      "[conv2d] expected float64 or ring64 operands of equal dtype, got {} and {}", x.str(),
      w.str());
  if (on_device) {
    const Shape out = conv2d_out_shape(x.shape(), w.shape(), p);  // the checks, with messages
    if (use_dnn(x, w, out)) {
      const Tensor xc = x.contiguous();
      const Tensor wc = w.contiguous();
      const auto y = try_dnn(out, x.device(), [&](double* py) {
        kernels::cuda::dnn_conv2d(dnn_geometry(x.shape(), w.shape(), out, p), dnn_in(xc),
                                  dnn_in(wc), py, x.device().index);
      });
      if (y) {
        return *y;
      }
    }
    return conv2d_device(x, w, p);
  }
  if (x.dtype() == DType::kRing64) {
    return conv2d_impl<uint64_t>(x, w, p);
  }
  return conv2d_impl<double>(x, w, p);
}

Shape conv2d_input_grad_shape(const Shape& dy,
                              const Shape& w,
                              const Conv2dParams& p,
                              const Shape& input_hw) {
  constexpr const char* kOp = "conv2d_input_grad";
  VEIL_CHECK(dy.size() == 4 && w.size() == 4,
             "[{}] expected dy [N, C_out, H', W'] and w [C_out, C_in/groups, kh, kw], got dy {} "
             "and w {}",
             kOp, shape_str(dy), shape_str(w));
  check_hw(input_hw, kOp, "the input extents {H, W}");
  check_params(p, kOp);
  const Shape x{dy[0], w[1] * p.groups, input_hw[0], input_hw[1]};
  const Shape expect = conv2d_out_shape(x, w, p);
  VEIL_CHECK(expect == dy, "[{}] expected dy {} for x {} and w {} ({}), got dy {}", kOp,
             shape_str(expect), shape_str(x), shape_str(w), conv2d_params_str(p), shape_str(dy));
  return x;
}

Shape conv2d_weight_grad_shape(const Shape& x,
                               const Shape& dy,
                               const Conv2dParams& p,
                               const Shape& kernel_hw) {
  constexpr const char* kOp = "conv2d_weight_grad";
  VEIL_CHECK(x.size() == 4 && dy.size() == 4,
             "[{}] expected x [N, C_in, H, W] and dy [N, C_out, H', W'], got x {} and dy {}", kOp,
             shape_str(x), shape_str(dy));
  check_hw(kernel_hw, kOp, "the kernel extents {kh, kw}");
  check_params(p, kOp);
  VEIL_CHECK(x[1] % p.groups == 0 && dy[1] % p.groups == 0,
             "[{}] expected groups = {} to divide C_in and C_out, got x {} and dy {}", kOp,
             p.groups, shape_str(x), shape_str(dy));
  const Shape w{dy[1], x[1] / p.groups, kernel_hw[0], kernel_hw[1]};
  const Shape expect = conv2d_out_shape(x, w, p);
  VEIL_CHECK(expect == dy, "[{}] expected dy {} for x {} and w {} ({}), got dy {}", kOp,
             shape_str(expect), shape_str(x), shape_str(w), conv2d_params_str(p), shape_str(dy));
  return w;
}

Tensor conv2d_input_grad(const Tensor& dy,
                         const Tensor& w,
                         const Conv2dParams& p,
                         const Shape& input_hw) {
  const bool on_device = cuda_device_of(dy, w, "conv2d_input_grad").type == Device::Type::kCUDA;
  check_dtypes(dy, w, "conv2d_input_grad");
  const Shape dx_shape = conv2d_input_grad_shape(dy.shape(), w.shape(), p, input_hw);
  if (on_device) {
    if (use_dnn(dy, w, dx_shape)) {
      const Tensor dyc = dy.contiguous();
      const Tensor wc = w.contiguous();
      const auto dx = try_dnn(dx_shape, dy.device(), [&](double* pdx) {
        kernels::cuda::dnn_conv2d_input_grad(dnn_geometry(dx_shape, w.shape(), dy.shape(), p),
                                             dnn_in(wc), dnn_in(dyc), pdx, dy.device().index);
      });
      if (dx) {
        return *dx;
      }
    }
    return input_grad_device(dy, w, p, dx_shape);
  }
  if (dy.dtype() == DType::kRing64) {
    return input_grad_impl<uint64_t>(dy, w, p, dx_shape);
  }
  return input_grad_impl<double>(dy, w, p, dx_shape);
}

Tensor conv2d_weight_grad(const Tensor& x,
                          const Tensor& dy,
                          const Conv2dParams& p,
                          const Shape& kernel_hw) {
  const bool on_device = cuda_device_of(x, dy, "conv2d_weight_grad").type == Device::Type::kCUDA;
  check_dtypes(x, dy, "conv2d_weight_grad");
  const Shape dw_shape = conv2d_weight_grad_shape(x.shape(), dy.shape(), p, kernel_hw);
  if (on_device) {
    if (use_dnn(x, dy, dw_shape)) {
      const Tensor xc = x.contiguous();
      const Tensor dyc = dy.contiguous();
      const auto dw = try_dnn(dw_shape, x.device(), [&](double* pdw) {
        kernels::cuda::dnn_conv2d_weight_grad(dnn_geometry(x.shape(), dw_shape, dy.shape(), p),
                                              dnn_in(xc), dnn_in(dyc), pdw, x.device().index);
      });
      if (dw) {
        return *dw;
      }
    }
    return weight_grad_device(x, dy, p, dw_shape);
  }
  if (x.dtype() == DType::kRing64) {
    return weight_grad_impl<uint64_t>(x, dy, p, dw_shape);
  }
  return weight_grad_impl<double>(x, dy, p, dw_shape);
}

Tensor fold_windows(const Tensor& win,
                    const Shape& input_hw,
                    int64_t kh,
                    int64_t kw,
                    const Conv2dParams& p,
                    const char* op) {
  VEIL_CHECK(win.dim() == 5, "[{}] expected windows [N, C, H', W', kh*kw], got {}", op,
             shape_str(win.shape()));
  VEIL_CHECK(kh >= 1 && kw >= 1, "[{}] expected a window of at least 1x1, got {}x{}", op, kh, kw);
  check_hw(input_hw, op, "the input extents {H, W}");
  check_params(p, op);
  const Shape xs{win.shape()[0], win.shape()[1], input_hw[0], input_hw[1]};
  const auto [oh, ow] = window_extents(xs, kh, kw, p, op, fmt::format("a {}x{} window", kh, kw));
  const Shape expect{xs[0], xs[1], oh, ow, kh * kw};
  VEIL_CHECK(win.shape() == expect, "[{}] expected windows {} for an input {}, got {}", op,
             shape_str(expect), shape_str(xs), shape_str(win.shape()));
  if (win.is_cuda()) {
    check_window_dtype(win, op);
    const Tensor wc = win.contiguous();
    const int64_t k = kh * kw;
    Tensor xp = Tensor::zeros({xs[0], xs[1], xs[2] + 2 * p.pad_h, xs[3] + 2 * p.pad_w}, win.dtype(),
                              win.device());
    add_window_offsets(xp, 0, xs[1], kh, kw, oh, ow, p, [&](int64_t u, int64_t v) {
      return wc.as_strided({xs[0], xs[1], oh, ow}, {xs[1] * oh * ow * k, oh * ow * k, ow * k, k},
                           u * kw + v);
    });
    return crop_hw(xp, p.pad_h, p.pad_w, xs[2], xs[3]);
  }
  switch (win.dtype()) {
    case DType::kRing64:
      return fold_impl<uint64_t>(win, xs, kh, kw, p, oh, ow);
    case DType::kFloat64:
      return fold_impl<double>(win, xs, kh, kw, p, oh, ow);
    case DType::kInt64:
      return fold_impl<int64_t>(win, xs, kh, kw, p, oh, ow);
    default:
      break;
  }
  throw ValueError(
      fmt::format("[{}] expected a float64, int64 or ring64 tensor, got {}", op, win.str()));
}

Tensor extract_windows(
    const Tensor& x, int64_t kh, int64_t kw, const Conv2dParams& p, const char* op) {
  VEIL_CHECK(x.dim() == 4, "[{}] expected x [N, C, H, W], got {}", op, shape_str(x.shape()));
  VEIL_CHECK(kh >= 1 && kw >= 1, "[{}] expected a window of at least 1x1, got {}x{}", op, kh, kw);
  check_params(p, op);
  const auto [oh, ow] =
      window_extents(x.shape(), kh, kw, p, op, fmt::format("a {}x{} window", kh, kw));
  if (x.is_cuda()) {
    check_window_dtype(x, op);
    // the windows as one strided view of the zero-padded input, gathered by one copy kernel
    const Tensor xp = pad_hw(x, p.pad_h, p.pad_w);
    const int64_t c = xp.size(1);
    const int64_t hp = xp.size(2);
    const int64_t wp = xp.size(3);
    return xp
        .as_strided({xp.size(0), c, oh, ow, kh, kw}, {c * hp * wp, hp * wp, p.stride_h * wp,
                                                      p.stride_w, p.dilation_h * wp, p.dilation_w})
        .contiguous()
        .reshape({xp.size(0), c, oh, ow, kh * kw});
  }
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

// ---- 1-D convolution ------------------------------------------------------------------------

Conv2dParams Conv1dParams::as_2d() const {
  Conv2dParams c;
  c.stride_w = stride;
  c.pad_w = padding;
  c.dilation_w = dilation;
  c.groups = groups;
  return c;
}

Shape conv1d_out_shape(const Shape& x, const Shape& w, const Conv1dParams& p) {
  constexpr const char* kOp = "conv1d";
  VEIL_CHECK(x.size() == 3 && w.size() == 3,
             "[{}] expected x [N, C_in, L] and w [C_out, C_in/groups, k], got x {} and w {}", kOp,
             shape_str(x), shape_str(w));
  VEIL_CHECK(p.stride >= 1 && p.dilation >= 1 && p.groups >= 1 && p.padding >= 0,
             "[{}] expected stride, dilation and groups >= 1 and padding >= 0, got stride {}, "
             "padding {}, dilation {}, groups {}",
             kOp, p.stride, p.padding, p.dilation, p.groups);
  VEIL_CHECK(x[1] % p.groups == 0 && w[0] % p.groups == 0,
             "[{}] expected groups = {} to divide C_in and C_out, got x {} and w {}", kOp, p.groups,
             shape_str(x), shape_str(w));
  const int64_t cg = x[1] / p.groups;
  VEIL_CHECK(w[1] == cg && cg >= 1 && w[0] >= 1 && w[2] >= 1,
             "[{}] expected w [C_out, C_in/groups = {}, k] for x {}, got w {}", kOp, cg,
             shape_str(x), shape_str(w));
  const int64_t len = out_extent(x[2], w[2], p.stride, p.padding, p.dilation);
  VEIL_CHECK(len >= 1,
             "[{}] expected the dilated kernel to fit in the padded input, got w {} (dilation {}) "
             "on x {} with padding {}",
             kOp, shape_str(w), p.dilation, shape_str(x), p.padding);
  return {x[0], w[0], len};
}

Tensor conv1d(const Tensor& x, const Tensor& w, const Conv1dParams& p) {
  (void)cuda_device_of(x, w, "conv1d");  // one device; conv2d takes the device path there
  check_dtypes(x, w, "conv1d");
  const Shape out = conv1d_out_shape(x.shape(), w.shape(), p);
  const Tensor y = conv2d(x.reshape({x.size(0), x.size(1), 1, x.size(2)}),
                          w.reshape({w.size(0), w.size(1), 1, w.size(2)}), p.as_2d());
  return y.reshape(out);
}

// ---- transposed 2-D convolution -------------------------------------------------------------

Conv2dParams ConvTranspose2dParams::conv() const {
  Conv2dParams c;
  c.stride_h = stride_h;
  c.stride_w = stride_w;
  c.pad_h = pad_h;
  c.pad_w = pad_w;
  c.dilation_h = dilation_h;
  c.dilation_w = dilation_w;
  c.groups = groups;
  return c;
}

std::string conv_transpose2d_params_str(const ConvTranspose2dParams& p) {
  return fmt::format("stride {}x{}, pad {}x{}, output_pad {}x{}, dilation {}x{}, groups {}",
                     p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.output_pad_h, p.output_pad_w,
                     p.dilation_h, p.dilation_w, p.groups);
}

Shape conv_transpose2d_out_shape(const Shape& x, const Shape& w, const ConvTranspose2dParams& p) {
  constexpr const char* kOp = "conv_transpose2d";
  VEIL_CHECK(x.size() == 4 && w.size() == 4,
             "[{}] expected x [N, C_in, H, W] and w [C_in, C_out/groups, kh, kw], got x {} and "
             "w {}",
             kOp, shape_str(x), shape_str(w));
  VEIL_CHECK(p.stride_h >= 1 && p.stride_w >= 1 && p.dilation_h >= 1 && p.dilation_w >= 1 &&
                 p.groups >= 1 && p.pad_h >= 0 && p.pad_w >= 0 && p.output_pad_h >= 0 &&
                 p.output_pad_w >= 0,
             "[{}] expected strides, dilations and groups >= 1 and pads >= 0, got {}", kOp,
             conv_transpose2d_params_str(p));
  VEIL_CHECK((p.output_pad_h < p.stride_h || p.output_pad_h < p.dilation_h) &&
                 (p.output_pad_w < p.stride_w || p.output_pad_w < p.dilation_w),
             "[{}] expected each output pad to be smaller than its stride or its dilation, got {}",
             kOp, conv_transpose2d_params_str(p));
  VEIL_CHECK(
      x[1] == w[0] && x[1] % p.groups == 0 && x[1] >= 1 && w[1] >= 1 && w[2] >= 1 && w[3] >= 1,
      "[{}] expected w [C_in = {}, C_out/groups, kh, kw] with groups = {} dividing C_in, "
      "got x {} and w {}",
      kOp, x[1], p.groups, shape_str(x), shape_str(w));
  const int64_t oh =
      (x[2] - 1) * p.stride_h - 2 * p.pad_h + p.dilation_h * (w[2] - 1) + p.output_pad_h + 1;
  const int64_t ow =
      (x[3] - 1) * p.stride_w - 2 * p.pad_w + p.dilation_w * (w[3] - 1) + p.output_pad_w + 1;
  VEIL_CHECK(x[2] >= 1 && x[3] >= 1 && oh >= 1 && ow >= 1,
             "[{}] expected a non-empty input and output, got x {} and w {} with {} (output "
             "{}x{})",
             kOp, shape_str(x), shape_str(w), conv_transpose2d_params_str(p), oh, ow);
  return {x[0], w[1] * p.groups, oh, ow};
}

Shape conv_transpose2d_input_shape(const Shape& x, const Shape& w, const ConvTranspose2dParams& p) {
  (void)conv_transpose2d_out_shape(x, w, p);
  return {x[0], x[1], x[2] + p.output_pad_h / p.stride_h, x[3] + p.output_pad_w / p.stride_w};
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const ConvTranspose2dParams& p) {
  (void)cuda_device_of(x, w, "conv_transpose2d");  // one device (see conv2d_input_grad)
  check_dtypes(x, w, "conv_transpose2d");
  const Shape out = conv_transpose2d_out_shape(x.shape(), w.shape(), p);
  const Shape in = conv_transpose2d_input_shape(x.shape(), w.shape(), p);
  const Tensor xe = zero_extend_hw(x, in[2], in[3], "conv_transpose2d");
  return conv2d_input_grad(xe, w, p.conv(), {out[2], out[3]});
}

Tensor zero_extend_hw(const Tensor& x, int64_t h, int64_t w, const char* op) {
  VEIL_CHECK(x.dim() == 4 && h >= x.size(2) && w >= x.size(3),
             "[{}] expected x [N, C, H, W] with H <= {} and W <= {}, got {}", op, h, w,
             shape_str(x.shape()));
  if (h == x.size(2) && w == x.size(3)) {
    return x;
  }
  if (x.is_cuda()) {  // zeros appended below and to the right, by concatenation on the device
    check_window_dtype(x, op);
    Tensor t = x;
    if (h > x.size(2)) {
      t = cat({t, Tensor::zeros({x.size(0), x.size(1), h - x.size(2), x.size(3)}, x.dtype(),
                                x.device())},
              2);
    }
    if (w > x.size(3)) {
      t = cat({t, Tensor::zeros({x.size(0), x.size(1), h, w - x.size(3)}, x.dtype(), x.device())},
              3);
    }
    return t;
  }
  switch (x.dtype()) {
    case DType::kRing64:
      return extend_impl<uint64_t>(x, h, w);
    case DType::kFloat64:
      return extend_impl<double>(x, h, w);
    case DType::kInt64:
      return extend_impl<int64_t>(x, h, w);
    default:
      break;
  }
  throw ValueError(
      fmt::format("[{}] expected a float64, int64 or ring64 tensor, got {}", op, x.str()));
}

// ---- pooling windows ------------------------------------------------------------------------

Pool2dParams Pool2dParams::square(int64_t kernel, std::optional<int64_t> stride, int64_t padding) {
  Pool2dParams p;
  p.kernel_h = p.kernel_w = kernel;
  p.stride_h = p.stride_w = stride.value_or(kernel);
  p.pad_h = p.pad_w = padding;
  return p;
}

std::string pool2d_params_str(const Pool2dParams& p) {
  return fmt::format("kernel {}x{}, stride {}x{}, pad {}x{}, dilation {}x{}", p.kernel_h,
                     p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dilation_h,
                     p.dilation_w);
}

namespace {

// Completes window o's entries [first, first + k) per `fill`: -1 entries become the window's first
// input offset (kRepeat). Returns false when the window holds no input element.
bool fill_window(int64_t* entries, int64_t k, WindowFill fill) {
  const int64_t* first = std::find_if(entries, entries + k, [](int64_t e) { return e >= 0; });
  if (first == entries + k) {
    return false;
  }
  if (fill == WindowFill::kRepeat) {
    const int64_t src = *first;
    std::replace(entries, entries + k, int64_t{-1}, src);
  }
  return true;
}

}  // namespace

WindowTable pool2d_windows(
    int64_t h, int64_t w, const Pool2dParams& p, WindowFill fill, const char* op) {
  VEIL_CHECK(p.kernel_h >= 1 && p.kernel_w >= 1 && p.stride_h >= 1 && p.stride_w >= 1 &&
                 p.dilation_h >= 1 && p.dilation_w >= 1 && p.pad_h >= 0 && p.pad_w >= 0,
             "[{}] expected kernels, strides and dilations >= 1 and pads >= 0, got {}", op,
             pool2d_params_str(p));
  VEIL_CHECK(2 * p.pad_h <= p.kernel_h && 2 * p.pad_w <= p.kernel_w,
             "[{}] expected pads of at most half the kernel, got {}", op, pool2d_params_str(p));
  VEIL_CHECK(h >= 1 && w >= 1, "[{}] expected input extents >= 1, got {}x{}", op, h, w);
  const int64_t oh = out_extent(h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h);
  const int64_t ow = out_extent(w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w);
  VEIL_CHECK(oh >= 1 && ow >= 1,
             "[{}] expected the dilated window to fit in the padded input, got {} on a {}x{} input",
             op, pool2d_params_str(p), h, w);
  WindowTable t{h, w, oh, ow, p.kernel_h * p.kernel_w, {}, {}};
  t.index.resize(static_cast<std::size_t>(oh * ow * t.k));
  t.divisor.resize(static_cast<std::size_t>(oh * ow));
  int64_t* e = t.index.data();
  for (int64_t i = 0; i < oh; ++i) {
    for (int64_t j = 0; j < ow; ++j) {
      int64_t* entries = e;
      int64_t inside = 0;
      for (int64_t u = 0; u < p.kernel_h; ++u) {
        const int64_t y = i * p.stride_h + u * p.dilation_h - p.pad_h;
        for (int64_t v = 0; v < p.kernel_w; ++v) {
          const int64_t xx = j * p.stride_w + v * p.dilation_w - p.pad_w;
          const bool in = y >= 0 && y < h && xx >= 0 && xx < w;
          inside += in ? 1 : 0;
          *e++ = in ? y * w + xx : -1;
        }
      }
      VEIL_CHECK(fill_window(entries, t.k, fill),
                 "[{}] expected every window to hold an input element, window ({}, {}) lies in "
                 "the padding ({} on a {}x{} input)",
                 op, i, j, pool2d_params_str(p), h, w);
      t.divisor[static_cast<std::size_t>(i * ow + j)] = p.count_include_pad ? t.k : inside;
    }
  }
  return t;
}

WindowTable adaptive_pool2d_windows(
    int64_t h, int64_t w, int64_t out_h, int64_t out_w, WindowFill fill, const char* op) {
  VEIL_CHECK(h >= 1 && w >= 1 && out_h >= 1 && out_w >= 1,
             "[{}] expected input and output extents >= 1, got input {}x{} and output {}x{}", op, h,
             w, out_h, out_w);
  // window i of n over an extent of m: [floor(i m / n), ceil((i + 1) m / n))
  auto start = [](int64_t i, int64_t m, int64_t n) {
    return i * m / n;
  };
  auto end = [](int64_t i, int64_t m, int64_t n) {
    return ((i + 1) * m + n - 1) / n;
  };
  int64_t kh = 0;
  int64_t kw = 0;
  for (int64_t i = 0; i < out_h; ++i) {
    kh = std::max(kh, end(i, h, out_h) - start(i, h, out_h));
  }
  for (int64_t j = 0; j < out_w; ++j) {
    kw = std::max(kw, end(j, w, out_w) - start(j, w, out_w));
  }
  WindowTable t{h, w, out_h, out_w, kh * kw, {}, {}};
  t.index.assign(static_cast<std::size_t>(out_h * out_w * t.k), -1);
  t.divisor.resize(static_cast<std::size_t>(out_h * out_w));
  for (int64_t i = 0; i < out_h; ++i) {
    const int64_t y0 = start(i, h, out_h);
    const int64_t y1 = end(i, h, out_h);
    for (int64_t j = 0; j < out_w; ++j) {
      const int64_t x0 = start(j, w, out_w);
      const int64_t x1 = end(j, w, out_w);
      int64_t* entries = t.index.data() + (i * out_w + j) * t.k;
      for (int64_t y = y0; y < y1; ++y) {
        for (int64_t xx = x0; xx < x1; ++xx) {
          entries[(y - y0) * kw + (xx - x0)] = y * w + xx;
        }
      }
      (void)fill_window(entries, t.k, fill);  // every adaptive window is non-empty
      t.divisor[static_cast<std::size_t>(i * out_w + j)] = (y1 - y0) * (x1 - x0);
    }
  }
  return t;
}

namespace {

void check_table(const WindowTable& t, const char* op) {
  VEIL_INTERNAL_ASSERT(t.k >= 1 && static_cast<int64_t>(t.index.size()) == t.out_h * t.out_w * t.k,
                       "[{}] malformed window table", op);
}

template <class T>
Tensor scatter_impl(const Tensor& win_in, const WindowTable& t) {
  const Tensor win = win_in.contiguous();
  const int64_t planes = win.size(0) * win.size(1);
  const int64_t in_plane = t.in_h * t.in_w;
  const int64_t out_plane = t.out_h * t.out_w * t.k;
  Tensor out = Tensor::zeros({win.size(0), win.size(1), t.in_h, t.in_w}, win.dtype());
  const T* pw = win.data<T>();
  T* po = out.data<T>();
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* src = pw + pl * out_plane;
    T* dst = po + pl * in_plane;
    for (int64_t e = 0; e < out_plane; ++e) {
      const int64_t idx = t.index[static_cast<std::size_t>(e)];
      if (idx >= 0) {
        dst[idx] += src[e];
      }
    }
  }
  return out;
}

}  // namespace

Tensor gather_windows(const Tensor& x, const WindowTable& t, const char* op) {
  check_table(t, op);
  VEIL_CHECK(x.dim() == 4 && x.size(2) == t.in_h && x.size(3) == t.in_w,
             "[{}] expected x [N, C, {}, {}], got {}", op, t.in_h, t.in_w, shape_str(x.shape()));
  check_window_dtype(x, op);
  return gather_last(x.reshape({x.size(0), x.size(1), t.in_h * t.in_w}), t.index)
      .reshape({x.size(0), x.size(1), t.out_h, t.out_w, t.k});
}

Tensor scatter_windows(const Tensor& win, const WindowTable& t, const char* op) {
  check_table(t, op);
  VEIL_CHECK(
      win.dim() == 5 && win.size(2) == t.out_h && win.size(3) == t.out_w && win.size(4) == t.k,
      "[{}] expected windows [N, C, {}, {}, {}], got {}", op, t.out_h, t.out_w, t.k,
      shape_str(win.shape()));
  if (win.is_cuda()) {
    // The adjoint as a sum of gathers: layer l holds, for every input element, the l-th window
    // entry that reads it (in entry order, as the host loop adds them), or zero.
    check_window_dtype(win, op);
    const int64_t in_plane = t.in_h * t.in_w;
    std::vector<std::vector<int64_t>> layers;
    std::vector<int64_t> seen(static_cast<std::size_t>(in_plane), 0);
    for (std::size_t e = 0; e < t.index.size(); ++e) {
      const int64_t j = t.index[e];
      if (j < 0) {
        continue;
      }
      const auto l = static_cast<std::size_t>(seen[static_cast<std::size_t>(j)]++);
      if (l == layers.size()) {
        layers.emplace_back(static_cast<std::size_t>(in_plane), -1);
      }
      layers[l][static_cast<std::size_t>(j)] = static_cast<int64_t>(e);
    }
    const int64_t n_planes = win.size(0) * win.size(1);
    const Shape out_shape{win.size(0), win.size(1), t.in_h, t.in_w};
    if (layers.empty()) {
      return Tensor::zeros(out_shape, win.dtype(), win.device());
    }
    const Tensor w = win.contiguous().reshape({n_planes, t.out_h * t.out_w * t.k});
    Tensor out = gather_last(w, layers[0]);
    for (std::size_t l = 1; l < layers.size(); ++l) {
      add_(out, gather_last(w, layers[l]));
    }
    return out.reshape(out_shape);
  }
  switch (win.dtype()) {
    case DType::kRing64:
      return scatter_impl<uint64_t>(win, t);
    case DType::kFloat64:
      return scatter_impl<double>(win, t);
    case DType::kInt64:
      return scatter_impl<int64_t>(win, t);
    default:
      break;
  }
  throw ValueError(
      fmt::format("[{}] expected a float64, int64 or ring64 tensor, got {}", op, win.str()));
}

}  // namespace veil::core
