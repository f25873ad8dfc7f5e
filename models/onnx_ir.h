#pragma once
// A plain C++ copy of the parts of an ONNX model (onnx.proto, IR version 3 and later) that veil
// reads and writes, so that only models/onnx_proto.cpp includes libonnx's protobuf classes. The
// importer (models/onnx_import.h) compiles an OnnxGraph into differentiable MpcTensor ops; the
// exporter (models/onnx_export.h) builds one from veil modules. read_onnx / write_onnx are
// implemented with libonnx when veil is configured with VEIL_WITH_ONNX (cmake/VeilOnnx.cmake) and
// throw NotCompiledError otherwise.
//
// Tensors: every numeric tensor is held as float64 (ONNX FLOAT, DOUBLE, FLOAT16, BFLOAT16) or
// int64 (INT8/16/32/64, UINT8/16/32, BOOL); `data_type` keeps the ONNX element type so that a
// tensor is written back with the type it was read with (FLOAT as float32).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace veil::models {

/// ONNX TensorProto.DataType values veil reads or writes (the numbering of onnx.proto).
enum class OnnxDataType : int32_t {
  kUndefined = 0,
  kFloat = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kDouble = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kBFloat16 = 16,
};

/// "FLOAT", "INT64", ... (or "type 14") for messages.
std::string onnx_data_type_name(int32_t data_type);

/// A named tensor (initializer or attribute value). `value` is float64 or int64 (see the file
/// comment); `data_type` the ONNX element type it came from or is to be written as.
struct OnnxTensor {
  /// Initializer name (empty for attribute values).
  std::string name;
  /// float64 or int64 values in row-major order, with the tensor's shape.
  core::Tensor value;
  /// OnnxDataType of the file (read) or to write.
  int32_t data_type = static_cast<int32_t>(OnnxDataType::kFloat);
};

/// One node attribute. Only the field of `kind` is meaningful.
struct OnnxAttribute {
  /// Which field holds the value (kOther: a kind veil does not read).
  enum class Kind { kFloat, kInt, kString, kTensor, kFloats, kInts, kStrings, kOther };
  std::string name;
  Kind kind = Kind::kOther;
  /// kFloat. Read from ONNX's float32 as the double its shortest decimal spelling denotes
  /// (1e-5f -> 1e-5), so constants written by a float64 program come back as written.
  double f = 0.0;
  /// kInt.
  int64_t i = 0;
  /// kString.
  std::string s;
  /// kTensor.
  OnnxTensor t;
  /// kFloats (converted like f).
  std::vector<double> floats;
  /// kInts.
  std::vector<int64_t> ints;
  /// kStrings.
  std::vector<std::string> strings;
  /// ONNX AttributeProto.AttributeType of a kOther attribute (graphs, sparse tensors, ...), for
  /// messages.
  int32_t onnx_type = 0;

  /// An attribute holding one integer, one float or a list of integers.
  static OnnxAttribute of_int(std::string name, int64_t v) {
    OnnxAttribute a;
    a.name = std::move(name);
    a.kind = Kind::kInt;
    a.i = v;
    return a;
  }
  static OnnxAttribute of_float(std::string name, double v) {
    OnnxAttribute a;
    a.name = std::move(name);
    a.kind = Kind::kFloat;
    a.f = v;
    return a;
  }
  static OnnxAttribute of_ints(std::string name, std::vector<int64_t> v) {
    OnnxAttribute a;
    a.name = std::move(name);
    a.kind = Kind::kInts;
    a.ints = std::move(v);
    return a;
  }
};

/// One graph node. An empty entry in `inputs` or `outputs` is an absent optional argument.
struct OnnxNode {
  /// Operator type ("Conv", "Gemm", ...).
  std::string op_type;
  /// "" (or "ai.onnx") for the default operator set.
  std::string domain;
  /// Node name; read_onnx names an unnamed node "<node K>" (K its index) for messages.
  std::string name;
  /// Value names read, in the operator's argument order.
  std::vector<std::string> inputs;
  /// Value names written.
  std::vector<std::string> outputs;
  /// Attributes in file order.
  std::vector<OnnxAttribute> attributes;

  /// The attribute called `name`, or nullptr.
  const OnnxAttribute* attribute(const std::string& name) const;
};

/// A graph input or output: name, element type and shape. A dimension is its extent, or -1 for a
/// symbolic one (dim_param, named in dim_names) or an unknown one (dim_names entry "" or "?").
struct OnnxValueInfo {
  std::string name;
  /// OnnxDataType of the elements (0 when the model does not say).
  int32_t elem_type = static_cast<int32_t>(OnnxDataType::kFloat);
  /// False when the model gives no shape (any rank is accepted).
  bool has_shape = false;
  /// Extents, -1 for symbolic or unknown ones.
  std::vector<int64_t> dims;
  /// dim_param of each symbolic extent ("N"), "" for fixed ones.
  std::vector<std::string> dim_names;
};

/// The model: graph, operator sets and metadata.
struct OnnxGraph {
  /// ModelProto.ir_version (8 for opsets 13..17).
  int64_t ir_version = 8;
  /// ModelProto.producer_name / producer_version (informational).
  std::string producer_name;
  std::string producer_version;
  /// GraphProto.name.
  std::string graph_name;
  /// (domain, version) pairs of ModelProto.opset_import; "" is the default ONNX domain.
  std::vector<std::pair<std::string, int64_t>> opsets;
  /// Nodes in file order (ONNX requires a topological order).
  std::vector<OnnxNode> nodes;
  /// GraphProto.initializer: the weights and constants.
  std::vector<OnnxTensor> initializers;
  /// Graph inputs as listed by the model (IR version < 4 also lists the initializers here).
  std::vector<OnnxValueInfo> inputs;
  /// Graph outputs, in order.
  std::vector<OnnxValueInfo> outputs;

  /// The version of the default domain ("" or "ai.onnx"), or -1 when the model imports none.
  int64_t default_opset() const;
};

/// Whether this build reads and writes ONNX files (VEIL_WITH_ONNX resolved to ON).
bool onnx_available();

/// Parses a serialized ModelProto. `source` names the bytes in messages (a path or "<bytes>").
/// Never crashes on garbage: a buffer that is not a ModelProto, a truncated one, tensors whose
/// data do not match their shape, negative extents, data kept in external files, string or
/// complex tensors all throw ValueError "[onnx_import] <source>: ...".
/// Errors: NotCompiledError in a build without ONNX (names VEIL_WITH_ONNX).
OnnxGraph read_onnx(const std::string& bytes, const std::string& source);

/// Serializes `graph` to ModelProto bytes: float64 tensors become FLOAT (float32) unless their
/// data_type says DOUBLE, int64 tensors INT64. Throws ValueError "[export_onnx] ..." for a tensor
/// whose dtype cannot be written, NotCompiledError in a build without ONNX.
std::string write_onnx(const OnnxGraph& graph);

}  // namespace veil::models
