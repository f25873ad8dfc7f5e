// Plaintext float64 convolutions through cuDNN (kernels/cuda_dnn.h). cuDNN is opened at first use
// (kernels/cuda/dynlib.h); the legacy convolution API of cuDNN 9 (cudnn_cnn.h) with NCHW float64
// descriptors, group count, and the _v7 algorithm heuristics. Handles are per (thread, device) and
// bound to the calling thread's stream; workspaces come from the stream-ordered pool.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include <cuda_runtime.h>

#include "kernels/cuda/dynlib.h"
#include "kernels/cuda/handles.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_dnn.h"
#include "kernels/error.h"

#if __has_include(<cudnn.h>)
#include <cudnn.h>

namespace veil::kernels::cuda {

namespace {

struct DnnApi {
  decltype(&cudnnCreate) create;
  decltype(&cudnnSetStream) set_stream;
  decltype(&cudnnGetErrorString) error_string;
  decltype(&cudnnCreateTensorDescriptor) create_tensor;
  decltype(&cudnnSetTensor4dDescriptor) set_tensor;
  decltype(&cudnnDestroyTensorDescriptor) destroy_tensor;
  decltype(&cudnnCreateFilterDescriptor) create_filter;
  decltype(&cudnnSetFilter4dDescriptor) set_filter;
  decltype(&cudnnDestroyFilterDescriptor) destroy_filter;
  decltype(&cudnnCreateConvolutionDescriptor) create_conv;
  decltype(&cudnnSetConvolution2dDescriptor) set_conv;
  decltype(&cudnnSetConvolutionGroupCount) set_groups;
  decltype(&cudnnDestroyConvolutionDescriptor) destroy_conv;
  decltype(&cudnnGetConvolutionForwardAlgorithm_v7) fwd_algos;
  decltype(&cudnnGetConvolutionBackwardDataAlgorithm_v7) bwd_data_algos;
  decltype(&cudnnGetConvolutionBackwardFilterAlgorithm_v7) bwd_filter_algos;
  decltype(&cudnnConvolutionForward) forward;
  decltype(&cudnnConvolutionBackwardData) backward_data;
  decltype(&cudnnConvolutionBackwardFilter) backward_filter;
};

// The API, or nullptr when cuDNN cannot be loaded (decided once).
const DnnApi* dnn_api() {
  static const DnnApi* api = []() -> const DnnApi* {
    try {
      void* lib = detail::open_library({"libcudnn.so.9", "libcudnn.so"}, "dnn");
      const char* w = "dnn";
      auto* a = new DnnApi{};  // lives for the process, like the library
#define VEIL_DNN_SYMBOL(field, name) a->field = detail::symbol<decltype(name)>(lib, #name, w)
      VEIL_DNN_SYMBOL(create, cudnnCreate);
      VEIL_DNN_SYMBOL(set_stream, cudnnSetStream);
      VEIL_DNN_SYMBOL(error_string, cudnnGetErrorString);
      VEIL_DNN_SYMBOL(create_tensor, cudnnCreateTensorDescriptor);
      VEIL_DNN_SYMBOL(set_tensor, cudnnSetTensor4dDescriptor);
      VEIL_DNN_SYMBOL(destroy_tensor, cudnnDestroyTensorDescriptor);
      VEIL_DNN_SYMBOL(create_filter, cudnnCreateFilterDescriptor);
      VEIL_DNN_SYMBOL(set_filter, cudnnSetFilter4dDescriptor);
      VEIL_DNN_SYMBOL(destroy_filter, cudnnDestroyFilterDescriptor);
      VEIL_DNN_SYMBOL(create_conv, cudnnCreateConvolutionDescriptor);
      VEIL_DNN_SYMBOL(set_conv, cudnnSetConvolution2dDescriptor);
      VEIL_DNN_SYMBOL(set_groups, cudnnSetConvolutionGroupCount);
      VEIL_DNN_SYMBOL(destroy_conv, cudnnDestroyConvolutionDescriptor);
      VEIL_DNN_SYMBOL(fwd_algos, cudnnGetConvolutionForwardAlgorithm_v7);
      VEIL_DNN_SYMBOL(bwd_data_algos, cudnnGetConvolutionBackwardDataAlgorithm_v7);
      VEIL_DNN_SYMBOL(bwd_filter_algos, cudnnGetConvolutionBackwardFilterAlgorithm_v7);
      VEIL_DNN_SYMBOL(forward, cudnnConvolutionForward);
      VEIL_DNN_SYMBOL(backward_data, cudnnConvolutionBackwardData);
      VEIL_DNN_SYMBOL(backward_filter, cudnnConvolutionBackwardFilter);
#undef VEIL_DNN_SYMBOL
      return a;
    } catch (const CudaError&) {
      return nullptr;  // no cuDNN here: core keeps its im2col + cuBLAS path
    }
  }();
  return api;
}

const DnnApi& api_or_throw(const char* op) {
  const DnnApi* a = dnn_api();
  if (a == nullptr) {
    throw CudaError(std::string("[cuda::") + op + "] cuDNN (libcudnn.so.9) cannot be loaded");
  }
  return *a;
}

void check_dnn(cudnnStatus_t st, const char* op, const char* call) {
  if (st != CUDNN_STATUS_SUCCESS) {
    throw CudaError(std::string("[cuda::") + op + "] " + call +
                    " failed: " + dnn_api()->error_string(st));
  }
}

cudnnHandle_t dnn_handle(int device, const char* op) {
  thread_local detail::ThreadHandles<cudnnHandle_t> mine;
  const DnnApi& a = api_or_throw(op);
  auto it = mine.by_device.find(device);
  cudnnHandle_t h = nullptr;
  if (it != mine.by_device.end()) {
    h = it->second;
  } else {
    h = detail::handle_pool<cudnnHandle_t>().take(device);
    if (h == nullptr) {
      check_dnn(a.create(&h), op, "cudnnCreate");
    }
    mine.by_device.emplace(device, h);
  }
  check_dnn(a.set_stream(h, cudaStreamPerThread), op, "cudnnSetStream");
  return h;
}

int to_int(int64_t v, const char* op, const char* what) {
  if (v < 0 || v > std::numeric_limits<int>::max()) {
    throw CudaError(std::string("[cuda::") + op + "] " + what + " " + std::to_string(v) +
                    " is outside cuDNN's int range");
  }
  return static_cast<int>(v);
}

// The descriptors of one convolution, destroyed at scope exit.
class Descriptors {
 public:
  Descriptors(const ConvGeometry& g, const char* op) : a_(api_or_throw(op)) {
    check_dnn(a_.create_tensor(&x_), op, "cudnnCreateTensorDescriptor");
    check_dnn(a_.create_tensor(&y_), op, "cudnnCreateTensorDescriptor");
    check_dnn(a_.create_filter(&w_), op, "cudnnCreateFilterDescriptor");
    check_dnn(a_.create_conv(&conv_), op, "cudnnCreateConvolutionDescriptor");
    auto i = [&](int64_t v, const char* what) {
      return to_int(v, op, what);
    };
    check_dnn(a_.set_tensor(x_, CUDNN_TENSOR_NCHW, CUDNN_DATA_DOUBLE, i(g.n, "n"), i(g.c, "c"),
                            i(g.h, "h"), i(g.w, "w")),
              op, "cudnnSetTensor4dDescriptor (input)");
    check_dnn(a_.set_tensor(y_, CUDNN_TENSOR_NCHW, CUDNN_DATA_DOUBLE, i(g.n, "n"), i(g.k, "k"),
                            i(g.p, "p"), i(g.q, "q")),
              op, "cudnnSetTensor4dDescriptor (output)");
    check_dnn(a_.set_filter(w_, CUDNN_DATA_DOUBLE, CUDNN_TENSOR_NCHW, i(g.k, "k"),
                            i(g.c / g.groups, "c / groups"), i(g.r, "r"), i(g.s, "s")),
              op, "cudnnSetFilter4dDescriptor");
    check_dnn(
        a_.set_conv(conv_, i(g.pad_h, "pad_h"), i(g.pad_w, "pad_w"), i(g.stride_h, "stride_h"),
                    i(g.stride_w, "stride_w"), i(g.dilation_h, "dilation_h"),
                    i(g.dilation_w, "dilation_w"), CUDNN_CROSS_CORRELATION, CUDNN_DATA_DOUBLE),
        op, "cudnnSetConvolution2dDescriptor");
    check_dnn(a_.set_groups(conv_, i(g.groups, "groups")), op, "cudnnSetConvolutionGroupCount");
  }
  ~Descriptors() {
    (void)a_.destroy_conv(conv_);
    (void)a_.destroy_filter(w_);
    (void)a_.destroy_tensor(y_);
    (void)a_.destroy_tensor(x_);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;

  const DnnApi& api() const { return a_; }
  cudnnTensorDescriptor_t x() const { return x_; }
  cudnnTensorDescriptor_t y() const { return y_; }
  cudnnFilterDescriptor_t w() const { return w_; }
  cudnnConvolutionDescriptor_t conv() const { return conv_; }

 private:
  const DnnApi& a_;
  cudnnTensorDescriptor_t x_ = nullptr;
  cudnnTensorDescriptor_t y_ = nullptr;
  cudnnFilterDescriptor_t w_ = nullptr;
  cudnnConvolutionDescriptor_t conv_ = nullptr;
};

// The first deterministic algorithm of cuDNN's ranking that it reports as usable, else the first
// usable one; its workspace size in `bytes`.
template <class Perf>
auto pick_algo(
    const char* op, const char* call, const Perf* perf, int returned, std::size_t& bytes) {
  const Perf* chosen = nullptr;
  for (int j = 0; j < returned; ++j) {
    if (perf[j].status == CUDNN_STATUS_SUCCESS && perf[j].determinism == CUDNN_DETERMINISTIC) {
      chosen = &perf[j];
      break;
    }
  }
  for (int j = 0; chosen == nullptr && j < returned; ++j) {
    if (perf[j].status == CUDNN_STATUS_SUCCESS) {
      chosen = &perf[j];
    }
  }
  if (chosen == nullptr) {
    throw CudaError(std::string("[cuda::") + op + "] " + call + " found no usable algorithm");
  }
  bytes = chosen->memory;
  return chosen->algo;
}

// One convolution call: descriptors, the thread's handle, the algorithm from `query` (a _v7
// heuristic), a workspace from the stream-ordered pool, then `run` with alpha = 1, beta = 0 (the
// output is overwritten).
template <class Perf, class Query, class Run>
void run_conv(const ConvGeometry& g,
              int device,
              const char* op,
              const char* query_name,
              const char* run_name,
              Query&& query,
              Run&& run) {
  detail::use_device(device, op);
  const Descriptors d(g, op);
  cudnnHandle_t h = dnn_handle(device, op);
  constexpr int kMax = 16;
  Perf perf[kMax];
  int returned = 0;
  check_dnn(query(d, h, kMax, &returned, perf), op, query_name);
  std::size_t bytes = 0;
  const auto algo = pick_algo(op, query_name, perf, returned, bytes);
  const detail::Scratch ws(bytes, device);
  const double one = 1.0;
  const double zero = 0.0;
  check_dnn(run(d, h, algo, ws.get(), bytes, &one, &zero), op, run_name);
}

}  // namespace

bool dnn_available() {
  return dnn_api() != nullptr;
}

void dnn_conv2d(const ConvGeometry& g, const double* x, const double* w, double* y, int device) {
  run_conv<cudnnConvolutionFwdAlgoPerf_t>(
      g, device, "dnn_conv2d", "cudnnGetConvolutionForwardAlgorithm_v7", "cudnnConvolutionForward",
      [](const Descriptors& d, cudnnHandle_t h, int max, int* got, auto* perf) {
        return d.api().fwd_algos(h, d.x(), d.w(), d.conv(), d.y(), max, got, perf);
      },
      [&](const Descriptors& d, cudnnHandle_t h, auto algo, void* ws, std::size_t bytes,
          const double* one, const double* zero) {
        return d.api().forward(h, one, d.x(), x, d.w(), w, d.conv(), algo, ws, bytes, zero, d.y(),
                               y);
      });
}

void dnn_conv2d_input_grad(
    const ConvGeometry& g, const double* w, const double* dy, double* dx, int device) {
  run_conv<cudnnConvolutionBwdDataAlgoPerf_t>(
      g, device, "dnn_conv2d_input_grad", "cudnnGetConvolutionBackwardDataAlgorithm_v7",
      "cudnnConvolutionBackwardData",
      [](const Descriptors& d, cudnnHandle_t h, int max, int* got, auto* perf) {
        return d.api().bwd_data_algos(h, d.w(), d.y(), d.conv(), d.x(), max, got, perf);
      },
      [&](const Descriptors& d, cudnnHandle_t h, auto algo, void* ws, std::size_t bytes,
          const double* one, const double* zero) {
        return d.api().backward_data(h, one, d.w(), w, d.y(), dy, d.conv(), algo, ws, bytes, zero,
                                     d.x(), dx);
      });
}

void dnn_conv2d_weight_grad(
    const ConvGeometry& g, const double* x, const double* dy, double* dw, int device) {
  run_conv<cudnnConvolutionBwdFilterAlgoPerf_t>(
      g, device, "dnn_conv2d_weight_grad", "cudnnGetConvolutionBackwardFilterAlgorithm_v7",
      "cudnnConvolutionBackwardFilter",
      [](const Descriptors& d, cudnnHandle_t h, int max, int* got, auto* perf) {
        return d.api().bwd_filter_algos(h, d.x(), d.y(), d.conv(), d.w(), max, got, perf);
      },
      [&](const Descriptors& d, cudnnHandle_t h, auto algo, void* ws, std::size_t bytes,
          const double* one, const double* zero) {
        return d.api().backward_filter(h, one, d.x(), x, d.y(), dy, d.conv(), algo, ws, bytes, zero,
                                       d.w(), dw);
      });
}

}  // namespace veil::kernels::cuda

#else  // no cudnn.h at build time: as without cuDNN at run time (core keeps its cuBLAS path)

namespace veil::kernels::cuda {

namespace {
[[noreturn]] void no_dnn(const char* op) {
  throw CudaError(std::string("[cuda::") + op + "] veil was built without cudnn.h");
}
}  // namespace

bool dnn_available() {
  return false;
}
void dnn_conv2d(const ConvGeometry&, const double*, const double*, double*, int) {
  no_dnn("dnn_conv2d");
}
void dnn_conv2d_input_grad(const ConvGeometry&, const double*, const double*, double*, int) {
  no_dnn("dnn_conv2d_input_grad");
}
void dnn_conv2d_weight_grad(const ConvGeometry&, const double*, const double*, double*, int) {
  no_dnn("dnn_conv2d_weight_grad");
}

}  // namespace veil::kernels::cuda

#endif
