#pragma once
// Plaintext float64 convolutions on the GPU through cuDNN: the forward convolution and its two
// gradients for the float tensors of public layers and the plaintext twin on a CUDA device
// (core::conv2d, conv2d_input_grad, conv2d_weight_grad). cuDNN is opened at first use like cuBLAS
// (kernels/cuda/dynlib.h); where it cannot be loaded, dnn_available() is false and core keeps its
// own device path (im2col as a strided view, then cuBLAS DGEMM). Ring (share) convolutions never
// come here: no vendor library computes mod 2^64; they run on the tensor-core ring GEMM.
//
// Layouts: NCHW input x [n, c, h, w], filter w [k, c / groups, r, s], output y [n, k, p, q], all
// contiguous float64 device arrays on `device`; cross-correlation (PyTorch's convention). Work is
// queued on the calling thread's stream. Algorithms: cuDNN's heuristics (the _v7 queries), the
// first deterministic one that succeeds, so a run repeats bit for bit on one GPU; results agree
// with the CPU's float64 loops to rounding (a different summation order), not bit for bit.
// Without the CUDA backend every function throws NotCompiledError and dnn_available() is false.

#include <cstdint>

namespace veil::kernels::cuda {

/// The geometry of one 2-D convolution (see the file comment for the layouts).
struct ConvGeometry {
  int64_t n = 0, c = 0, h = 0, w = 0;  ///< input
  int64_t k = 0, r = 0, s = 0;         ///< output channels, kernel rows and columns
  int64_t p = 0, q = 0;                ///< output rows and columns
  int64_t pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
};

/// True when cuDNN's library (libcudnn.so.9) loads and has every function used here; decided once
/// per process. False without a GPU build.
bool dnn_available();

/// y = conv2d(x, w) (y overwritten). Throws CudaError naming the cuDNN call and its status (also
/// for extents above 2^31 - 1, which cuDNN's descriptors cannot take).
void dnn_conv2d(const ConvGeometry& g, const double* x, const double* w, double* y, int device);

/// dx = the input gradient of conv2d for dy [n, k, p, q] (dx [n, c, h, w] overwritten).
void dnn_conv2d_input_grad(
    const ConvGeometry& g, const double* w, const double* dy, double* dx, int device);

/// dw = the kernel gradient of conv2d for x and dy (dw [k, c / groups, r, s] overwritten).
void dnn_conv2d_weight_grad(
    const ConvGeometry& g, const double* x, const double* dy, double* dw, int device);

}  // namespace veil::kernels::cuda
