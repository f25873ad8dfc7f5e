// ONNX export: veil modules -> OnnxGraph (this file, no ONNX header) -> bytes (write_onnx in
// models/onnx_proto.cpp) -> a file written atomically.

#include "models/onnx_export.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "autograd/autograd.h"
#include "core/error.h"
#include "core/file_io.h"
#include "models/lenet.h"
#include "models/onnx_import.h"
#include "nn/nn.h"

namespace veil::models {

namespace {

constexpr const char* kOp = "export_onnx";
constexpr int64_t kMinExportOpset = 13;
constexpr int64_t kMaxExportOpset = 17;

// The float64 value of a public tensor; throws naming it when it is secret.
core::Tensor public_value(const MpcTensor& t, const std::string& name) {
  VEIL_CHECK(t.defined(), "[{}] '{}' is undefined", kOp, name);
  VEIL_CHECK(t.is_public(),
             "[{}] '{}' is secret; reveal the model to the party that exports it first "
             "(MpcTensor::reveal_to) and export there",
             kOp, name);
  return t.reveal();
}

// Builds the graph of a forward chain: `cur` is the name of the current value, `rank` its rank.
class ChainBuilder {
 public:
  explicit ChainBuilder(const OnnxExportOptions& o) : o_(o) {
    VEIL_CHECK(o.opset >= kMinExportOpset && o.opset <= kMaxExportOpset,
               "[{}] opset {} is not supported (13..17)", kOp, o.opset);
    VEIL_CHECK(!o.input_shape.empty(),
               "[{}] options.input_shape is required for this model (e.g. {{-1, 784}})", kOp);
    for (int64_t d : o.input_shape) {
      VEIL_CHECK(d == -1 || d >= 1, "[{}] input_shape entries are -1 or >= 1, got [{}]", kOp,
                 fmt::join(o.input_shape, ", "));
    }
    g_.ir_version = 8;
    g_.producer_name = o.producer_name;
    g_.producer_version = "0.1.0";
    g_.graph_name = "veil";
    g_.opsets.emplace_back("", o.opset);
    OnnxValueInfo in;
    in.name = o.input_name;
    in.has_shape = true;
    for (std::size_t k = 0; k < o.input_shape.size(); ++k) {
      in.dims.push_back(o.input_shape[k]);
      in.dim_names.push_back(o.input_shape[k] >= 0 ? "" : (k == 0 ? "N" : fmt::format("d{}", k)));
    }
    g_.inputs.push_back(in);
    names_.insert(in.name);
    cur_ = in.name;
    rank_ = static_cast<int64_t>(o.input_shape.size());
  }

  void layer(const nn::Module& m, const std::string& name);
  void lenet(const LeNetImpl& m);

  OnnxGraph finish() {
    // The last value is renamed to the output name (via Identity when it is the input itself).
    if (g_.nodes.empty() || g_.nodes.back().outputs[0] != cur_) {
      node("Identity", "output", {cur_}, {});
    }
    names_.erase(cur_);
    VEIL_CHECK(names_.count(o_.output_name) == 0,
               "[{}] output_name '{}' is already used by a tensor of the graph", kOp,
               o_.output_name);
    g_.nodes.back().outputs[0] = o_.output_name;
    // The output's rank is known, its extents are not (the batch keeps the input's name).
    OnnxValueInfo out;
    out.name = o_.output_name;
    out.has_shape = true;
    out.dims.assign(static_cast<std::size_t>(rank_), -1);
    out.dim_names.assign(static_cast<std::size_t>(rank_), "");
    if (rank_ > 0 && o_.input_shape[0] < 0) {
      out.dim_names[0] = "N";
    }
    g_.outputs.push_back(out);
    return std::move(g_);
  }

 private:
  std::string unique(const std::string& base) {
    std::string n = base;
    for (int k = 1; names_.count(n) > 0; ++k) {
      n = fmt::format("{}_{}", base, k);
    }
    names_.insert(n);
    return n;
  }

  // Appends a node reading `inputs` and writing one fresh value, which becomes current.
  void node(const std::string& op,
            const std::string& name,
            std::vector<std::string> inputs,
            std::vector<OnnxAttribute> attrs) {
    OnnxNode n;
    n.op_type = op;
    n.name = unique(name);
    n.inputs = std::move(inputs);
    n.outputs.push_back(unique(n.name + "_out"));
    n.attributes = std::move(attrs);
    cur_ = n.outputs[0];
    g_.nodes.push_back(std::move(n));
  }

  std::string initializer(const std::string& name, const core::Tensor& value) {
    VEIL_CHECK(names_.count(name) == 0, "[{}] two tensors are both named '{}'", kOp, name);
    names_.insert(name);
    OnnxTensor t;
    t.name = name;
    t.value = value;
    t.data_type = static_cast<int32_t>(value.dtype() == core::DType::kInt64 ? OnnxDataType::kInt64
                                                                            : OnnxDataType::kFloat);
    g_.initializers.push_back(std::move(t));
    return name;
  }

  std::string param(const MpcTensor& t, const std::string& name) {
    return initializer(name, public_value(t, name));
  }

  // A float constant as a Constant node (never a parameter on import).
  std::string constant(const std::string& name, double v) {
    OnnxNode n;
    n.op_type = "Constant";
    n.name = unique(name);
    n.outputs.push_back(unique(n.name + "_out"));
    OnnxAttribute a;
    a.name = "value";
    a.kind = OnnxAttribute::Kind::kTensor;
    a.t.value = core::Tensor::scalar<double>(v);
    a.t.data_type = static_cast<int32_t>(OnnxDataType::kFloat);
    n.attributes.push_back(std::move(a));
    const std::string out = n.outputs[0];
    g_.nodes.push_back(std::move(n));
    return out;
  }

  std::string join(const std::string& prefix, const std::string& leaf) {
    return prefix.empty() ? leaf : prefix + "." + leaf;
  }

  void require_rank(int64_t want, const std::string& what) {
    VEIL_CHECK(rank_ == want, "[{}] {} needs a rank-{} input here, the chain has rank {}", kOp,
               what, want, rank_);
  }

  void linear(const nn::LinearImpl& l, const std::string& p) {
    require_rank(2, fmt::format("Linear '{}'", p));
    const core::Tensor w = public_value(l.weight, join(p, "weight"));  // [in, out]
    std::vector<std::string> in{cur_, initializer(join(p, "weight"), w.t().contiguous())};
    if (l.bias.defined()) {
      in.push_back(param(l.bias, join(p, "bias")));
    }
    node("Gemm", p.empty() ? "linear" : p, in, {OnnxAttribute::of_int("transB", 1)});
  }

  void conv(const MpcTensor& weight,
            const MpcTensor& bias,
            const std::string& p,
            const std::string& op,
            std::vector<OnnxAttribute> attrs) {
    std::vector<std::string> in{cur_, param(weight, join(p, "weight"))};
    if (bias.defined()) {
      in.push_back(param(bias, join(p, "bias")));
    }
    node(op, p.empty() ? "conv" : p, in, std::move(attrs));
  }

  void batch_norm(const nn::BatchNormImplBase& b, const std::string& p) {
    const auto& opt = b.options();
    VEIL_CHECK(opt.track_running_stats(),
               "[{}] BatchNorm '{}' keeps no running statistics; ONNX BatchNormalization needs "
               "them",
               kOp, p);
    const int64_t c = opt.num_features();
    const std::string w =
        opt.affine() ? param(b.weight, join(p, "weight"))
                     : initializer(join(p, "weight"), core::Tensor::full<double>({c}, 1.0));
    const std::string bb = opt.affine()
                               ? param(b.bias, join(p, "bias"))
                               : initializer(join(p, "bias"), core::Tensor::full<double>({c}, 0.0));
    node("BatchNormalization", p.empty() ? "batchnorm" : p,
         {cur_, w, bb, param(b.running_mean, join(p, "running_mean")),
          param(b.running_var, join(p, "running_var"))},
         {OnnxAttribute::of_float("epsilon", opt.eps()),
          OnnxAttribute::of_float("momentum", 1.0 - opt.momentum().value_or(0.1))});
  }

  void pool(const std::string& op,
            const std::string& p,
            nn::Size2 k,
            nn::Size2 s,
            nn::Size2 pad,
            std::vector<OnnxAttribute> extra) {
    require_rank(4, fmt::format("{} '{}'", op, p));
    std::vector<OnnxAttribute> attrs{
        OnnxAttribute::of_ints("kernel_shape", {k[0], k[1]}),
        OnnxAttribute::of_ints("strides", {s[0], s[1]}),
        OnnxAttribute::of_ints("pads", {pad[0], pad[1], pad[0], pad[1]})};
    for (auto& a : extra) {
      attrs.push_back(std::move(a));
    }
    node(op, p.empty() ? "pool" : p, {cur_}, std::move(attrs));
  }

  void flatten(const nn::FlattenImpl& f, const std::string& p) {
    const int64_t start = f.start_dim();
    VEIL_CHECK(start >= 0 && start < rank_,
               "[{}] Flatten '{}' flattens from dimension {}, but its input has {} dimensions", kOp,
               p, start, rank_);
    const int64_t out_rank = start + 1;
    if (start == 1) {
      node("Flatten", p.empty() ? "flatten" : p, {cur_}, {OnnxAttribute::of_int("axis", 1)});
    } else {
      std::vector<int64_t> shape(static_cast<std::size_t>(start), 0);
      shape.push_back(-1);
      std::string base = (p.empty() ? "flatten" : p) + "_shape";
      std::string sname = base;
      for (int k = 1; names_.count(sname) > 0; ++k) {
        sname = fmt::format("{}_{}", base, k);
      }
      const std::string s = initializer(
          sname, core::Tensor::from_vector<int64_t>(shape, {static_cast<int64_t>(shape.size())}));
      node("Reshape", p.empty() ? "flatten" : p, {cur_, s}, {});
    }
    rank_ = out_rank;
  }

  void clip(const std::string& p, double lo, double hi) {
    const std::string x = cur_;
    const std::string l = constant(p + "_min", lo);
    const std::string h = constant(p + "_max", hi);
    node("Clip", p, {x, l, h}, {});
  }

  void gelu(const std::string& p) {
    const std::string x = cur_;
    if (o_.opset >= 20) {
      node("Gelu", p, {x}, {});
      return;
    }
    // x * 0.5 * (1 + erf(x / sqrt 2))
    node("Div", p + "_div", {x, constant(p + "_sqrt2", std::sqrt(2.0))}, {});
    node("Erf", p + "_erf", {cur_}, {});
    node("Add", p + "_add", {cur_, constant(p + "_one", 1.0)}, {});
    node("Mul", p + "_mul", {x, cur_}, {});
    node("Mul", p, {cur_, constant(p + "_half", 0.5)}, {});
  }

  const OnnxExportOptions& o_;
  OnnxGraph g_;
  std::set<std::string> names_;
  std::string cur_;
  int64_t rank_ = 0;
};

void ChainBuilder::layer(const nn::Module& m, const std::string& p) {
  const std::string label = p.empty() ? "the model" : fmt::format("module '{}'", p);
  const std::string nm = p.empty() ? "layer" : p;
  if (const auto* seq = dynamic_cast<const nn::SequentialImpl*>(&m)) {
    for (const auto& [name, child] : seq->named_children()) {
      layer(*child, join(p, name));
    }
    return;
  }
  if (const auto* l = dynamic_cast<const nn::LinearImpl*>(&m)) {
    linear(*l, p);
    return;
  }
  if (const auto* c = dynamic_cast<const nn::Conv2dImpl*>(&m)) {
    require_rank(4, label);
    const auto& o = c->options();
    const int64_t k = o.kernel_size();
    const int64_t pd = o.padding();
    conv(c->weight, c->bias, p, "Conv",
         {OnnxAttribute::of_ints("kernel_shape", {k, k}),
          OnnxAttribute::of_ints("strides", {o.stride(), o.stride()}),
          OnnxAttribute::of_ints("pads", {pd, pd, pd, pd}),
          OnnxAttribute::of_ints("dilations", {o.dilation(), o.dilation()}),
          OnnxAttribute::of_int("group", o.groups())});
    return;
  }
  if (const auto* c = dynamic_cast<const nn::Conv1dImpl*>(&m)) {
    require_rank(3, label);
    const auto& o = c->options();
    conv(c->weight, c->bias, p, "Conv",
         {OnnxAttribute::of_ints("kernel_shape", {o.kernel_size()}),
          OnnxAttribute::of_ints("strides", {o.stride()}),
          OnnxAttribute::of_ints("pads", {o.padding(), o.padding()}),
          OnnxAttribute::of_ints("dilations", {o.dilation()}),
          OnnxAttribute::of_int("group", o.groups())});
    return;
  }
  if (const auto* c = dynamic_cast<const nn::ConvTranspose2dImpl*>(&m)) {
    require_rank(4, label);
    const auto& o = c->options();
    const int64_t k = o.kernel_size();
    const int64_t pd = o.padding();
    conv(c->weight, c->bias, p, "ConvTranspose",
         {OnnxAttribute::of_ints("kernel_shape", {k, k}),
          OnnxAttribute::of_ints("strides", {o.stride(), o.stride()}),
          OnnxAttribute::of_ints("pads", {pd, pd, pd, pd}),
          OnnxAttribute::of_ints("dilations", {o.dilation(), o.dilation()}),
          OnnxAttribute::of_int("group", o.groups()),
          OnnxAttribute::of_ints("output_padding", {o.output_padding(), o.output_padding()})});
    return;
  }
  if (const auto* b = dynamic_cast<const nn::BatchNormImplBase*>(&m)) {
    batch_norm(*b, p);
    return;
  }
  if (const auto* ln = dynamic_cast<const nn::LayerNormImpl*>(&m)) {
    VEIL_CHECK(o_.opset >= 17, "[{}] LayerNorm '{}' needs opset 17 (LayerNormalization)", kOp, p);
    const auto& o = ln->options();
    const std::vector<int64_t>& ns = o.normalized_shape();
    const std::string w = ln->weight.defined()
                              ? param(ln->weight, join(p, "weight"))
                              : initializer(join(p, "weight"), core::Tensor::full<double>(ns, 1.0));
    std::vector<std::string> in{cur_, w};
    if (ln->bias.defined()) {
      in.push_back(param(ln->bias, join(p, "bias")));
    }
    node("LayerNormalization", nm, in,
         {OnnxAttribute::of_int("axis", -static_cast<int64_t>(ns.size())),
          OnnxAttribute::of_float("epsilon", o.eps())});
    return;
  }
  if (dynamic_cast<const nn::ReLUImpl*>(&m) != nullptr) {
    node("Relu", nm, {cur_}, {});
    return;
  }
  if (dynamic_cast<const nn::SigmoidImpl*>(&m) != nullptr) {
    node("Sigmoid", nm, {cur_}, {});
    return;
  }
  if (dynamic_cast<const nn::TanhImpl*>(&m) != nullptr) {
    node("Tanh", nm, {cur_}, {});
    return;
  }
  if (dynamic_cast<const nn::GELUImpl*>(&m) != nullptr) {
    gelu(nm);
    return;
  }
  if (const auto* a = dynamic_cast<const nn::LeakyReLUImpl*>(&m)) {
    node("LeakyRelu", nm, {cur_}, {OnnxAttribute::of_float("alpha", a->negative_slope())});
    return;
  }
  if (const auto* a = dynamic_cast<const nn::HardtanhImpl*>(&m)) {
    clip(nm, a->min_val(), a->max_val());
    return;
  }
  if (dynamic_cast<const nn::ReLU6Impl*>(&m) != nullptr) {
    clip(nm, 0.0, 6.0);
    return;
  }
  if (const auto* a = dynamic_cast<const nn::SoftmaxImpl*>(&m)) {
    node("Softmax", nm, {cur_}, {OnnxAttribute::of_int("axis", a->dim())});
    return;
  }
  if (const auto* a = dynamic_cast<const nn::LogSoftmaxImpl*>(&m)) {
    node("LogSoftmax", nm, {cur_}, {OnnxAttribute::of_int("axis", a->dim())});
    return;
  }
  if (const auto* mp = dynamic_cast<const nn::MaxPool2dImpl*>(&m)) {
    const auto& o = mp->options();
    pool("MaxPool", nm, o.kernel_size(), o.stride(), o.padding(),
         {OnnxAttribute::of_ints("dilations", {o.dilation()[0], o.dilation()[1]})});
    return;
  }
  if (const auto* ap = dynamic_cast<const nn::AvgPool2dImpl*>(&m)) {
    const auto& o = ap->options();
    pool("AveragePool", nm, o.kernel_size(), o.stride(), o.padding(),
         {OnnxAttribute::of_int("count_include_pad", o.count_include_pad() ? 1 : 0)});
    return;
  }
  if (const auto* ap = dynamic_cast<const nn::AdaptiveAvgPool2dImpl*>(&m)) {
    VEIL_CHECK(ap->output_size() == (nn::Size2{1, 1}),
               "[{}] {}: AdaptiveAvgPool2d to {}x{} has no ONNX form (only 1x1, "
               "GlobalAveragePool)",
               kOp, label, ap->output_size()[0], ap->output_size()[1]);
    require_rank(4, label);
    node("GlobalAveragePool", nm, {cur_}, {});
    return;
  }
  if (const auto* ap = dynamic_cast<const nn::AdaptiveMaxPool2dImpl*>(&m)) {
    VEIL_CHECK(ap->output_size() == (nn::Size2{1, 1}),
               "[{}] {}: AdaptiveMaxPool2d to {}x{} has no ONNX form (only 1x1, GlobalMaxPool)",
               kOp, label, ap->output_size()[0], ap->output_size()[1]);
    require_rank(4, label);
    node("GlobalMaxPool", nm, {cur_}, {});
    return;
  }
  if (const auto* f = dynamic_cast<const nn::FlattenImpl*>(&m)) {
    flatten(*f, nm);
    return;
  }
  if (const auto* d = dynamic_cast<const nn::DropoutImpl*>(&m)) {
    const std::string x = cur_;
    node("Dropout", nm, {x, constant(nm + "_ratio", d->p())}, {});
    return;
  }
  throw ValueError(fmt::format(
      "[{}] {} is not an exportable layer (Sequential, Linear, Conv1d, Conv2d, ConvTranspose2d, "
      "BatchNorm1d/2d, LayerNorm, ReLU, LeakyReLU, ReLU6, Hardtanh, Sigmoid, Tanh, GELU, Softmax, "
      "LogSoftmax, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1), AdaptiveMaxPool2d(1), Flatten, "
      "Dropout, LeNet, OnnxModel)",
      kOp, label));
}

void ChainBuilder::lenet(const LeNetImpl& m) {
  const auto& cfg = m.config();
  VEIL_CHECK(rank_ == 2 || rank_ == 4, "[{}] LeNet takes [N, 784] or [N, 1, 28, 28], got rank {}",
             kOp, rank_);
  const std::string shape =
      initializer("lenet_input_shape", core::Tensor::from_vector<int64_t>({-1, 1, 28, 28}, {4}));
  node("Reshape", "reshape", {cur_, shape}, {});
  rank_ = 4;
  const auto& pool_opt = m.pool->options();
  auto stage = [&](const nn::Conv2d& conv, const nn::BatchNorm2d& bn, const std::string& cname,
                   const std::string& bname, const std::string& suffix) {
    layer(*conv, cname);
    layer(*bn, bname);
    pool("MaxPool", "pool" + suffix, pool_opt.kernel_size(), pool_opt.stride(), pool_opt.padding(),
         {OnnxAttribute::of_ints("dilations", {pool_opt.dilation()[0], pool_opt.dilation()[1]})});
    node("Relu", "relu" + suffix, {cur_}, {});
  };
  stage(m.conv1, m.bn1, "conv1", "bn1", "1");
  stage(m.conv2, m.bn2, "conv2", "bn2", "2");
  node("Flatten", "flatten", {cur_}, {OnnxAttribute::of_int("axis", 1)});
  rank_ = 2;
  layer(*m.fc1, "fc1");
  node("Relu", "relu3", {cur_}, {});
  layer(*m.fc2, "fc2");
  node("Relu", "relu4", {cur_}, {});
  layer(*m.fc3, "fc3");
  (void)cfg;
}

OnnxGraph graph_of_onnx_model(const OnnxModelImpl& m) {
  OnnxGraph g = m.graph();
  const auto state = m.state_dict();
  for (const auto& [onnx_name, state_name] : m.state_names()) {
    const MpcTensor* t = nullptr;
    for (const auto& [n, v] : state) {
      if (n == state_name) {
        t = &v;
      }
    }
    VEIL_CHECK(t != nullptr, "[{}] '{}' is missing from the model's state_dict()", kOp, state_name);
    for (auto& init : g.initializers) {
      if (init.name == onnx_name) {
        const core::Tensor v = public_value(*t, state_name);
        VEIL_CHECK(v.shape() == init.value.shape(),
                   "[{}] '{}' has shape {}, the model's initializer {}", kOp, state_name,
                   core::shape_str(v.shape()), core::shape_str(init.value.shape()));
        init.value = v;
      }
    }
  }
  if (g.producer_name.empty()) {
    g.producer_name = "veil";
  }
  return g;
}

}  // namespace

OnnxGraph onnx_graph_of(const nn::Module& model, const OnnxExportOptions& options) {
  if (const auto* om = dynamic_cast<const OnnxModelImpl*>(&model)) {
    return graph_of_onnx_model(*om);
  }
  OnnxExportOptions o = options;
  const auto* lenet = dynamic_cast<const LeNetImpl*>(&model);
  if (lenet != nullptr && o.input_shape.empty()) {
    o.input_shape = {-1, 784};
  }
  ChainBuilder b(o);
  if (lenet != nullptr) {
    b.lenet(*lenet);
  } else {
    b.layer(model, "");
  }
  return b.finish();
}

std::string export_onnx_bytes(const nn::Module& model, const OnnxExportOptions& options) {
  return write_onnx(onnx_graph_of(model, options));
}

void export_onnx(const nn::Module& model,
                 const std::string& path,
                 const OnnxExportOptions& options) {
  core::write_file_atomically(path, export_onnx_bytes(model, options), kOp);
}

}  // namespace veil::models
