#pragma once
// ONNX models as trainable veil modules: OnnxModel reads an ONNX file (through Debian's libonnx,
// models/onnx_ir.h), turns its initializers into named parameters and buffers, and evaluates the
// graph node by node with veil's differentiable MpcTensor ops, so an imported network runs on
// public or secret data, with public or secret weights, and can be fine-tuned like any
// nn::Module (state_dict, encrypt, train/eval, optimizers).
//
// Supported operators (default domain, opsets kOnnxMinOpset..kOnnxMaxOpset; each maps to the veil
// op in brackets, whose header states its cost and accuracy):
//   Gemm (transA, transB, alpha, beta) [matmul, transpose, mul, add]; MatMul with broadcasting
//   [matmul]; Conv 1-D/2-D (pads incl. asymmetric, strides, dilations, group, auto_pad NOTSET or
//   VALID) [conv1d, conv2d, pad]; ConvTranspose 2-D (symmetric pads, output_padding)
//   [conv_transpose2d]; MaxPool, AveragePool 2-D (kernel_shape, strides, symmetric pads,
//   dilations, count_include_pad; ceil_mode 0) [max_pool2d, avg_pool2d]; GlobalAveragePool,
//   GlobalMaxPool [adaptive pools]; BatchNormalization (inference: running statistics)
//   [batch_norm]; LayerNormalization [layer_norm]; Relu, LeakyRelu, Sigmoid, Tanh, Gelu
//   (approximate "none"), Erf, Exp, Log, Sqrt, Reciprocal, Neg, Abs, HardSigmoid, HardSwish,
//   Clip (constant bounds) [relu, hardtanh, ...]; Add, Sub, Mul (broadcasting), Div (by a
//   constant: a public product; by a variable: reciprocal), Pow (constant exponent: integer,
//   0.5, -0.5), Sum, Mean; Softmax, LogSoftmax (opset < 13 coercion to 2-D included);
//   ReduceSum, ReduceMean; Flatten, Reshape (constant shape, 0 and -1 entries), Transpose,
//   Squeeze, Unsqueeze, Concat, Slice (constant, positive steps), Pad (constant mode), Gather
//   (constant indices); Identity, Dropout (applied in training mode only), Cast (to a float type),
//   Constant.
// Anything else, and any attribute an operator does not understand, is refused at import with
// ONE ValueError that lists every such node as "OpType 'node name' (reason)".
//
// Parameter names. A float initializer consumed as an operand becomes a parameter; one consumed as
// BatchNormalization's mean or variance a buffer; integer initializers and the constants read at
// import time (Reshape's shape, Squeeze's axes, Pad's pads, Clip's bounds, Div's constant divisor,
// Pow's exponent, ...) are kept as constants and never registered; unused initializers are
// skipped. A dotted ONNX name "features.0.weight" is registered as parameter "weight" of child
// module "features" -> "0", so state_dict() names equal the ONNX (PyTorch) names. A name that
// cannot be mirrored that way (an empty segment such as "a..b" or ".x", or a segment that is
// already a tensor, e.g. "fc" next to "fc.weight") is registered on the top level with every '.'
// replaced by '_' (and "_1", "_2", ... appended while that is taken). state_name() gives the
// state_dict() name of any initializer. Values keep the ONNX layout: a PyTorch Linear exported as
// Gemm(transB = 1) keeps its weight [out, in] (veil's nn::Linear is [in, out]).
//
// Visibility and cost. Parameters and buffers are public after import; encrypt(owner)
// (nn::Module::encrypt) shares them from party `owner` (0 rounds, 0 bytes). Constants stay
// public, so e.g. a constant divisor costs one truncation. A public layer applied to secret data
// costs only the public·secret product of its op (no Beaver triple); costs of every op are those
// of the veil op it maps to. BatchNormalization always normalises with the running statistics
// (ONNX inference semantics; its scale and bias stay trainable, the statistics are frozen), so a
// secret running variance costs one inv_sqrt on C values per forward.
//
// Source: the ONNX operator specification (github.com/onnx/onnx, docs/Operators.md) for the
// semantics of each operator and attribute.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/mpc_tensor.h"
#include "models/onnx_ir.h"
#include "nn/module.h"

namespace veil::models {

/// Oldest and newest default-domain opset the importer accepts.
inline constexpr int64_t kOnnxMinOpset = 9;
inline constexpr int64_t kOnnxMaxOpset = 21;

/// Options of the importer.
struct OnnxImportOptions {
  /// requires_grad of the parameters made from float initializers (default true: everything is
  /// trainable; pass false to import a frozen model and unfreeze parts later).
  bool requires_grad = true;
};

/// An imported ONNX graph as a module. See the file comment.
class OnnxModelImpl : public nn::Module {
 public:
  /// Reads the ONNX file at `path` (the current party's frac_bits; every party builds the model
  /// from the same file). Errors (each message starts "[onnx_import] <path>: "): IoError when the
  /// file cannot be read; ValueError for bytes that are not an ONNX model (garbage, truncated),
  /// malformed tensors, an opset outside [kOnnxMinOpset, kOnnxMaxOpset] or no default-domain
  /// opset, a node input that no graph input, initializer or earlier node defines (a missing
  /// initializer), a graph output nobody produces, non-float graph inputs, a constant that does
  /// not fit the fixed-point range, and one message listing every unsupported node or attribute;
  /// NotCompiledError in a build without ONNX.
  explicit OnnxModelImpl(const std::string& path, Party& party = crypto::current_party());
  /// Same with options.
  OnnxModelImpl(const std::string& path,
                const OnnxImportOptions& options,
                Party& party = crypto::current_party());
  /// From an already parsed graph; `source` names it in messages. Same errors as above except
  /// the I/O and parse ones.
  OnnxModelImpl(OnnxGraph graph,
                std::string source,
                const OnnxImportOptions& options,
                Party& party = crypto::current_party());
  ~OnnxModelImpl() override;

  /// Evaluates a graph with exactly one input and returns its first output. x: the input's
  /// declared shape (symbolic extents free), public or secret, the party's frac_bits. The result
  /// is secret when x or any parameter it depends on is secret. Recorded for autograd.
  /// Cost: the sum of the costs of the nodes' veil ops. Errors: ValueError "[OnnxModel] ..."
  /// for a graph with several inputs, an undefined x or a shape that contradicts the declared
  /// one; a veil op's ValueError prefixed with the node ("[OnnxModel] <source>: node Conv
  /// 'conv1': [conv2d] ...").
  MpcTensor forward(const MpcTensor& x);
  /// Evaluates the graph on its inputs (in the order of inputs()) and returns every graph output
  /// (in the order of outputs()). Errors as above, and for a wrong number of inputs.
  std::vector<MpcTensor> forward(const std::vector<MpcTensor>& inputs);

  /// The graph inputs the caller supplies (graph inputs that are not initializers), with their
  /// declared element type and shape (-1 for a symbolic extent).
  const std::vector<OnnxValueInfo>& inputs() const;
  /// The graph outputs, in the order forward returns them.
  const std::vector<OnnxValueInfo>& outputs() const;
  /// The model's default-domain opset.
  int64_t opset() const;
  /// The path or name the model was read from.
  const std::string& source() const;
  /// The graph as read (initializer values as in the file, not the current parameters).
  const OnnxGraph& graph() const;
  /// The state_dict() name of the ONNX initializer `onnx_name` ("fc1.weight" -> "fc1.weight",
  /// "a..b" -> "a__b"). Throws ValueError when the initializer is not registered (unknown, an
  /// import-time constant, or unused).
  std::string state_name(const std::string& onnx_name) const;
  /// (ONNX initializer name, state_dict() name) of every registered initializer, in registration
  /// order.
  std::vector<std::pair<std::string, std::string>> state_names() const;
  /// Number of graph nodes per operator type, e.g. "Conv x2, Relu x3, Gemm x1" (in order of first
  /// appearance); for logs.
  std::string summary() const;

  /// The compiled graph (an implementation detail of models/onnx_import.cpp).
  struct Program;

 private:
  std::unique_ptr<Program> program_;
};
VEIL_MODULE(OnnxModel);

/// An OnnxModel from serialized ONNX bytes; `source` names them in messages. Errors as
/// OnnxModelImpl(path) except the I/O ones.
OnnxModel import_onnx_bytes(const std::string& bytes,
                            const std::string& source = "<bytes>",
                            const OnnxImportOptions& options = {},
                            Party& party = crypto::current_party());

/// The operator types OnnxModel imports (default domain), sorted.
std::vector<std::string> onnx_supported_ops();

}  // namespace veil::models
