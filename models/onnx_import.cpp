// OnnxModel: compiles an OnnxGraph (models/onnx_ir.h) into a list of steps over value slots, each
// step one ONNX node evaluated with veil's differentiable MpcTensor ops. No ONNX header here: the
// protobuf side is models/onnx_proto.cpp (or models/onnx_stub.cpp).
//
// Import = three passes over the graph:
//   1. every initializer's role from the positions it is read in: operand (parameter), BN
//      statistic (buffer), import-time constant (shape, axes, pads, bounds: not registered);
//   2. registration of parameters and buffers under their ONNX names (child modules per dotted
//      segment, see the header);
//   3. node by node, in file order (ONNX graphs are topologically sorted): resolve inputs to
//      slots, check attributes, read import-time constants and build the step; problems are
//      collected, never thrown one by one, so the caller gets every unsupported node at once.

#include "models/onnx_import.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "autograd/autograd.h"
#include "core/error.h"

namespace veil::models {

// ---- IR helpers (declared in models/onnx_ir.h, compiled with and without libonnx) -------------

std::string onnx_data_type_name(int32_t data_type) {
  switch (static_cast<OnnxDataType>(data_type)) {
    case OnnxDataType::kUndefined:
      return "UNDEFINED";
    case OnnxDataType::kFloat:
      return "FLOAT";
    case OnnxDataType::kUInt8:
      return "UINT8";
    case OnnxDataType::kInt8:
      return "INT8";
    case OnnxDataType::kUInt16:
      return "UINT16";
    case OnnxDataType::kInt16:
      return "INT16";
    case OnnxDataType::kInt32:
      return "INT32";
    case OnnxDataType::kInt64:
      return "INT64";
    case OnnxDataType::kString:
      return "STRING";
    case OnnxDataType::kBool:
      return "BOOL";
    case OnnxDataType::kFloat16:
      return "FLOAT16";
    case OnnxDataType::kDouble:
      return "DOUBLE";
    case OnnxDataType::kUInt32:
      return "UINT32";
    case OnnxDataType::kUInt64:
      return "UINT64";
    case OnnxDataType::kBFloat16:
      return "BFLOAT16";
  }
  return fmt::format("type {}", data_type);
}

const OnnxAttribute* OnnxNode::attribute(const std::string& attr_name) const {
  for (const auto& a : attributes) {
    if (a.name == attr_name) {
      return &a;
    }
  }
  return nullptr;
}

int64_t OnnxGraph::default_opset() const {
  for (const auto& [domain, version] : opsets) {
    if (domain.empty() || domain == "ai.onnx") {
      return version;
    }
  }
  return -1;
}

namespace {

// One compiled node: reads slots `in` (-1: absent), writes slots `out` (-1: not computed).
using StepFn = std::function<std::vector<MpcTensor>(const std::vector<MpcTensor>&, bool)>;

struct Step {
  std::string label;
  std::vector<int> in;
  std::vector<int> out;
  StepFn run;
};

// A namespace level of the parameter tree ("features" in "features.0.weight"): only holds
// children, parameters and buffers.
class OnnxScopeImpl : public nn::Module {};

bool is_float_type(int32_t dt) {
  const auto t = static_cast<OnnxDataType>(dt);
  return t == OnnxDataType::kFloat || t == OnnxDataType::kDouble || t == OnnxDataType::kFloat16 ||
         t == OnnxDataType::kBFloat16;
}

bool is_default_domain(const std::string& d) {
  return d.empty() || d == "ai.onnx";
}

// ---- runtime helpers (throw ValueError; forward() prefixes the node) --------------------------

int64_t norm_axis(int64_t axis, int64_t rank, const char* what) {
  const int64_t a = axis < 0 ? axis + rank : axis;
  VEIL_CHECK(a >= 0 && a < rank, "[{}] axis {} is out of range for a tensor of rank {}", what, axis,
             rank);
  return a;
}

int64_t prod(const core::Shape& s, std::size_t begin, std::size_t end) {
  int64_t p = 1;
  for (std::size_t k = begin; k < end; ++k) {
    p *= s[k];
  }
  return p;
}

// ONNX pads [b_0, b_1, ..., e_0, e_1, ...] over the last pads.size()/2 dims -> veil::pad's
// {begin, end} pairs, last dim first.
std::vector<int64_t> torch_pads(const std::vector<int64_t>& onnx_pads) {
  const std::size_t r = onnx_pads.size() / 2;
  std::vector<int64_t> out;
  for (std::size_t k = r; k-- > 0;) {
    out.push_back(onnx_pads[k]);
    out.push_back(onnx_pads[k + r]);
  }
  return out;
}

MpcTensor reshape_bias(const MpcTensor& b, int64_t spatial_dims) {
  core::Shape s{b.numel()};
  for (int64_t k = 0; k < spatial_dims; ++k) {
    s.push_back(1);
  }
  return reshape(b, s);
}

std::vector<MpcTensor> one(MpcTensor t) {
  return {std::move(t)};
}

// Sum over `axes` (sorted, distinct, non-negative) with keepdims, then squeezed when !keepdims.
MpcTensor reduce_sum_axes(MpcTensor x, std::vector<int64_t> axes, bool keepdims) {
  for (int64_t a : axes) {
    x = sum(x, a, true);
  }
  if (!keepdims) {
    std::sort(axes.rbegin(), axes.rend());
    for (int64_t a : axes) {
      x = squeeze(x, a);
    }
  }
  return x;
}

// ---- the compiler -------------------------------------------------------------------------------

struct SlotInfo {
  std::string name;
  // Value known at import time (initializer or Constant output): float64 or int64.
  std::optional<core::Tensor> constant;
  bool is_initializer = false;
  // Leaf value set into the slot at every forward (parameter, buffer or public constant).
  MpcTensor leaf;
  // Non-empty: an output veil does not compute (reading it is an error).
  std::string unavailable;
  // Produced by a node that could not be imported (its readers report nothing more about it).
  bool failed = false;
  std::string producer;
};

class NodeCtx;

}  // namespace

struct OnnxModelImpl::Program {
  OnnxGraph graph;
  std::string source;
  int64_t opset = 0;
  std::vector<OnnxValueInfo> inputs;
  std::vector<OnnxValueInfo> outputs;
  std::size_t num_slots = 0;
  std::vector<std::pair<int, MpcTensor>> leaves;
  std::vector<int> input_slots;
  std::vector<int> output_slots;
  std::vector<Step> steps;
  std::vector<std::vector<int>> release_after;
  std::vector<std::pair<std::string, std::string>> names;
};

namespace {

// Inputs whose values the importer reads at import time (shapes, axes, bounds, ...).
bool is_static_input(const std::string& op, std::size_t k) {
  static const std::map<std::string, std::set<std::size_t>> kStatic = {
      {"Reshape", {1}},    {"Squeeze", {1}},    {"Unsqueeze", {1}},      {"Pad", {1, 2, 3}},
      {"Clip", {1, 2}},    {"Dropout", {1, 2}}, {"Slice", {1, 2, 3, 4}}, {"ReduceSum", {1}},
      {"ReduceMean", {1}}, {"Pow", {1}},        {"Gather", {1}},
  };
  const auto it = kStatic.find(op);
  return it != kStatic.end() && it->second.count(k) > 0;
}

class Compiler {
 public:
  Compiler(OnnxModelImpl& model,
           OnnxModelImpl::Program& prog,
           Party& party,
           const OnnxImportOptions& options)
      : model_(model), prog_(prog), party_(party), options_(options) {}

  void run();

  // -- used by NodeCtx and the op builders --
  Party& party() { return party_; }
  int64_t opset() const { return prog_.opset; }
  const std::string& source() const { return prog_.source; }
  SlotInfo& slot(int id) { return slots_[static_cast<std::size_t>(id)]; }
  int find(const std::string& name) const {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? -1 : it->second;
  }
  void error(std::string what) { errors_.push_back(std::move(what)); }

 private:
  int new_slot(const std::string& name);
  void classify_and_register();
  void register_tensor(const std::string& onnx_name, const MpcTensor& t, bool buffer);
  void compile_node(const OnnxNode& n);
  [[noreturn]] void fail(const std::string& what) const {
    throw ValueError(fmt::format("[onnx_import] {}: {}", prog_.source, what));
  }

  OnnxModelImpl& model_;
  OnnxModelImpl::Program& prog_;
  Party& party_;
  OnnxImportOptions options_;
  std::vector<SlotInfo> slots_;
  std::map<std::string, int> by_name_;
  std::vector<std::string> unsupported_;
  std::vector<std::string> errors_;
  // Registration tree: dotted prefixes that are scopes, full names that are tensors.
  std::map<std::string, std::shared_ptr<nn::Module>> scopes_;
  std::set<std::string> tensor_names_;
};

// What one node's builder sees: attributes with defaults and kind checks, inputs as slots or
// import-time constants, and a list of problems.
class NodeCtx {
 public:
  NodeCtx(Compiler& c, const OnnxNode& n) : c_(c), n_(n) {}

  const OnnxNode& node() const { return n_; }
  const std::string& op() const { return n_.op_type; }
  int64_t opset() const { return c_.opset(); }
  Party& party() { return c_.party(); }
  void bad(std::string reason) { problems_.push_back(std::move(reason)); }
  const std::vector<std::string>& problems() const { return problems_; }

  // Declares the attributes this op understands; any other one is a problem.
  void known(std::initializer_list<const char*> names) {
    for (const auto& a : n_.attributes) {
      const bool ok =
          std::any_of(names.begin(), names.end(), [&](const char* k) { return a.name == k; });
      if (!ok) {
        bad(fmt::format("attribute '{}' is not supported", a.name));
      }
    }
  }

  bool has(const char* name) const { return n_.attribute(name) != nullptr; }

  int64_t i(const char* name, int64_t def) {
    const OnnxAttribute* a = n_.attribute(name);
    if (a == nullptr) {
      return def;
    }
    if (a->kind != OnnxAttribute::Kind::kInt) {
      bad(fmt::format("attribute '{}' should be an int", name));
      return def;
    }
    return a->i;
  }
  double f(const char* name, double def) {
    const OnnxAttribute* a = n_.attribute(name);
    if (a == nullptr) {
      return def;
    }
    if (a->kind != OnnxAttribute::Kind::kFloat) {
      bad(fmt::format("attribute '{}' should be a float", name));
      return def;
    }
    return a->f;
  }
  std::string s(const char* name, const std::string& def) {
    const OnnxAttribute* a = n_.attribute(name);
    if (a == nullptr) {
      return def;
    }
    if (a->kind != OnnxAttribute::Kind::kString) {
      bad(fmt::format("attribute '{}' should be a string", name));
      return def;
    }
    return a->s;
  }
  std::vector<int64_t> ints(const char* name, std::vector<int64_t> def = {}) {
    const OnnxAttribute* a = n_.attribute(name);
    if (a == nullptr) {
      return def;
    }
    if (a->kind != OnnxAttribute::Kind::kInts) {
      bad(fmt::format("attribute '{}' should be a list of ints", name));
      return def;
    }
    return a->ints;
  }
  std::optional<std::vector<double>> floats(const char* name) {
    const OnnxAttribute* a = n_.attribute(name);
    if (a == nullptr) {
      return std::nullopt;
    }
    if (a->kind != OnnxAttribute::Kind::kFloats) {
      bad(fmt::format("attribute '{}' should be a list of floats", name));
      return std::nullopt;
    }
    return a->floats;
  }

  std::size_t num_inputs() const { return n_.inputs.size(); }
  bool present(std::size_t k) const { return k < n_.inputs.size() && !n_.inputs[k].empty(); }

  // The import-time value of input k; nullptr when absent, or (with a problem recorded) when it
  // is computed at run time.
  const core::Tensor* constant(std::size_t k, const char* what) {
    if (!present(k)) {
      return nullptr;
    }
    const int id = c_.find(n_.inputs[k]);
    if (id < 0) {
      return nullptr;  // reported as an unknown input
    }
    SlotInfo& s = c_.slot(id);
    if (s.constant) {
      return &*s.constant;
    }
    if (!s.failed) {
      bad(
          fmt::format("its {} '{}' is computed at run time; veil needs it as a constant "
                      "(initializer or Constant node)",
                      what, n_.inputs[k]));
    }
    return nullptr;
  }
  // Whether input k is known at import time (without recording a problem).
  bool is_constant(std::size_t k) const {
    if (!present(k)) {
      return false;
    }
    const int id = c_.find(n_.inputs[k]);
    return id >= 0 && c_.slot(id).constant.has_value();
  }

  std::optional<std::vector<int64_t>> const_ints(std::size_t k, const char* what) {
    const core::Tensor* t = constant(k, what);
    if (t == nullptr) {
      return std::nullopt;
    }
    if (t->dtype() != core::DType::kInt64 || t->dim() > 1) {
      bad(fmt::format("its {} '{}' should be a 1-D integer tensor", what, n_.inputs[k]));
      return std::nullopt;
    }
    return t->contiguous().to_vector<int64_t>();
  }
  std::optional<double> const_scalar(std::size_t k, const char* what) {
    const core::Tensor* t = constant(k, what);
    if (t == nullptr) {
      return std::nullopt;
    }
    if (t->numel() != 1) {
      bad(fmt::format("its {} '{}' should hold one value, it holds {}", what, n_.inputs[k],
                      t->numel()));
      return std::nullopt;
    }
    return t->to(core::DType::kFloat64).contiguous().to_vector<double>()[0];
  }

 private:
  Compiler& c_;
  const OnnxNode& n_;
  std::vector<std::string> problems_;
};

// Spatial parameters shared by Conv, ConvTranspose and the pools.
struct Spatial {
  std::vector<int64_t> kernel;
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> pads;  // ONNX order: begins then ends
};

// Reads kernel_shape / strides / dilations / pads / auto_pad for `rank` spatial dims (rank -1:
// not known yet; then the lists are checked for consistency only).
std::optional<Spatial> read_spatial(NodeCtx& c, int64_t rank, bool kernel_required) {
  Spatial sp;
  sp.kernel = c.ints("kernel_shape");
  if (rank < 0) {
    rank = !sp.kernel.empty() ? static_cast<int64_t>(sp.kernel.size()) : -1;
  }
  if (kernel_required && sp.kernel.empty()) {
    c.bad("attribute 'kernel_shape' is missing");
    return std::nullopt;
  }
  if (rank >= 0 && rank != 1 && rank != 2) {
    c.bad(fmt::format("{}-D windows are not supported (1-D and 2-D are)", rank));
    return std::nullopt;
  }
  const std::string auto_pad = c.s("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && !auto_pad.empty()) {
    c.bad(fmt::format("auto_pad {} is not supported (NOTSET, VALID)", auto_pad));
  }
  sp.strides = c.ints("strides");
  sp.dilations = c.ints("dilations");
  sp.pads = c.ints("pads");
  if (auto_pad == "VALID" && !sp.pads.empty() &&
      std::any_of(sp.pads.begin(), sp.pads.end(), [](int64_t p) { return p != 0; })) {
    c.bad("auto_pad VALID with non-zero pads");
  }
  if (rank < 0) {
    return sp;
  }
  const auto r = static_cast<std::size_t>(rank);
  auto fill = [&](std::vector<int64_t>& v, std::size_t n, int64_t def, const char* what) {
    if (v.empty()) {
      v.assign(n, def);
    } else if (v.size() != n) {
      c.bad(fmt::format("attribute '{}' has {} entries, expected {}", what, v.size(), n));
      v.assign(n, def);
    }
  };
  if (!sp.kernel.empty() && sp.kernel.size() != r) {
    c.bad(fmt::format("attribute 'kernel_shape' has {} entries, expected {}", sp.kernel.size(), r));
  }
  fill(sp.strides, r, 1, "strides");
  fill(sp.dilations, r, 1, "dilations");
  fill(sp.pads, 2 * r, 0, "pads");
  for (int64_t v : sp.strides) {
    if (v < 1) {
      c.bad("strides must be >= 1");
    }
  }
  for (int64_t v : sp.dilations) {
    if (v < 1) {
      c.bad("dilations must be >= 1");
    }
  }
  for (int64_t v : sp.pads) {
    if (v < 0) {
      c.bad("negative pads are not supported");
    }
  }
  return sp;
}

bool symmetric(const std::vector<int64_t>& pads) {
  const std::size_t r = pads.size() / 2;
  for (std::size_t k = 0; k < r; ++k) {
    if (pads[k] != pads[k + r]) {
      return false;
    }
  }
  return true;
}

using Builder = std::function<StepFn(NodeCtx&)>;

StepFn unary(NodeCtx& c, MpcTensor (*fn)(const MpcTensor&)) {
  c.known({});
  return [fn](const std::vector<MpcTensor>& in, bool) {
    return one(fn(in[0]));
  };
}

StepFn binary(NodeCtx& c, MpcTensor (*fn)(const MpcTensor&, const MpcTensor&)) {
  c.known({});
  return [fn](const std::vector<MpcTensor>& in, bool) {
    return one(fn(in[0], in[1]));
  };
}

MpcTensor identity_fn(const MpcTensor& x) {
  return x;
}

// x clamped to [lo, hi] with either bound optional (relu forms for one bound).
StepFn clip_fn(std::optional<double> lo, std::optional<double> hi) {
  return [lo, hi](const std::vector<MpcTensor>& in, bool) {
    const MpcTensor& x = in[0];
    if (lo && hi) {
      return one(hardtanh(x, *lo, *hi));
    }
    if (lo) {
      return one(add(relu(add(x, -*lo)), *lo));  // lo + relu(x - lo)
    }
    if (hi) {
      return one(add(neg(relu(add(neg(x), *hi))), *hi));  // hi - relu(hi - x)
    }
    return one(x);
  };
}

StepFn build_conv(NodeCtx& c) {
  c.known({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
  const int64_t group = c.i("group", 1);
  if (group < 1) {
    c.bad("group must be >= 1");
  }
  int64_t rank = -1;
  if (const core::Tensor* w = c.is_constant(1) ? c.constant(1, "weight") : nullptr) {
    rank = w->dim() - 2;
  }
  auto sp = read_spatial(c, rank, false);
  if (!sp) {
    return {};
  }
  const Spatial s = *sp;
  const bool has_bias = c.present(2);
  return [s, group, has_bias](const std::vector<MpcTensor>& in, bool) {
    MpcTensor x = in[0];
    const MpcTensor& w = in[1];
    const int64_t r = w.dim() - 2;
    VEIL_CHECK(r == 1 || r == 2, "[Conv] expected a 1-D or 2-D kernel, got weight {}",
               core::shape_str(w.shape()));
    const auto ur = static_cast<std::size_t>(r);
    auto check = [&](const std::vector<int64_t>& v, std::size_t n, const char* what) {
      VEIL_CHECK(v.empty() || v.size() == n,
                 "[Conv] attribute '{}' has {} entries, a {}-D "
                 "convolution needs {}",
                 what, v.size(), r, n);
    };
    check(s.strides, ur, "strides");
    check(s.dilations, ur, "dilations");
    check(s.pads, 2 * ur, "pads");
    auto at = [&](const std::vector<int64_t>& v, std::size_t k, int64_t def) {
      return v.empty() ? def : v[k];
    };
    if (!s.kernel.empty()) {
      VEIL_CHECK(s.kernel.size() == ur &&
                     std::equal(s.kernel.begin(), s.kernel.end(), w.shape().begin() + 2),
                 "[Conv] kernel_shape {} does not match weight {}", fmt::join(s.kernel, "x"),
                 core::shape_str(w.shape()));
    }
    std::vector<int64_t> pads = s.pads.size() == 2 * ur ? s.pads : std::vector<int64_t>(2 * ur, 0);
    if (!symmetric(pads)) {
      x = pad(x, torch_pads(pads));
      pads.assign(2 * ur, 0);
    }
    MpcTensor y;
    if (r == 2) {
      core::Conv2dParams p;
      p.stride_h = at(s.strides, 0, 1);
      p.stride_w = at(s.strides, 1, 1);
      p.dilation_h = at(s.dilations, 0, 1);
      p.dilation_w = at(s.dilations, 1, 1);
      p.pad_h = pads[0];
      p.pad_w = pads[1];
      p.groups = group;
      y = conv2d(x, w, p);
    } else {
      core::Conv1dParams p;
      p.stride = at(s.strides, 0, 1);
      p.dilation = at(s.dilations, 0, 1);
      p.padding = pads[0];
      p.groups = group;
      y = conv1d(x, w, p);
    }
    if (has_bias) {
      y = add(y, reshape_bias(in[2], r));
    }
    return one(y);
  };
}

StepFn build_conv_transpose(NodeCtx& c) {
  c.known({"auto_pad", "dilations", "group", "kernel_shape", "output_padding", "pads", "strides",
           "output_shape"});
  if (c.has("output_shape")) {
    c.bad("attribute 'output_shape' is not supported (give pads and output_padding)");
  }
  const int64_t group = c.i("group", 1);
  auto sp = read_spatial(c, 2, false);
  std::vector<int64_t> out_pad = c.ints("output_padding", {0, 0});
  if (out_pad.size() != 2) {
    c.bad("only 2-D ConvTranspose is supported");
  }
  if (!sp || out_pad.size() != 2) {
    return {};
  }
  if (!symmetric(sp->pads)) {
    c.bad(fmt::format("asymmetric pads [{}] are not supported", fmt::join(sp->pads, ", ")));
  }
  core::ConvTranspose2dParams p;
  p.stride_h = sp->strides[0];
  p.stride_w = sp->strides[1];
  p.dilation_h = sp->dilations[0];
  p.dilation_w = sp->dilations[1];
  p.pad_h = sp->pads[0];
  p.pad_w = sp->pads[1];
  p.output_pad_h = out_pad[0];
  p.output_pad_w = out_pad[1];
  p.groups = group;
  const bool has_bias = c.present(2);
  return [p, has_bias](const std::vector<MpcTensor>& in, bool) {
    MpcTensor y = conv_transpose2d(in[0], in[1], p);
    if (has_bias) {
      y = add(y, reshape_bias(in[2], 2));
    }
    return one(y);
  };
}

StepFn build_pool(NodeCtx& c, bool is_max) {
  if (is_max) {
    c.known(
        {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"});
  } else {
    c.known({"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads",
             "strides"});
  }
  const int64_t ceil_mode = c.i("ceil_mode", 0);
  if (ceil_mode != 0) {
    c.bad(fmt::format("ceil_mode {} is not supported (only 0)", ceil_mode));
  }
  if (is_max && c.i("storage_order", 0) != 0) {
    c.bad("storage_order 1 is not supported (only 0)");
  }
  const bool count_include_pad = !is_max && c.i("count_include_pad", 0) != 0;
  auto sp = read_spatial(c, -1, true);
  if (!sp) {
    return {};
  }
  if (sp->kernel.size() != 2) {
    c.bad(fmt::format("{}-D pooling is not supported (only 2-D)", sp->kernel.size()));
    return {};
  }
  if (!symmetric(sp->pads)) {
    c.bad(fmt::format("asymmetric pads [{}] are not supported", fmt::join(sp->pads, ", ")));
  }
  core::Pool2dParams p;
  p.kernel_h = sp->kernel[0];
  p.kernel_w = sp->kernel[1];
  p.stride_h = sp->strides[0];
  p.stride_w = sp->strides[1];
  p.dilation_h = sp->dilations[0];
  p.dilation_w = sp->dilations[1];
  p.pad_h = sp->pads[0];
  p.pad_w = sp->pads[1];
  p.count_include_pad = count_include_pad;
  return [p, is_max](const std::vector<MpcTensor>& in, bool) {
    return one(is_max ? max_pool2d(in[0], p) : avg_pool2d(in[0], p));
  };
}

StepFn build_global_pool(NodeCtx& c, bool is_max) {
  c.known({});
  return [is_max](const std::vector<MpcTensor>& in, bool) {
    const MpcTensor& x = in[0];
    VEIL_CHECK(x.dim() == 4 || (x.dim() == 3 && !is_max),
               "[{}] expected an input [N, C, H, W]{}, got {}",
               is_max ? "GlobalMaxPool" : "GlobalAveragePool", is_max ? "" : " or [N, C, L]",
               core::shape_str(x.shape()));
    if (x.dim() == 3) {
      return one(mean(x, 2, true));
    }
    return one(is_max ? adaptive_max_pool2d(x, {1, 1}) : adaptive_avg_pool2d(x, {1, 1}));
  };
}

StepFn build_gemm(NodeCtx& c) {
  c.known({"alpha", "beta", "transA", "transB"});
  const double alpha = c.f("alpha", 1.0);
  const double beta = c.f("beta", 1.0);
  const bool ta = c.i("transA", 0) != 0;
  const bool tb = c.i("transB", 0) != 0;
  const bool has_c = c.present(2);
  return [=](const std::vector<MpcTensor>& in, bool) {
    VEIL_CHECK(in[0].dim() == 2 && in[1].dim() == 2, "[Gemm] expected 2-D A and B, got {} and {}",
               core::shape_str(in[0].shape()), core::shape_str(in[1].shape()));
    const MpcTensor a = ta ? transpose(in[0]) : in[0];
    const MpcTensor b = tb ? transpose(in[1]) : in[1];
    MpcTensor y = matmul(a, b);
    if (alpha != 1.0) {
      y = mul(y, alpha);
    }
    if (has_c) {
      y = add(y, beta != 1.0 ? mul(in[2], beta) : in[2]);
    }
    return one(y);
  };
}

StepFn build_batch_norm(NodeCtx& c) {
  c.known({"epsilon", "momentum", "training_mode", "spatial", "is_test"});
  const double eps = c.f("epsilon", 1e-5);
  if (c.i("training_mode", 0) != 0) {
    c.bad("training_mode 1 is not supported (veil imports BatchNormalization in inference mode)");
  }
  if (c.i("spatial", 1) != 1) {
    c.bad("spatial 0 is not supported");
  }
  if (!c.present(3) || !c.present(4)) {
    c.bad("the running mean and variance inputs are required");
  }
  return [eps](const std::vector<MpcTensor>& in, bool) {
    return one(batch_norm(in[0], in[3], in[4], in[1], in[2], /*training=*/false, 0.1, eps));
  };
}

StepFn build_layer_norm(NodeCtx& c) {
  c.known({"axis", "epsilon", "stash_type"});
  const int64_t axis = c.i("axis", -1);
  const double eps = c.f("epsilon", 1e-5);
  const bool has_bias = c.present(2);
  return [axis, eps, has_bias](const std::vector<MpcTensor>& in, bool) {
    const MpcTensor& x = in[0];
    const int64_t a = norm_axis(axis, x.dim(), "LayerNormalization");
    const core::Shape normalized(x.shape().begin() + a, x.shape().end());
    auto fit = [&](const MpcTensor& t) {
      return t.shape() == normalized ? t : reshape(t, normalized);
    };
    return one(layer_norm(x, normalized, fit(in[1]), has_bias ? fit(in[2]) : MpcTensor(), eps));
  };
}

StepFn build_softmax(NodeCtx& c, bool is_log) {
  c.known({"axis"});
  const bool legacy = c.opset() < 13;
  const int64_t axis = c.i("axis", legacy ? 1 : -1);
  return [axis, legacy, is_log](const std::vector<MpcTensor>& in, bool) {
    const MpcTensor& x = in[0];
    const char* name = is_log ? "LogSoftmax" : "Softmax";
    const int64_t a = norm_axis(axis, x.dim(), name);
    auto f = [is_log](const MpcTensor& t, int64_t d) {
      return is_log ? log_softmax(t, d) : softmax(t, d);
    };
    if (!legacy || a == x.dim() - 1) {
      return one(f(x, a));
    }
    // opset < 13: softmax over the flattened trailing dims [a, rank).
    const auto ua = static_cast<std::size_t>(a);
    const core::Shape flat{prod(x.shape(), 0, ua), prod(x.shape(), ua, x.shape().size())};
    return one(reshape(f(reshape(x, flat), 1), x.shape()));
  };
}

StepFn build_flatten(NodeCtx& c) {
  c.known({"axis"});
  const int64_t axis = c.i("axis", 1);
  return [axis](const std::vector<MpcTensor>& in, bool) {
    const MpcTensor& x = in[0];
    const int64_t r = x.dim();
    const int64_t a = axis < 0 ? axis + r : axis;
    VEIL_CHECK(a >= 0 && a <= r, "[Flatten] axis {} is out of range for rank {}", axis, r);
    const auto ua = static_cast<std::size_t>(a);
    return one(reshape(x, {prod(x.shape(), 0, ua), prod(x.shape(), ua, x.shape().size())}));
  };
}

StepFn build_reshape(NodeCtx& c) {
  c.known({"allowzero"});
  const std::optional<std::vector<int64_t>> shape = c.const_ints(1, "shape");
  const bool allowzero = c.i("allowzero", 0) != 0;
  if (!shape) {
    return {};
  }
  const std::vector<int64_t> target = *shape;
  return [target, allowzero](const std::vector<MpcTensor>& in, bool) {
    const MpcTensor& x = in[0];
    core::Shape s = target;
    for (std::size_t k = 0; k < s.size(); ++k) {
      if (s[k] == 0 && !allowzero) {
        VEIL_CHECK(k < x.shape().size(),
                   "[Reshape] shape entry {} copies a dimension that the "
                   "input {} does not have",
                   k, core::shape_str(x.shape()));
        s[k] = x.shape()[k];
      }
    }
    return one(reshape(x, s));
  };
}

StepFn build_transpose(NodeCtx& c) {
  c.known({"perm"});
  const std::vector<int64_t> perm = c.ints("perm");
  return [perm](const std::vector<MpcTensor>& in, bool) {
    const MpcTensor& x = in[0];
    std::vector<int64_t> p = perm;
    if (p.empty()) {
      for (int64_t k = x.dim(); k-- > 0;) {
        p.push_back(k);
      }
    }
    return one(permute(x, p));
  };
}

// Axes from the attribute (older opsets) or the constant input 1 (newer ones).
std::optional<std::vector<int64_t>> axes_of(NodeCtx& c, int64_t input_since) {
  if (c.opset() < input_since) {
    return c.ints("axes");
  }
  if (!c.present(1)) {
    return std::vector<int64_t>{};
  }
  return c.const_ints(1, "axes");
}

StepFn build_squeeze(NodeCtx& c, bool un) {
  c.known({"axes"});
  const auto axes = axes_of(c, 13);
  if (!axes) {
    return {};
  }
  if (un && axes->empty()) {
    c.bad("Unsqueeze needs axes");
    return {};
  }
  const std::vector<int64_t> ax = *axes;
  return [ax, un](const std::vector<MpcTensor>& in, bool) {
    MpcTensor x = in[0];
    const char* name = un ? "Unsqueeze" : "Squeeze";
    if (!un && ax.empty()) {
      return one(squeeze(x));
    }
    const int64_t rank = un ? x.dim() + static_cast<int64_t>(ax.size()) : x.dim();
    std::vector<int64_t> a;
    for (int64_t v : ax) {
      a.push_back(norm_axis(v, rank, name));
    }
    std::sort(a.begin(), a.end());
    if (un) {
      for (int64_t v : a) {
        x = unsqueeze(x, v);
      }
      return one(x);
    }
    for (auto it = a.rbegin(); it != a.rend(); ++it) {
      VEIL_CHECK(x.size(*it) == 1, "[Squeeze] dimension {} of {} is not 1", *it,
                 core::shape_str(x.shape()));
      x = squeeze(x, *it);
    }
    return one(x);
  };
}

StepFn build_slice(NodeCtx& c) {
  c.known({"starts", "ends", "axes"});
  std::optional<std::vector<int64_t>> starts, ends, axes, steps;
  if (c.opset() < 10) {
    starts = c.ints("starts");
    ends = c.ints("ends");
    axes = c.ints("axes");
    steps = std::vector<int64_t>{};
  } else {
    starts = c.const_ints(1, "starts");
    ends = c.const_ints(2, "ends");
    axes = c.present(3) ? c.const_ints(3, "axes") : std::vector<int64_t>{};
    steps = c.present(4) ? c.const_ints(4, "steps") : std::vector<int64_t>{};
  }
  if (!starts || !ends || !axes || !steps) {
    return {};
  }
  if (starts->size() != ends->size() || (!axes->empty() && axes->size() != starts->size()) ||
      (!steps->empty() && steps->size() != starts->size())) {
    c.bad("starts, ends, axes and steps differ in length");
    return {};
  }
  for (int64_t s : *steps) {
    if (s < 1) {
      c.bad(fmt::format("step {} is not supported (only steps >= 1)", s));
      return {};
    }
  }
  const auto st = *starts;
  const auto en = *ends;
  const auto ax = *axes;
  const auto sp = *steps;
  return [st, en, ax, sp](const std::vector<MpcTensor>& in, bool) {
    MpcTensor x = in[0];
    for (std::size_t k = 0; k < st.size(); ++k) {
      const int64_t a = norm_axis(ax.empty() ? static_cast<int64_t>(k) : ax[k], x.dim(), "Slice");
      const int64_t size = x.size(a);
      // ONNX clamps to [-size, size]; veil::slice takes Python semantics on that range.
      const int64_t b = std::clamp<int64_t>(st[k], -size, size);
      const int64_t e = std::clamp<int64_t>(en[k], -size, size);
      x = slice(x, a, b, e, sp.empty() ? 1 : sp[k]);
    }
    return one(x);
  };
}

StepFn build_pad(NodeCtx& c) {
  c.known({"mode", "pads", "value"});
  const std::string mode = c.s("mode", "constant");
  if (mode != "constant") {
    c.bad(fmt::format("mode '{}' is not supported (only constant)", mode));
  }
  std::optional<std::vector<int64_t>> pads;
  double value = 0.0;
  std::optional<std::vector<int64_t>> axes = std::vector<int64_t>{};
  if (c.opset() < 11) {
    pads = c.ints("pads");
    value = c.f("value", 0.0);
  } else {
    pads = c.const_ints(1, "pads");
    if (c.present(2)) {
      value = c.const_scalar(2, "constant_value").value_or(0.0);
    }
    if (c.present(3)) {
      axes = c.const_ints(3, "axes");
    }
  }
  if (!pads || !axes) {
    return {};
  }
  if (pads->size() % 2 != 0 || (!axes->empty() && pads->size() != 2 * axes->size())) {
    c.bad("pads has the wrong number of entries");
    return {};
  }
  const auto pd = *pads;
  const auto ax = *axes;
  return [pd, ax, value](const std::vector<MpcTensor>& in, bool) {
    const MpcTensor& x = in[0];
    const auto r = static_cast<std::size_t>(x.dim());
    // Full ONNX pads over every dim, then torch order.
    std::vector<int64_t> full(2 * r, 0);
    const std::size_t n = pd.size() / 2;
    VEIL_CHECK(!ax.empty() || n == r, "[Pad] {} pads for a tensor of rank {}", pd.size(), r);
    for (std::size_t k = 0; k < n; ++k) {
      const auto a = static_cast<std::size_t>(ax.empty() ? static_cast<int64_t>(k)
                                                         : norm_axis(ax[k], x.dim(), "Pad"));
      full[a] = pd[k];
      full[a + r] = pd[k + n];
    }
    return one(pad(x, torch_pads(full), value));
  };
}

StepFn build_gather(NodeCtx& c) {
  c.known({"axis"});
  const int64_t axis = c.i("axis", 0);
  const core::Tensor* idx = c.constant(1, "indices");
  if (idx == nullptr) {
    return {};
  }
  if (idx->dtype() != core::DType::kInt64) {
    c.bad("its indices should be integers");
    return {};
  }
  const core::Tensor indices = idx->contiguous().clone();
  return [axis, indices](const std::vector<MpcTensor>& in, bool) {
    const MpcTensor& x = in[0];
    const int64_t a = norm_axis(axis, x.dim(), "Gather");
    const int64_t size = x.size(a);
    std::vector<int64_t> v = indices.to_vector<int64_t>();
    for (int64_t& i : v) {
      VEIL_CHECK(i >= -size && i < size, "[Gather] index {} out of range for extent {}", i, size);
      i = i < 0 ? i + size : i;
    }
    if (indices.dim() == 0) {
      return one(select(x, a, v[0]));
    }
    MpcTensor y = index_select(x, a, core::Tensor::from_vector<int64_t>(v, {indices.numel()}));
    core::Shape s(x.shape().begin(), x.shape().begin() + a);
    s.insert(s.end(), indices.shape().begin(), indices.shape().end());
    s.insert(s.end(), x.shape().begin() + a + 1, x.shape().end());
    return one(reshape(y, s));
  };
}

StepFn build_reduce(NodeCtx& c, bool is_mean) {
  c.known({"axes", "keepdims", "noop_with_empty_axes"});
  const auto axes = axes_of(c, is_mean ? 18 : 13);
  const bool keepdims = c.i("keepdims", 1) != 0;
  const bool noop = c.i("noop_with_empty_axes", 0) != 0;
  if (!axes) {
    return {};
  }
  const auto ax = *axes;
  return [ax, keepdims, noop, is_mean](const std::vector<MpcTensor>& in, bool) {
    const MpcTensor& x = in[0];
    if (ax.empty() && noop) {
      return one(x);
    }
    std::vector<int64_t> a;
    if (ax.empty()) {
      for (int64_t k = 0; k < x.dim(); ++k) {
        a.push_back(k);
      }
    } else {
      for (int64_t v : ax) {
        a.push_back(norm_axis(v, x.dim(), is_mean ? "ReduceMean" : "ReduceSum"));
      }
      std::sort(a.begin(), a.end());
      a.erase(std::unique(a.begin(), a.end()), a.end());
    }
    int64_t count = 1;
    for (int64_t v : a) {
      count *= x.size(v);
    }
    MpcTensor y = reduce_sum_axes(x, a, keepdims);
    if (is_mean) {
      VEIL_CHECK(count > 0, "[ReduceMean] mean over an empty dimension");
      y = div(y, static_cast<double>(count));
    }
    return one(y);
  };
}

StepFn build_div(NodeCtx& c) {
  c.known({});
  if (c.is_constant(1)) {
    const core::Tensor d = c.constant(1, "divisor")->to(core::DType::kFloat64).contiguous();
    std::vector<double> r = d.to_vector<double>();
    for (double& v : r) {
      if (v == 0.0 || !std::isfinite(v)) {
        c.bad("its constant divisor has a zero or non-finite entry");
        return {};
      }
      v = 1.0 / v;
    }
    MpcTensor recip;
    try {
      recip = MpcTensor::from_public(core::Tensor::from_vector<double>(r, d.shape()), c.party());
    } catch (const ValueError&) {
      c.bad("the reciprocal of its constant divisor does not fit the fixed-point range");
      return {};
    }
    return [recip](const std::vector<MpcTensor>& in, bool) {
      return one(mul(in[0], recip));
    };
  }
  return [](const std::vector<MpcTensor>& in, bool) {
    return one(div(in[0], in[1]));
  };
}

StepFn build_pow(NodeCtx& c) {
  c.known({});
  const auto e = c.const_scalar(1, "exponent");
  if (!e) {
    return {};
  }
  const double k = *e;
  if (k == 0.5) {
    return [](const std::vector<MpcTensor>& in, bool) {
      return one(sqrt(in[0]));
    };
  }
  if (k == -0.5) {
    return [](const std::vector<MpcTensor>& in, bool) {
      return one(rsqrt(in[0]));
    };
  }
  if (k != std::round(k) || std::abs(k) > 64) {
    c.bad(fmt::format("exponent {} is not supported (integers in [-64, 64], 0.5, -0.5)", k));
    return {};
  }
  const int ik = static_cast<int>(k);
  return [ik](const std::vector<MpcTensor>& in, bool) {
    return one(pow(in[0], ik));
  };
}

StepFn build_clip(NodeCtx& c) {
  c.known({"min", "max"});
  std::optional<double> lo, hi;
  if (c.opset() < 11) {
    if (c.has("min")) {
      lo = c.f("min", 0.0);
    }
    if (c.has("max")) {
      hi = c.f("max", 0.0);
    }
  } else {
    if (c.present(1)) {
      lo = c.const_scalar(1, "min");
      if (!lo) {
        return {};
      }
    }
    if (c.present(2)) {
      hi = c.const_scalar(2, "max");
      if (!hi) {
        return {};
      }
    }
  }
  // Bounds beyond the fixed-point range (e.g. +-FLT_MAX for "none") are no bound.
  constexpr double kHuge = 1e12;
  if (lo && !(std::abs(*lo) < kHuge)) {
    lo.reset();
  }
  if (hi && !(std::abs(*hi) < kHuge)) {
    hi.reset();
  }
  if (lo && hi && !(*lo < *hi)) {
    c.bad(fmt::format("min {} is not below max {}", *lo, *hi));
    return {};
  }
  return clip_fn(lo, hi);
}

StepFn build_dropout(NodeCtx& c) {
  c.known({"ratio", "seed", "is_test"});
  double ratio = 0.5;
  if (c.opset() < 12) {
    ratio = c.f("ratio", 0.5);
  } else if (c.present(1)) {
    const auto r = c.const_scalar(1, "ratio");
    if (!r) {
      return {};
    }
    ratio = *r;
  }
  if (c.present(2)) {
    c.const_scalar(2, "training_mode");  // must be a constant; the module's mode decides
  }
  if (!(ratio >= 0.0 && ratio < 1.0)) {
    c.bad(fmt::format("ratio {} is outside [0, 1)", ratio));
    return {};
  }
  return [ratio](const std::vector<MpcTensor>& in, bool training) {
    return one(training && ratio > 0.0 ? dropout(in[0], ratio, true) : in[0]);
  };
}

StepFn build_cast(NodeCtx& c) {
  c.known({"to", "saturate"});
  const int64_t to = c.i("to", 1);
  if (!is_float_type(static_cast<int32_t>(to))) {
    c.bad(fmt::format("cast to {} is not supported (only to float types)",
                      onnx_data_type_name(static_cast<int32_t>(to))));
    return {};
  }
  return [](const std::vector<MpcTensor>& in, bool) {
    return one(in[0]);
  };
}

StepFn build_variadic(NodeCtx& c, bool is_mean) {
  c.known({});
  const auto n = static_cast<double>(c.num_inputs());
  return [is_mean, n](const std::vector<MpcTensor>& in, bool) {
    MpcTensor y = in[0];
    for (std::size_t k = 1; k < in.size(); ++k) {
      y = add(y, in[k]);
    }
    return one(is_mean ? div(y, n) : y);
  };
}

const std::map<std::string, Builder>& builders() {
  static const std::map<std::string, Builder> kBuilders = {
      {"Abs",
       [](NodeCtx& c) {
         return unary(c, veil::abs);
       }},
      {"Add",
       [](NodeCtx& c) {
         return binary(c, veil::add);
       }},
      {"AveragePool",
       [](NodeCtx& c) {
         return build_pool(c, false);
       }},
      {"BatchNormalization", build_batch_norm},
      {"Cast", build_cast},
      {"Clip", build_clip},
      {"Concat",
       [](NodeCtx& c) -> StepFn {
         c.known({"axis"});
         const int64_t axis = c.i("axis", 1);
         return [axis](const std::vector<MpcTensor>& in, bool) {
           return one(cat(in, norm_axis(axis, in[0].dim(), "Concat")));
         };
       }},
      {"Conv", build_conv},
      {"ConvTranspose", build_conv_transpose},
      {"Div", build_div},
      {"Dropout", build_dropout},
      {"Erf",
       [](NodeCtx& c) {
         return unary(c, veil::erf);
       }},
      {"Exp",
       [](NodeCtx& c) {
         return unary(c, veil::exp);
       }},
      {"Flatten", build_flatten},
      {"Gather", build_gather},
      {"Gelu",
       [](NodeCtx& c) -> StepFn {
         c.known({"approximate"});
         const std::string approx = c.s("approximate", "none");
         if (approx != "none") {
           c.bad(fmt::format("approximate '{}' is not supported (only none)", approx));
         }
         return [](const std::vector<MpcTensor>& in, bool) {
           return one(gelu(in[0]));
         };
       }},
      {"Gemm", build_gemm},
      {"GlobalAveragePool",
       [](NodeCtx& c) {
         return build_global_pool(c, false);
       }},
      {"GlobalMaxPool",
       [](NodeCtx& c) {
         return build_global_pool(c, true);
       }},
      {"HardSigmoid",
       [](NodeCtx& c) -> StepFn {
         c.known({"alpha", "beta"});
         const double alpha = c.f("alpha", 0.2);
         const double beta = c.f("beta", 0.5);
         return [alpha, beta](const std::vector<MpcTensor>& in, bool) {
           return one(hardtanh(add(mul(in[0], alpha), beta), 0.0, 1.0));
         };
       }},
      {"HardSwish",
       [](NodeCtx& c) -> StepFn {
         c.known({});
         return [](const std::vector<MpcTensor>& in, bool) {
           return one(mul(in[0], hardtanh(add(mul(in[0], 1.0 / 6.0), 0.5), 0.0, 1.0)));
         };
       }},
      {"Identity",
       [](NodeCtx& c) {
         return unary(c, identity_fn);
       }},
      {"LayerNormalization", build_layer_norm},
      {"LeakyRelu",
       [](NodeCtx& c) -> StepFn {
         c.known({"alpha"});
         const double alpha = c.f("alpha", 0.01);
         return [alpha](const std::vector<MpcTensor>& in, bool) {
           return one(leaky_relu(in[0], alpha));
         };
       }},
      {"Log",
       [](NodeCtx& c) {
         return unary(c, veil::log);
       }},
      {"LogSoftmax",
       [](NodeCtx& c) {
         return build_softmax(c, true);
       }},
      {"MatMul",
       [](NodeCtx& c) {
         return binary(c, veil::matmul);
       }},
      {"MaxPool",
       [](NodeCtx& c) {
         return build_pool(c, true);
       }},
      {"Mean",
       [](NodeCtx& c) {
         return build_variadic(c, true);
       }},
      {"Mul",
       [](NodeCtx& c) {
         return binary(c, veil::mul);
       }},
      {"Neg",
       [](NodeCtx& c) {
         return unary(c, veil::neg);
       }},
      {"Pad", build_pad},
      {"Pow", build_pow},
      {"Reciprocal",
       [](NodeCtx& c) {
         return unary(c, veil::reciprocal);
       }},
      {"ReduceMean",
       [](NodeCtx& c) {
         return build_reduce(c, true);
       }},
      {"ReduceSum",
       [](NodeCtx& c) {
         return build_reduce(c, false);
       }},
      {"Relu",
       [](NodeCtx& c) {
         return unary(c, veil::relu);
       }},
      {"Reshape", build_reshape},
      {"Sigmoid",
       [](NodeCtx& c) {
         return unary(c, veil::sigmoid);
       }},
      {"Slice", build_slice},
      {"Softmax",
       [](NodeCtx& c) {
         return build_softmax(c, false);
       }},
      {"Sqrt",
       [](NodeCtx& c) {
         return unary(c, veil::sqrt);
       }},
      {"Squeeze",
       [](NodeCtx& c) {
         return build_squeeze(c, false);
       }},
      {"Sub",
       [](NodeCtx& c) {
         return binary(c, veil::sub);
       }},
      {"Sum",
       [](NodeCtx& c) {
         return build_variadic(c, false);
       }},
      {"Tanh",
       [](NodeCtx& c) {
         return unary(c, veil::tanh);
       }},
      {"Transpose", build_transpose},
      {"Unsqueeze",
       [](NodeCtx& c) {
         return build_squeeze(c, true);
       }},
  };
  return kBuilders;
}

// How many outputs of an op veil computes (later ones are marked unavailable), and their names
// for messages.
std::size_t computed_outputs(const std::string& op) {
  (void)op;
  return 1;
}

std::string extra_output_name(const std::string& op, std::size_t k) {
  if (op == "MaxPool" && k == 1) {
    return "Indices output";
  }
  if (op == "Dropout" && k == 1) {
    return "mask output";
  }
  if (op == "BatchNormalization") {
    return "training-mode statistics output";
  }
  if (op == "LayerNormalization") {
    return k == 1 ? "Mean output" : "InvStdDev output";
  }
  return fmt::format("output {}", k);
}

// The Constant node's value as a tensor (float64 or int64), or nullopt with a problem recorded.
std::optional<core::Tensor> constant_value(NodeCtx& c) {
  c.known({"value", "value_float", "value_floats", "value_int", "value_ints", "sparse_value",
           "value_string", "value_strings"});
  const OnnxNode& n = c.node();
  if (n.attributes.size() != 1) {
    c.bad("a Constant needs exactly one value attribute");
    return std::nullopt;
  }
  const OnnxAttribute& a = n.attributes[0];
  if (a.name == "value" && a.kind == OnnxAttribute::Kind::kTensor) {
    return a.t.value;
  }
  if (a.name == "value_float" && a.kind == OnnxAttribute::Kind::kFloat) {
    return core::Tensor::scalar<double>(a.f);
  }
  if (a.name == "value_floats" && a.kind == OnnxAttribute::Kind::kFloats) {
    return core::Tensor::from_vector<double>(a.floats, {static_cast<int64_t>(a.floats.size())});
  }
  if (a.name == "value_int" && a.kind == OnnxAttribute::Kind::kInt) {
    return core::Tensor::scalar<int64_t>(a.i);
  }
  if (a.name == "value_ints" && a.kind == OnnxAttribute::Kind::kInts) {
    return core::Tensor::from_vector<int64_t>(a.ints, {static_cast<int64_t>(a.ints.size())});
  }
  c.bad(fmt::format("a {} value is not supported", a.name));
  return std::nullopt;
}

std::string label_of(const OnnxNode& n) {
  return is_default_domain(n.domain) ? fmt::format("{} '{}'", n.op_type, n.name)
                                     : fmt::format("{}::{} '{}'", n.domain, n.op_type, n.name);
}

int Compiler::new_slot(const std::string& name) {
  const int id = static_cast<int>(slots_.size());
  slots_.push_back(SlotInfo{});
  slots_.back().name = name;
  by_name_[name] = id;
  return id;
}

void Compiler::register_tensor(const std::string& onnx_name, const MpcTensor& t, bool buffer) {
  // Try the dotted path: every prefix a scope (not a tensor), the full name not a scope.
  std::vector<std::string> parts;
  {
    std::string cur;
    for (char ch : onnx_name) {
      if (ch == '.') {
        parts.push_back(cur);
        cur.clear();
      } else {
        cur.push_back(ch);
      }
    }
    parts.push_back(cur);
  }
  bool ok =
      std::none_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); });
  std::string prefix;
  for (std::size_t k = 0; ok && k + 1 < parts.size(); ++k) {
    prefix += (k == 0 ? "" : ".") + parts[k];
    ok = tensor_names_.count(prefix) == 0;
  }
  ok = ok && scopes_.count(onnx_name) == 0 && tensor_names_.count(onnx_name) == 0;
  std::string name = onnx_name;
  nn::Module* owner = &model_;
  std::string leaf = parts.back();
  if (ok) {
    std::string path;
    for (std::size_t k = 0; k + 1 < parts.size(); ++k) {
      path += (k == 0 ? "" : ".") + parts[k];
      auto it = scopes_.find(path);
      if (it == scopes_.end()) {
        auto scope = std::make_shared<OnnxScopeImpl>();
        owner->register_module(parts[k], scope);
        it = scopes_.emplace(path, scope).first;
      }
      owner = it->second.get();
    }
  } else {
    std::string base = onnx_name;
    std::replace(base.begin(), base.end(), '.', '_');
    if (base.empty()) {
      base = "_";
    }
    name = base;
    for (int k = 1; tensor_names_.count(name) > 0 || scopes_.count(name) > 0; ++k) {
      name = fmt::format("{}_{}", base, k);
    }
    leaf = name;
  }
  if (buffer) {
    owner->register_buffer(leaf, t);
  } else {
    owner->register_parameter(leaf, t, options_.requires_grad);
  }
  tensor_names_.insert(name);
  prog_.names.emplace_back(onnx_name, name);
}

void Compiler::classify_and_register() {
  const OnnxGraph& g = prog_.graph;
  std::map<std::string, int> role;  // 0 unused, 1 static only, 2 buffer, 3 parameter
  for (const auto& t : g.initializers) {
    role[t.name] = 0;
  }
  for (const auto& n : g.nodes) {
    for (std::size_t k = 0; k < n.inputs.size(); ++k) {
      auto it = role.find(n.inputs[k]);
      if (it == role.end()) {
        continue;
      }
      int r = 3;
      if (is_default_domain(n.domain) && is_static_input(n.op_type, k)) {
        r = 1;
      } else if (is_default_domain(n.domain) && n.op_type == "Div" && k == 1) {
        r = 1;  // a constant divisor is a public reciprocal
      } else if (is_default_domain(n.domain) && n.op_type == "BatchNormalization" &&
                 (k == 3 || k == 4)) {
        r = 2;
      }
      it->second = std::max(it->second, r);
    }
  }
  std::set<std::string> seen;
  for (const auto& t : g.initializers) {
    if (!seen.insert(t.name).second) {
      fail(fmt::format("initializer '{}' is defined twice", t.name));
    }
    if (t.name.empty()) {
      fail("an initializer has no name");
    }
    const int id = new_slot(t.name);
    SlotInfo& s = slot(id);
    s.constant = t.value;
    s.is_initializer = true;
    s.producer = "initializer";
    const int r = role[t.name];
    if (r < 2 || t.value.dtype() != core::DType::kFloat64) {
      continue;  // constants: made into public MpcTensors on first use as an operand
    }
    MpcTensor v;
    try {
      v = MpcTensor::from_public(t.value, party_);
    } catch (const ValueError&) {
      fail(
          fmt::format("initializer '{}' holds values outside the fixed-point range (|x| < 2^{} "
                      "at frac_bits {}) or non-finite ones",
                      t.name, 62 - party_.frac_bits(), party_.frac_bits()));
    }
    register_tensor(t.name, v, /*buffer=*/r == 2);
    s.leaf = v;
  }
}

void Compiler::compile_node(const OnnxNode& n) {
  const std::string label = label_of(n);
  NodeCtx ctx(*this, n);
  // Inputs: known names only; unavailable ones are problems; failed ones silence the node.
  std::vector<int> in_slots;
  bool input_failed = false;
  for (const auto& name : n.inputs) {
    if (name.empty()) {
      in_slots.push_back(-1);
      continue;
    }
    const int id = find(name);
    if (id < 0) {
      error(
          fmt::format("node {} reads '{}', which is not a graph input, an initializer or the "
                      "output of an earlier node (missing initializer, or nodes out of order)",
                      label, name));
      in_slots.push_back(-1);
      input_failed = true;
      continue;
    }
    const SlotInfo& s = slot(id);
    if (!s.unavailable.empty()) {
      ctx.bad(fmt::format("it reads '{}', the {}", name, s.unavailable));
    }
    input_failed = input_failed || s.failed;
    in_slots.push_back(id);
  }

  StepFn fn;
  std::optional<core::Tensor> constant;
  if (!is_default_domain(n.domain)) {
    ctx.bad(fmt::format("operator domain '{}' is not supported", n.domain));
  } else if (n.op_type == "Constant") {
    constant = constant_value(ctx);
  } else {
    const auto& table = builders();
    const auto it = table.find(n.op_type);
    if (it == table.end()) {
      ctx.bad("unsupported operator");
    } else {
      fn = it->second(ctx);
      if (!fn && ctx.problems().empty() && !input_failed) {
        ctx.bad("could not be compiled");
      }
    }
  }
  if (n.op_type != "Constant" && n.inputs.empty()) {
    ctx.bad("it has no inputs");
  }

  const bool failed = !ctx.problems().empty() || input_failed;
  if (!ctx.problems().empty()) {
    unsupported_.push_back(fmt::format("{} ({})", label, fmt::join(ctx.problems(), "; ")));
  }
  // Outputs.
  std::vector<int> out_slots;
  for (std::size_t k = 0; k < n.outputs.size(); ++k) {
    const std::string& name = n.outputs[k];
    if (name.empty()) {
      out_slots.push_back(-1);
      continue;
    }
    if (find(name) >= 0) {
      error(fmt::format("node {} writes '{}', which is already defined", label, name));
      out_slots.push_back(-1);
      continue;
    }
    const int id = new_slot(name);
    SlotInfo& s = slot(id);
    s.producer = label;
    s.failed = failed;
    if (k >= computed_outputs(n.op_type)) {
      s.unavailable = fmt::format("{} of {}, which veil does not compute",
                                  extra_output_name(n.op_type, k), label);
      out_slots.push_back(-1);
      continue;
    }
    if (constant && !failed) {
      s.constant = *constant;
    }
    out_slots.push_back(id);
  }
  if (failed || constant || !fn) {
    return;
  }
  // Operands that are import-time constants become public leaves.
  for (std::size_t k = 0; k < n.inputs.size(); ++k) {
    const int id = in_slots[k];
    if (id < 0 || is_static_input(n.op_type, k) ||
        (n.op_type == "Div" && k == 1 && slot(id).constant)) {
      continue;
    }
    SlotInfo& s = slot(id);
    if (s.leaf.defined() || !s.constant) {
      continue;
    }
    try {
      s.leaf = MpcTensor::from_public(s.constant->to(core::DType::kFloat64), party_);
    } catch (const ValueError&) {
      error(
          fmt::format("node {}: the constant '{}' holds values outside the fixed-point range "
                      "or non-finite ones",
                      label, s.name));
    }
  }
  prog_.steps.push_back(Step{label, in_slots, out_slots, std::move(fn)});
}

void Compiler::run() {
  const OnnxGraph& g = prog_.graph;
  prog_.opset = g.default_opset();
  if (prog_.opset < 0) {
    fail("the model imports no opset of the default ONNX domain");
  }
  if (prog_.opset < kOnnxMinOpset || prog_.opset > kOnnxMaxOpset) {
    fail(
        fmt::format("opset {} is outside the range veil imports ({}..{}); convert the model with "
                    "onnx.version_converter",
                    prog_.opset, kOnnxMinOpset, kOnnxMaxOpset));
  }
  classify_and_register();
  // Graph inputs that are not initializers are the caller's inputs.
  for (const auto& vi : g.inputs) {
    if (find(vi.name) >= 0) {
      if (!slot(find(vi.name)).is_initializer) {
        fail(fmt::format("graph input '{}' is listed twice", vi.name));
      }
      continue;
    }
    if (vi.elem_type != 0 && !is_float_type(vi.elem_type)) {
      error(
          fmt::format("graph input '{}' has element type {}; veil imports models whose inputs "
                      "are real-valued tensors",
                      vi.name, onnx_data_type_name(vi.elem_type)));
    }
    prog_.input_slots.push_back(new_slot(vi.name));
    prog_.inputs.push_back(vi);
  }
  for (const auto& n : g.nodes) {
    compile_node(n);
  }
  for (const auto& vo : g.outputs) {
    const int id = find(vo.name);
    if (id < 0) {
      error(fmt::format("graph output '{}' is not produced by any node, input or initializer",
                        vo.name));
      continue;
    }
    if (!slot(id).unavailable.empty()) {
      unsupported_.push_back(
          fmt::format("graph output '{}' (it is the {})", vo.name, slot(id).unavailable));
      continue;
    }
    prog_.output_slots.push_back(id);
    prog_.outputs.push_back(vo);
    SlotInfo& s = slot(id);
    if (!s.leaf.defined() && s.constant && !s.failed) {
      try {
        s.leaf = MpcTensor::from_public(s.constant->to(core::DType::kFloat64), party_);
      } catch (const ValueError&) {
        error(
            fmt::format("graph output '{}' is a constant outside the fixed-point range", vo.name));
      }
    }
  }
  if (g.outputs.empty()) {
    error("the graph has no outputs");
  }
  if (!unsupported_.empty() || !errors_.empty()) {
    std::string msg;
    if (!unsupported_.empty()) {
      msg = fmt::format("{} unsupported node{}: {}", unsupported_.size(),
                        unsupported_.size() == 1 ? "" : "s", fmt::join(unsupported_, ", "));
    }
    if (!errors_.empty()) {
      msg += fmt::format("{}{}", msg.empty() ? "" : "; ", fmt::join(errors_, "; "));
    }
    if (!unsupported_.empty()) {
      msg += fmt::format(" (veil imports: {})", fmt::join(onnx_supported_ops(), ", "));
    }
    fail(msg);
  }
  // Leaves and slot lifetimes.
  prog_.num_slots = slots_.size();
  for (std::size_t k = 0; k < slots_.size(); ++k) {
    if (slots_[k].leaf.defined()) {
      prog_.leaves.emplace_back(static_cast<int>(k), slots_[k].leaf);
    }
  }
  std::vector<int> last_use(slots_.size(), -1);
  for (std::size_t s = 0; s < prog_.steps.size(); ++s) {
    for (int id : prog_.steps[s].in) {
      if (id >= 0) {
        last_use[static_cast<std::size_t>(id)] = static_cast<int>(s);
      }
    }
  }
  for (int id : prog_.output_slots) {
    last_use[static_cast<std::size_t>(id)] = static_cast<int>(prog_.steps.size());
  }
  prog_.release_after.assign(prog_.steps.size(), {});
  for (std::size_t k = 0; k < last_use.size(); ++k) {
    if (last_use[k] >= 0 && last_use[k] < static_cast<int>(prog_.steps.size())) {
      prog_.release_after[static_cast<std::size_t>(last_use[k])].push_back(static_cast<int>(k));
    }
  }
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    throw IoError(
        fmt::format("[onnx_import] {}: cannot open the file (missing or unreadable)", path));
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) {
    throw IoError(fmt::format("[onnx_import] {}: read error", path));
  }
  return ss.str();
}

}  // namespace

// ---- OnnxModelImpl ----------------------------------------------------------------------------

OnnxModelImpl::OnnxModelImpl(const std::string& path, Party& party)
    : OnnxModelImpl(path, OnnxImportOptions{}, party) {}

OnnxModelImpl::OnnxModelImpl(const std::string& path,
                             const OnnxImportOptions& options,
                             Party& party)
    : OnnxModelImpl(read_onnx(read_file(path), path), path, options, party) {}

OnnxModelImpl::OnnxModelImpl(OnnxGraph graph,
                             std::string source,
                             const OnnxImportOptions& options,
                             Party& party)
    : program_(std::make_unique<Program>()) {
  program_->graph = std::move(graph);
  program_->source = std::move(source);
  Compiler(*this, *program_, party, options).run();
}

OnnxModelImpl::~OnnxModelImpl() = default;

MpcTensor OnnxModelImpl::forward(const MpcTensor& x) {
  VEIL_CHECK(program_->inputs.size() == 1,
             "[OnnxModel] {}: the graph has {} inputs; call forward with a vector of them",
             program_->source, program_->inputs.size());
  return forward(std::vector<MpcTensor>{x}).at(0);
}

std::vector<MpcTensor> OnnxModelImpl::forward(const std::vector<MpcTensor>& inputs) {
  const Program& p = *program_;
  VEIL_CHECK(inputs.size() == p.inputs.size(), "[OnnxModel] {}: expected {} inputs, got {}",
             p.source, p.inputs.size(), inputs.size());
  std::vector<MpcTensor> env(p.num_slots);
  for (const auto& [id, v] : p.leaves) {
    env[static_cast<std::size_t>(id)] = v;
  }
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const OnnxValueInfo& vi = p.inputs[k];
    const MpcTensor& x = inputs[k];
    VEIL_CHECK(x.defined(), "[OnnxModel] {}: input '{}' is undefined", p.source, vi.name);
    if (vi.has_shape) {
      bool ok = static_cast<std::size_t>(x.dim()) == vi.dims.size();
      for (std::size_t d = 0; ok && d < vi.dims.size(); ++d) {
        ok = vi.dims[d] < 0 || vi.dims[d] == x.shape()[d];
      }
      if (!ok) {
        std::vector<std::string> want;
        for (std::size_t d = 0; d < vi.dims.size(); ++d) {
          want.push_back(vi.dims[d] >= 0 ? std::to_string(vi.dims[d]) : vi.dim_names[d]);
        }
        throw ValueError(fmt::format("[OnnxModel] {}: input '{}' expected shape [{}], got {}",
                                     p.source, vi.name, fmt::join(want, ", "),
                                     core::shape_str(x.shape())));
      }
    }
    env[static_cast<std::size_t>(p.input_slots[k])] = x;
  }
  const bool training = is_training();
  for (std::size_t s = 0; s < p.steps.size(); ++s) {
    const Step& step = p.steps[s];
    std::vector<MpcTensor> in;
    in.reserve(step.in.size());
    for (int id : step.in) {
      in.push_back(id >= 0 ? env[static_cast<std::size_t>(id)] : MpcTensor());
    }
    std::vector<MpcTensor> out;
    try {
      out = step.run(in, training);
    } catch (const ValueError& e) {
      throw ValueError(fmt::format("[OnnxModel] {}: node {}: {}", p.source, step.label, e.what()));
    }
    for (std::size_t k = 0; k < step.out.size() && k < out.size(); ++k) {
      if (step.out[k] >= 0) {
        env[static_cast<std::size_t>(step.out[k])] = std::move(out[k]);
      }
    }
    for (int id : p.release_after[s]) {
      env[static_cast<std::size_t>(id)] = MpcTensor();
    }
  }
  std::vector<MpcTensor> result;
  for (int id : p.output_slots) {
    result.push_back(env[static_cast<std::size_t>(id)]);
  }
  return result;
}

const std::vector<OnnxValueInfo>& OnnxModelImpl::inputs() const {
  return program_->inputs;
}

const std::vector<OnnxValueInfo>& OnnxModelImpl::outputs() const {
  return program_->outputs;
}

int64_t OnnxModelImpl::opset() const {
  return program_->opset;
}

const std::string& OnnxModelImpl::source() const {
  return program_->source;
}

const OnnxGraph& OnnxModelImpl::graph() const {
  return program_->graph;
}

std::string OnnxModelImpl::state_name(const std::string& onnx_name) const {
  for (const auto& [o, s] : program_->names) {
    if (o == onnx_name) {
      return s;
    }
  }
  throw ValueError(fmt::format(
      "[OnnxModel] {}: '{}' is not a registered initializer (unknown, an import-time constant "
      "or unused)",
      program_->source, onnx_name));
}

std::vector<std::pair<std::string, std::string>> OnnxModelImpl::state_names() const {
  return program_->names;
}

std::string OnnxModelImpl::summary() const {
  std::vector<std::pair<std::string, int>> counts;
  for (const auto& n : program_->graph.nodes) {
    auto it = std::find_if(counts.begin(), counts.end(),
                           [&](const auto& c) { return c.first == n.op_type; });
    if (it == counts.end()) {
      counts.emplace_back(n.op_type, 1);
    } else {
      ++it->second;
    }
  }
  std::vector<std::string> parts;
  for (const auto& [op, k] : counts) {
    parts.push_back(fmt::format("{} x{}", op, k));
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

OnnxModel import_onnx_bytes(const std::string& bytes,
                            const std::string& source,
                            const OnnxImportOptions& options,
                            Party& party) {
  return OnnxModel(
      std::make_shared<OnnxModelImpl>(read_onnx(bytes, source), source, options, party));
}

std::vector<std::string> onnx_supported_ops() {
  std::vector<std::string> ops;
  for (const auto& [name, b] : builders()) {
    ops.push_back(name);
  }
  ops.emplace_back("Constant");
  std::sort(ops.begin(), ops.end());
  return ops;
}

}  // namespace veil::models
