// read_onnx / write_onnx with libonnx's protobuf classes (onnx.proto, ONNX_ML build of Debian's
// libonnx-dev). The only file of veil that includes ONNX or protobuf headers for models; compiled
// when VEIL_WITH_ONNX resolves to ON (cmake/VeilOnnx.cmake), else models/onnx_stub.cpp is.
//
// Reading is defensive: the bytes may be anything. protobuf's parser rejects malformed wire data
// (truncation included) without crashing; every tensor is then checked (extents >= 0, no
// overflow of the element count, data length equal to the element count) before a byte of it is
// copied, so a hostile header cannot make veil allocate more than the file holds.

#include <bit>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <onnx/onnx_pb.h>

#include "core/error.h"
#include "models/onnx_ir.h"

namespace veil::models {

static_assert(std::endian::native == std::endian::little,
              "ONNX raw_data is little-endian; veil's reader assumes a little-endian host");

namespace {

using DT = OnnxDataType;

// float32 attribute -> the double its shortest decimal spelling denotes (1e-5f -> 1e-5), so that
// epsilons and slopes written by a float64 program come back as the value it wrote.
double attribute_float(float f) {
  if (!std::isfinite(f)) {
    return static_cast<double>(f);
  }
  return std::stod(fmt::format("{}", f));
}

double half_to_double(uint16_t h) {
  const int sign = (h >> 15) & 1;
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  double v = 0.0;
  if (exponent == 0) {
    v = std::ldexp(static_cast<double>(mantissa), -24);
  } else if (exponent == 31) {
    v = mantissa == 0 ? std::numeric_limits<double>::infinity()
                      : std::numeric_limits<double>::quiet_NaN();
  } else {
    v = std::ldexp(static_cast<double>(mantissa + 1024), exponent - 25);
  }
  return sign ? -v : v;
}

double bfloat16_to_double(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f = 0.0f;
  std::memcpy(&f, &bits, sizeof f);
  return static_cast<double>(f);
}

// Element size in raw_data, 0 for types veil does not read.
std::size_t raw_size(int32_t dt) {
  switch (static_cast<DT>(dt)) {
    case DT::kFloat:
    case DT::kInt32:
    case DT::kUInt32:
      return 4;
    case DT::kDouble:
    case DT::kInt64:
    case DT::kUInt64:
      return 8;
    case DT::kFloat16:
    case DT::kBFloat16:
    case DT::kInt16:
    case DT::kUInt16:
      return 2;
    case DT::kInt8:
    case DT::kUInt8:
    case DT::kBool:
      return 1;
    default:
      return 0;
  }
}

bool is_float_type(int32_t dt) {
  const auto t = static_cast<DT>(dt);
  return t == DT::kFloat || t == DT::kDouble || t == DT::kFloat16 || t == DT::kBFloat16;
}

template <class T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw ValueError(fmt::format("[onnx_import] {}: {}", source_, what));
  }

  OnnxTensor tensor(const onnx::TensorProto& tp, const std::string& what) const {
    OnnxTensor out;
    out.name = tp.name();
    out.data_type = tp.data_type();
    const std::string label = fmt::format("{} '{}'", what, tp.name());
    if (tp.data_location() == onnx::TensorProto_DataLocation_EXTERNAL ||
        tp.external_data_size() > 0) {
      fail(
          fmt::format("{} keeps its data in an external file, which veil does not read (save the "
                      "model with its weights inside the .onnx file)",
                      label));
    }
    if (tp.has_segment()) {
      fail(fmt::format("{} is a segment of a larger tensor, which veil does not read", label));
    }
    const std::size_t esize = raw_size(tp.data_type());
    if (esize == 0) {
      fail(
          fmt::format("{} has element type {}; veil reads float, double, float16, bfloat16, "
                      "integer and bool tensors",
                      label, onnx_data_type_name(tp.data_type())));
    }
    core::Shape shape;
    int64_t numel = 1;
    for (int64_t d : tp.dims()) {
      if (d < 0) {
        fail(fmt::format("{} has a negative extent {}", label, d));
      }
      if (__builtin_mul_overflow(numel, d, &numel) || numel > (int64_t{1} << 40)) {
        fail(fmt::format("{} has more elements than veil can hold", label));
      }
      shape.push_back(d);
    }
    const bool floating = is_float_type(tp.data_type());
    const auto n = static_cast<std::size_t>(numel);
    // Collect the elements as double or int64 from whichever field holds them.
    std::vector<double> fv;
    std::vector<int64_t> iv;
    if (!tp.raw_data().empty() || numel == 0) {
      const std::string& raw = tp.raw_data();
      if (raw.size() / esize != n || raw.size() % esize != 0) {
        fail(fmt::format("{} of shape [{}] needs {} bytes of data, the file holds {}", label,
                         fmt::join(shape, ", "), n * esize, raw.size()));
      }
      const char* p = raw.data();
      if (floating) {
        fv.resize(n);
      } else {
        iv.resize(n);
      }
      for (std::size_t k = 0; k < n; ++k, p += esize) {
        switch (static_cast<DT>(tp.data_type())) {
          case DT::kFloat:
            fv[k] = static_cast<double>(load<float>(p));
            break;
          case DT::kDouble:
            fv[k] = load<double>(p);
            break;
          case DT::kFloat16:
            fv[k] = half_to_double(load<uint16_t>(p));
            break;
          case DT::kBFloat16:
            fv[k] = bfloat16_to_double(load<uint16_t>(p));
            break;
          case DT::kInt64:
            iv[k] = load<int64_t>(p);
            break;
          case DT::kUInt64: {
            const auto u = load<uint64_t>(p);
            if (u > static_cast<uint64_t>(INT64_MAX)) {
              fail(fmt::format("{} holds a uint64 value above 2^63 - 1", label));
            }
            iv[k] = static_cast<int64_t>(u);
            break;
          }
          case DT::kInt32:
            iv[k] = load<int32_t>(p);
            break;
          case DT::kUInt32:
            iv[k] = load<uint32_t>(p);
            break;
          case DT::kInt16:
            iv[k] = load<int16_t>(p);
            break;
          case DT::kUInt16:
            iv[k] = load<uint16_t>(p);
            break;
          case DT::kInt8:
            iv[k] = load<int8_t>(p);
            break;
          default:  // kUInt8, kBool
            iv[k] = static_cast<unsigned char>(*p);
            break;
        }
      }
    } else {
      auto check_count = [&](int count, const char* field) {
        if (static_cast<std::size_t>(count) != n) {
          fail(fmt::format("{} of shape [{}] needs {} values, its {} field holds {}", label,
                           fmt::join(shape, ", "), n, field, count));
        }
      };
      switch (static_cast<DT>(tp.data_type())) {
        case DT::kFloat:
          check_count(tp.float_data_size(), "float_data");
          for (float v : tp.float_data()) {
            fv.push_back(static_cast<double>(v));
          }
          break;
        case DT::kDouble:
          check_count(tp.double_data_size(), "double_data");
          fv.assign(tp.double_data().begin(), tp.double_data().end());
          break;
        case DT::kFloat16:
        case DT::kBFloat16:
          check_count(tp.int32_data_size(), "int32_data");
          for (int32_t v : tp.int32_data()) {
            const auto bits = static_cast<uint16_t>(static_cast<uint32_t>(v) & 0xffffu);
            fv.push_back(static_cast<DT>(tp.data_type()) == DT::kFloat16
                             ? half_to_double(bits)
                             : bfloat16_to_double(bits));
          }
          break;
        case DT::kInt64:
          check_count(tp.int64_data_size(), "int64_data");
          iv.assign(tp.int64_data().begin(), tp.int64_data().end());
          break;
        case DT::kUInt64:
        case DT::kUInt32:
          check_count(tp.uint64_data_size(), "uint64_data");
          for (uint64_t v : tp.uint64_data()) {
            if (v > static_cast<uint64_t>(INT64_MAX)) {
              fail(fmt::format("{} holds a uint64 value above 2^63 - 1", label));
            }
            iv.push_back(static_cast<int64_t>(v));
          }
          break;
        default:  // int32, int16, int8, uint16, uint8, bool: int32_data
          check_count(tp.int32_data_size(), "int32_data");
          iv.assign(tp.int32_data().begin(), tp.int32_data().end());
          break;
      }
    }
    out.value = floating ? core::Tensor::from_vector<double>(fv, shape)
                         : core::Tensor::from_vector<int64_t>(iv, shape);
    return out;
  }

  OnnxValueInfo value_info(const onnx::ValueInfoProto& vi) const {
    OnnxValueInfo out;
    out.name = vi.name();
    if (!vi.has_type() || !vi.type().has_tensor_type()) {
      out.elem_type = 0;
      return out;
    }
    const auto& tt = vi.type().tensor_type();
    out.elem_type = tt.elem_type();
    if (tt.has_shape()) {
      out.has_shape = true;
      for (const auto& d : tt.shape().dim()) {
        if (d.has_dim_value() && d.dim_value() >= 0) {
          out.dims.push_back(d.dim_value());
          out.dim_names.emplace_back();
        } else {
          out.dims.push_back(-1);
          out.dim_names.push_back(d.has_dim_param() ? d.dim_param() : std::string("?"));
        }
      }
    }
    return out;
  }

  OnnxAttribute attribute(const onnx::AttributeProto& ap, const std::string& node) const {
    OnnxAttribute a;
    a.name = ap.name();
    a.onnx_type = ap.type();
    switch (ap.type()) {
      case onnx::AttributeProto_AttributeType_FLOAT:
        a.kind = OnnxAttribute::Kind::kFloat;
        a.f = attribute_float(ap.f());
        break;
      case onnx::AttributeProto_AttributeType_INT:
        a.kind = OnnxAttribute::Kind::kInt;
        a.i = ap.i();
        break;
      case onnx::AttributeProto_AttributeType_STRING:
        a.kind = OnnxAttribute::Kind::kString;
        a.s = ap.s();
        break;
      case onnx::AttributeProto_AttributeType_TENSOR:
        a.kind = OnnxAttribute::Kind::kTensor;
        a.t = tensor(ap.t(), fmt::format("attribute '{}' of node {}", ap.name(), node));
        break;
      case onnx::AttributeProto_AttributeType_FLOATS:
        a.kind = OnnxAttribute::Kind::kFloats;
        for (float v : ap.floats()) {
          a.floats.push_back(attribute_float(v));
        }
        break;
      case onnx::AttributeProto_AttributeType_INTS:
        a.kind = OnnxAttribute::Kind::kInts;
        a.ints.assign(ap.ints().begin(), ap.ints().end());
        break;
      case onnx::AttributeProto_AttributeType_STRINGS:
        a.kind = OnnxAttribute::Kind::kStrings;
        a.strings.assign(ap.strings().begin(), ap.strings().end());
        break;
      default:
        a.kind = OnnxAttribute::Kind::kOther;
        break;
    }
    return a;
  }

 private:
  std::string source_;
};

// ---- writing --------------------------------------------------------------------------------

void put_tensor(const OnnxTensor& t, onnx::TensorProto* tp) {
  tp->set_name(t.name);
  for (int64_t d : t.value.shape()) {
    tp->add_dims(d);
  }
  const core::Tensor c = t.value.contiguous();
  std::string raw;
  if (c.dtype() == core::DType::kFloat64 || c.dtype() == core::DType::kFloat32) {
    const std::vector<double> v = c.to(core::DType::kFloat64).to_vector<double>();
    if (static_cast<DT>(t.data_type) == DT::kDouble) {
      tp->set_data_type(onnx::TensorProto_DataType_DOUBLE);
      raw.resize(v.size() * sizeof(double));
      std::memcpy(raw.data(), v.data(), raw.size());
    } else {
      tp->set_data_type(onnx::TensorProto_DataType_FLOAT);
      raw.resize(v.size() * sizeof(float));
      for (std::size_t k = 0; k < v.size(); ++k) {
        const auto f = static_cast<float>(v[k]);
        std::memcpy(raw.data() + k * sizeof f, &f, sizeof f);
      }
    }
  } else if (c.dtype() == core::DType::kInt64) {
    const std::vector<int64_t> v = c.to_vector<int64_t>();
    tp->set_data_type(onnx::TensorProto_DataType_INT64);
    raw.resize(v.size() * sizeof(int64_t));
    std::memcpy(raw.data(), v.data(), raw.size());
  } else {
    throw ValueError(fmt::format(
        "[export_onnx] tensor '{}' has dtype {}; ONNX export writes float and int64 tensors",
        t.name, core::dtype_name(c.dtype())));
  }
  tp->set_raw_data(std::move(raw));
}

void put_value_info(const OnnxValueInfo& v, onnx::ValueInfoProto* vp) {
  vp->set_name(v.name);
  auto* tt = vp->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(v.elem_type);
  if (!v.has_shape) {
    return;
  }
  auto* shape = tt->mutable_shape();
  for (std::size_t k = 0; k < v.dims.size(); ++k) {
    auto* d = shape->add_dim();
    if (v.dims[k] >= 0) {
      d->set_dim_value(v.dims[k]);
    } else if (k < v.dim_names.size() && !v.dim_names[k].empty() && v.dim_names[k] != "?") {
      d->set_dim_param(v.dim_names[k]);
    }  // else: an unknown extent (neither value nor name)
  }
}

void put_attribute(const OnnxAttribute& a, onnx::AttributeProto* ap) {
  ap->set_name(a.name);
  switch (a.kind) {
    case OnnxAttribute::Kind::kFloat:
      ap->set_type(onnx::AttributeProto_AttributeType_FLOAT);
      ap->set_f(static_cast<float>(a.f));
      break;
    case OnnxAttribute::Kind::kInt:
      ap->set_type(onnx::AttributeProto_AttributeType_INT);
      ap->set_i(a.i);
      break;
    case OnnxAttribute::Kind::kString:
      ap->set_type(onnx::AttributeProto_AttributeType_STRING);
      ap->set_s(a.s);
      break;
    case OnnxAttribute::Kind::kTensor:
      ap->set_type(onnx::AttributeProto_AttributeType_TENSOR);
      put_tensor(a.t, ap->mutable_t());
      break;
    case OnnxAttribute::Kind::kFloats:
      ap->set_type(onnx::AttributeProto_AttributeType_FLOATS);
      for (double v : a.floats) {
        ap->add_floats(static_cast<float>(v));
      }
      break;
    case OnnxAttribute::Kind::kInts:
      ap->set_type(onnx::AttributeProto_AttributeType_INTS);
      for (int64_t v : a.ints) {
        ap->add_ints(v);
      }
      break;
    case OnnxAttribute::Kind::kStrings:
      ap->set_type(onnx::AttributeProto_AttributeType_STRINGS);
      for (const auto& v : a.strings) {
        ap->add_strings(v);
      }
      break;
    case OnnxAttribute::Kind::kOther:
      throw ValueError(fmt::format(
          "[export_onnx] attribute '{}' has a kind (ONNX type {}) that veil cannot write", a.name,
          a.onnx_type));
  }
}

}  // namespace

bool onnx_available() {
  return true;
}

OnnxGraph read_onnx(const std::string& bytes, const std::string& source) {
  const Reader r(source);
  if (bytes.empty()) {
    r.fail("the file is empty");
  }
  if (bytes.size() > static_cast<std::size_t>(INT_MAX)) {
    r.fail(fmt::format("{} bytes is above protobuf's 2 GiB limit", bytes.size()));
  }
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    r.fail(
        fmt::format("not an ONNX model: the {} bytes do not parse as an onnx.ModelProto "
                    "(corrupt or truncated file?)",
                    bytes.size()));
  }
  if (model.ir_version() <= 0 || !model.has_graph()) {
    r.fail(fmt::format("not an ONNX model: {} (corrupt or truncated file?)",
                       model.has_graph() ? "no IR version" : "no graph"));
  }
  OnnxGraph g;
  g.ir_version = model.ir_version();
  g.producer_name = model.producer_name();
  g.producer_version = model.producer_version();
  for (const auto& op : model.opset_import()) {
    g.opsets.emplace_back(op.domain(), op.version());
  }
  const auto& graph = model.graph();
  g.graph_name = graph.name();
  if (graph.sparse_initializer_size() > 0) {
    r.fail(fmt::format("the graph has {} sparse initializers, which veil does not read",
                       graph.sparse_initializer_size()));
  }
  for (const auto& tp : graph.initializer()) {
    g.initializers.push_back(r.tensor(tp, "initializer"));
  }
  for (const auto& vi : graph.input()) {
    g.inputs.push_back(r.value_info(vi));
  }
  for (const auto& vi : graph.output()) {
    g.outputs.push_back(r.value_info(vi));
  }
  int index = 0;
  for (const auto& np : graph.node()) {
    OnnxNode n;
    n.op_type = np.op_type();
    n.domain = np.domain();
    n.name = np.name().empty() ? fmt::format("<node {}>", index) : np.name();
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    for (const auto& ap : np.attribute()) {
      n.attributes.push_back(r.attribute(ap, fmt::format("{} '{}'", n.op_type, n.name)));
    }
    g.nodes.push_back(std::move(n));
    ++index;
  }
  return g;
}

std::string write_onnx(const OnnxGraph& g) {
  onnx::ModelProto model;
  model.set_ir_version(g.ir_version);
  model.set_producer_name(g.producer_name);
  model.set_producer_version(g.producer_version);
  for (const auto& [domain, version] : g.opsets) {
    auto* op = model.add_opset_import();
    op->set_domain(domain);
    op->set_version(version);
  }
  auto* graph = model.mutable_graph();
  graph->set_name(g.graph_name);
  for (const auto& n : g.nodes) {
    auto* np = graph->add_node();
    np->set_op_type(n.op_type);
    np->set_domain(n.domain);
    np->set_name(n.name);
    for (const auto& i : n.inputs) {
      np->add_input(i);
    }
    for (const auto& o : n.outputs) {
      np->add_output(o);
    }
    for (const auto& a : n.attributes) {
      put_attribute(a, np->add_attribute());
    }
  }
  for (const auto& t : g.initializers) {
    put_tensor(t, graph->add_initializer());
  }
  for (const auto& v : g.inputs) {
    put_value_info(v, graph->add_input());
  }
  for (const auto& v : g.outputs) {
    put_value_info(v, graph->add_output());
  }
  std::string out;
  if (!model.SerializeToString(&out)) {
    throw ValueError("[export_onnx] protobuf could not serialize the model (above 2 GiB?)");
  }
  return out;
}

}  // namespace veil::models
