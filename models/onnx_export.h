#pragma once
// Exporting public veil models to ONNX (through Debian's libonnx, models/onnx_ir.h).
//
// Exportable models:
//   * models::LeNet: Reshape [-1, 1, 28, 28] -> conv1 (Conv) -> bn1 (BatchNormalization) ->
//     MaxPool -> Relu -> conv2 -> bn2 -> MaxPool -> Relu -> Flatten -> fc1 (Gemm) -> Relu -> fc2
//     -> Relu -> fc3, in the order of LeNetImpl::forward (ReLU after pooling, as veil computes it);
//   * nn::Sequential chains (nested ones too) of Linear, Conv1d, Conv2d, ConvTranspose2d,
//     BatchNorm1d/2d, LayerNorm (opset 17), ReLU, LeakyReLU, ReLU6, Hardtanh, Sigmoid, Tanh, GELU
//     (Gelu at opset >= 20, else Div/Erf/Add/Mul), Softmax, LogSoftmax, MaxPool2d, AvgPool2d,
//     AdaptiveAvgPool2d(1) / AdaptiveMaxPool2d(1) (global pools), Flatten, Dropout;
//   * a single one of those layers;
//   * an OnnxModel (models/onnx_import.h): its graph as read, with every registered initializer
//     replaced by the module's current value (e.g. after fine-tuning).
// Names: initializers carry the state_dict() names ("fc1.weight", "0.bias", "bn1.running_var").
// Linear weights are written in PyTorch's layout [out, in] and used by Gemm with transB = 1, so
// the file loads like a PyTorch export; veil's nn::Linear keeps [in, out] (the exporter
// transposes). Parameters are written as FLOAT (float32): values that float32 holds exactly
// (|w| < 2^(24 - f) = 256 at f = 16, every fixed-point value there) come back bit for bit.
// BatchNormalization is written in inference form (running statistics). Constants the graph
// needs (GELU's 0.5, Clip bounds, Dropout's ratio) are Constant nodes, Reshape shapes int64
// initializers, so neither becomes a parameter when the file is imported again.
//
// Every parameter and buffer must be public: reveal a secret model first (to the party that
// saves it) and export there. Files are written atomically (a temporary file in the same
// directory, fsync, rename).

#include <cstdint>
#include <string>
#include <vector>

#include "models/onnx_ir.h"
#include "nn/container.h"
#include "nn/module.h"

namespace veil::models {

/// Options of the exporter.
struct OnnxExportOptions {
  /// Shape of the graph input; -1 entries are symbolic ("N" for dimension 0, "d<k>" otherwise).
  /// Empty: the model's own ([N, 784] for LeNet, the declared input of an OnnxModel); required
  /// for other models.
  std::vector<int64_t> input_shape;
  /// Graph input name (an OnnxModel keeps its own names).
  std::string input_name = "input";
  /// Graph output name.
  std::string output_name = "output";
  /// Default-domain opset, 13..17 (what libonnx 1.12 checks); LayerNorm needs 17.
  int64_t opset = 17;
  /// ModelProto.producer_name.
  std::string producer_name = "veil";
};

/// The ONNX graph of `model` (see the file comment), without serializing it. Values are read
/// with MpcTensor::reveal() of public tensors (local). Errors: ValueError "[export_onnx] ..."
/// naming the tensor for a secret parameter or buffer, naming the module for a layer without an
/// ONNX form (or a BatchNorm without running statistics, an adaptive pool to a size other than
/// 1), a missing or inconsistent input_shape, or an opset outside 13..17.
OnnxGraph onnx_graph_of(const nn::Module& model, const OnnxExportOptions& options = {});

/// onnx_graph_of serialized to ModelProto bytes. Errors: those of onnx_graph_of; NotCompiledError
/// in a build without ONNX.
std::string export_onnx_bytes(const nn::Module& model, const OnnxExportOptions& options = {});

/// Writes export_onnx_bytes(model, options) to `path` atomically. Errors: those of
/// export_onnx_bytes; IoError "[export_onnx] <path>: ..." when the file cannot be written.
void export_onnx(const nn::Module& model,
                 const std::string& path,
                 const OnnxExportOptions& options = {});

/// The same three functions for a module holder (models::LeNet, nn::Sequential, OnnxModel, ...).
template <nn::ModuleHolderType Holder>
OnnxGraph onnx_graph_of(const Holder& model, const OnnxExportOptions& options = {}) {
  return onnx_graph_of(static_cast<const nn::Module&>(*model), options);
}
template <nn::ModuleHolderType Holder>
std::string export_onnx_bytes(const Holder& model, const OnnxExportOptions& options = {}) {
  return export_onnx_bytes(static_cast<const nn::Module&>(*model), options);
}
template <nn::ModuleHolderType Holder>
void export_onnx(const Holder& model,
                 const std::string& path,
                 const OnnxExportOptions& options = {}) {
  export_onnx(static_cast<const nn::Module&>(*model), path, options);
}

}  // namespace veil::models
