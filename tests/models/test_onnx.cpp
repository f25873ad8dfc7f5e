// ONNX import and export (models/onnx_import.h, models/onnx_export.h).
//
// Test-time models: scripts/make_onnx_models.py (run with /usr/bin/python3, which has
// python3-onnx and python3-numpy) writes mlp, lenet, resnet and misc models with random float32
// weights, an input and the float64 numpy reference output, and a tolerance derived from
// frac_bits and the network (see the script's docstring: a first-order error bound through every
// layer, or 4x the rms estimate when that is smaller; secret mode adds the documented accuracy of
// veil's approximations). Each model runs (a) public and (b) encrypted (weights secret from
// party 0, input secret from party 1) with 2 parties, lenet also with 3. Without the Python
// modules those cases print "SKIPPED: ..."; without libonnx every case that reads or writes bytes
// does.
//
// Graphs built here in C++ (OnnxGraph, no Python needed) cover the error messages, parameter
// naming, gradients through an imported graph against an analytic float64 gradient, and the
// communication cost of an imported graph against the same veil ops called directly. Export is
// checked by round trips: LeNet and a Sequential exported, imported again and run on the same
// input give bit-identical public outputs.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "autograd/autograd.h"
#include "crypto/launch.h"
#include "models/lenet.h"
#include "models/onnx_export.h"
#include "models/onnx_import.h"
#include "nn/nn.h"
#include "tests/harness/simulate.h"
#include "tests/harness/temp_dir.h"

namespace models = veil::models;
namespace crypto = veil::crypto;
namespace nn = veil::nn;
namespace vt = veil::testing;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using models::OnnxAttribute;
using models::OnnxDataType;
using models::OnnxGraph;
using models::OnnxNode;
using veil::MpcTensor;
using veil::Party;
using veil::core::Tensor;

namespace {

constexpr double kU = 1.0 / 65536.0;  // one fixed-point unit at f = 16

// ---- test-time models ---------------------------------------------------------------------------

struct Generated {
  std::unique_ptr<vt::TempDir> dir;
  std::string skip;   // why the generated models are unavailable (no Python, no libonnx)
  std::string error;  // the generator failed although its prerequisites are there
  std::string file(const std::string& name) const { return dir->file(name); }
};

std::string script_path() {
  // tests/models/test_onnx.cpp -> <repo>/scripts/make_onnx_models.py
  return (fs::path(__FILE__).parent_path().parent_path().parent_path() / "scripts" /
          "make_onnx_models.py")
      .string();
}

const Generated& generated() {
  static const Generated g = [] {
    Generated out;
    if (!models::onnx_available()) {
      out.skip = "veil was built without ONNX (VEIL_WITH_ONNX)";
      return out;
    }
    if (!fs::exists("/usr/bin/python3")) {
      out.skip = "no /usr/bin/python3";
      return out;
    }
    if (std::system("/usr/bin/python3 -c 'import onnx, numpy' >/dev/null 2>&1") != 0) {
      out.skip = "/usr/bin/python3 lacks onnx or numpy (Debian: python3-onnx python3-numpy)";
      return out;
    }
    if (!fs::exists(script_path())) {
      out.skip = "scripts/make_onnx_models.py not found next to the test sources";
      return out;
    }
    out.dir = std::make_unique<vt::TempDir>("veil_onnx");
    const std::string log = out.file("make_onnx_models.log");
    const std::string cmd = "/usr/bin/python3 '" + script_path() + "' --out '" +
                            out.dir->path().string() + "' >'" + log + "' 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::ifstream f(log);
      std::stringstream ss;
      ss << f.rdbuf();
      out.error = "make_onnx_models.py failed:\n" + ss.str();
    }
    return out;
  }();
  return g;
}

// Whether the generated models are there; prints the skip line otherwise.
bool have_models() {
  const Generated& g = generated();
  if (!g.skip.empty()) {
    std::printf("SKIPPED: %s\n", g.skip.c_str());
    return false;
  }
  INFO(g.error);
  REQUIRE(g.error.empty());
  return true;
}

bool have_onnx() {
  if (!models::onnx_available()) {
    std::printf("SKIPPED: veil was built without ONNX (VEIL_WITH_ONNX)\n");
    return false;
  }
  return true;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A hand-written safetensors file (8-byte little-endian header length, JSON, data).
struct Reference {
  Tensor input;
  Tensor output;
  double tol_public = 0;
  double tol_secret = 0;
};

Reference read_reference(const std::string& path) {
  const std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() >= 8);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  REQUIRE(n <= bytes.size() - 8);
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  const char* data = bytes.data() + 8 + n;
  auto tensor = [&](const char* name) {
    const auto& e = header.at(name);
    REQUIRE(e.at("dtype") == "F64");
    const auto shape = e.at("shape").get<std::vector<int64_t>>();
    const auto offs = e.at("data_offsets").get<std::vector<uint64_t>>();
    Tensor t = Tensor::empty(shape, veil::core::DType::kFloat64);
    REQUIRE(offs[1] - offs[0] == static_cast<uint64_t>(t.numel()) * 8);
    REQUIRE(8 + n + offs[1] <= bytes.size());
    std::memcpy(t.data<double>(), data + offs[0], offs[1] - offs[0]);
    return t;
  };
  Reference r;
  r.input = tensor("input");
  r.output = tensor("output");
  const auto& meta = header.at("__metadata__");
  r.tol_public = std::stod(meta.at("tol_public").get<std::string>());
  r.tol_secret = std::stod(meta.at("tol_secret").get<std::string>());
  return r;
}

struct RunResult {
  Tensor y;
  bool secret = false;
  std::vector<std::string> parameters;
  std::vector<std::string> buffers;
  int64_t rounds = 0;  // of the forward
  int64_t bytes = 0;   // sent by party 1 in the forward
};

// Imports `file` on every party and runs it in eval mode: public (weights and input public) or
// encrypted (weights secret from party 0, input secret from party 1). Party 0's result.
RunResult run_file(const std::string& file,
                   const Tensor& input,
                   bool secret,
                   int n,
                   crypto::ProviderKind kind = crypto::ProviderKind::kDealer) {
  auto out = crypto::launch<RunResult>(vt::test_options(n, kind), [&](Party& p) {
    models::OnnxModel m(file, p);
    m->eval();
    RunResult r;
    for (const auto& [name, t] : m->named_parameters()) {
      r.parameters.push_back(name + " " + veil::core::shape_str(t.shape()));
    }
    for (const auto& [name, t] : m->named_buffers()) {
      r.buffers.push_back(name);
    }
    MpcTensor x;
    if (secret) {
      m->encrypt(0);
      x = MpcTensor::share(p.rank() == 1 ? input : Tensor(), 1, input.shape(), p);
    } else {
      x = MpcTensor::from_public(input, p);
    }
    const auto before = p.comm().stats();
    const MpcTensor y = m(x);
    const auto cost = p.comm().stats() - before;
    r.rounds = cost.total.rounds;
    r.bytes = cost.total.bytes_sent;
    r.secret = y.is_secret();
    r.y = y.reveal();
    return r;
  });
  out[0].bytes = out[1].bytes;  // party 1's bytes (party 0's include no truncation traffic)
  return out[0];
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// ---- graphs built in C++ ------------------------------------------------------------------------

models::OnnxValueInfo value_info(const std::string& name, std::vector<int64_t> dims = {}) {
  models::OnnxValueInfo v;
  v.name = name;
  v.has_shape = !dims.empty();
  for (int64_t d : dims) {
    v.dims.push_back(d);
    v.dim_names.push_back(d < 0 ? "N" : "");
  }
  return v;
}

models::OnnxTensor init(const std::string& name, const Tensor& value) {
  models::OnnxTensor t;
  t.name = name;
  t.value = value;
  t.data_type = static_cast<int32_t>(
      value.dtype() == veil::core::DType::kInt64 ? OnnxDataType::kInt64 : OnnxDataType::kFloat);
  return t;
}

OnnxNode node(const std::string& op,
              const std::string& name,
              std::vector<std::string> in,
              std::vector<std::string> out,
              std::vector<OnnxAttribute> attrs = {}) {
  OnnxNode n;
  n.op_type = op;
  n.name = name;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.attributes = std::move(attrs);
  return n;
}

// y = relu(x W1^T + b1) @ W2: Gemm (transB, PyTorch layout), Relu, MatMul.
// x [N, 3], fc1.weight [4, 3], fc1.bias [4], fc2.weight [4, 2].
OnnxGraph mlp_graph(const Tensor& w1, const Tensor& b1, const Tensor& w2) {
  OnnxGraph g;
  g.opsets = {{"", 13}};
  g.inputs = {value_info("x", {-1, 3})};
  g.outputs = {value_info("y")};
  g.initializers = {init("fc1.weight", w1), init("fc1.bias", b1), init("fc2.weight", w2)};
  g.nodes = {node("Gemm", "fc1", {"x", "fc1.weight", "fc1.bias"}, {"h"},
                  {OnnxAttribute::of_int("transB", 1)}),
             node("Relu", "relu", {"h"}, {"r"}), node("MatMul", "fc2", {"r", "fc2.weight"}, {"y"})};
  return g;
}

struct MlpData {
  Tensor x = vt::uniform({4, 3}, -1, 1, 11);
  Tensor w1 = vt::uniform({4, 3}, -1, 1, 12);
  Tensor b1 = vt::uniform({4}, -0.5, 0.5, 13);
  Tensor w2 = vt::uniform({4, 2}, -1, 1, 14);
  Tensor r = vt::uniform({4, 2}, -1, 1, 15);  // loss = sum(y * r)
};

// The message of the first veil::Error that fn throws on party 0 ("" when none).
std::string error_of(const std::function<void(Party&)>& fn) {
  auto msgs = crypto::launch<std::string>(vt::test_options(2), [&](Party& p) -> std::string {
    try {
      fn(p);
    } catch (const veil::Error& e) {
      return e.what();
    }
    return "";
  });
  return msgs[0];
}

}  // namespace

// ---- generated models
// -----------------------------------------------------------------------------

TEST_CASE("onnx: generated models match the numpy reference in public mode", "[onnx]") {
  if (!have_models()) {
    return;
  }
  for (const char* name : {"mlp", "lenet", "resnet", "misc", "misc2"}) {
    // GIVEN a model and its float64 reference
    const Reference ref = read_reference(generated().file(std::string(name) + ".safetensors"));
    // WHEN every party imports it and runs it on the public input
    const RunResult r =
        run_file(generated().file(std::string(name) + ".onnx"), ref.input, false, 2);
    // THEN the output is public and within the derived tolerance
    const double err = vt::max_abs_diff(r.y, ref.output);
    INFO(name << ": max error " << err << ", tolerance " << ref.tol_public);
    CHECK_FALSE(r.secret);
    CHECK(r.y.shape() == ref.output.shape());
    CHECK(err <= ref.tol_public);
    std::printf("onnx public %-6s max error %.3g (tolerance %.3g)\n", name, err, ref.tol_public);
  }
}

TEST_CASE("onnx: initializers become parameters and buffers under their ONNX names", "[onnx]") {
  if (!have_models()) {
    return;
  }
  const Reference ref = read_reference(generated().file("lenet.safetensors"));
  const RunResult r = run_file(generated().file("lenet.onnx"), ref.input, false, 2);
  // PyTorch names and the ONNX layout (Gemm weights [out, in]).
  CHECK(contains(r.parameters, "conv1.weight [4, 1, 3, 3]"));
  CHECK(contains(r.parameters, "conv1.bias [4]"));
  CHECK(contains(r.parameters, "bn1.weight [4]"));
  CHECK(contains(r.parameters, "fc1.weight [10, 24]"));
  CHECK(contains(r.buffers, "bn1.running_mean"));
  CHECK(contains(r.buffers, "bn2.running_var"));
  CHECK_FALSE(contains(r.parameters, "bn1.running_mean [4]"));
}

TEST_CASE("onnx: generated models run encrypted (weights from party 0, data from party 1)",
          "[onnx]") {
  if (!have_models()) {
    return;
  }
  constexpr auto kDealer = crypto::ProviderKind::kDealer;
  constexpr auto kTfp = crypto::ProviderKind::kTrustedFirstParty;
  struct Case {
    const char* name;
    int parties;
    crypto::ProviderKind kind;
  };
  for (const Case c :
       {Case{"mlp", 2, kDealer}, Case{"lenet", 2, kDealer}, Case{"resnet", 2, kDealer},
        Case{"misc", 2, kDealer}, Case{"misc2", 2, kDealer}, Case{"lenet", 3, kDealer},
        Case{"mlp", 3, kTfp}}) {
    const Reference ref = read_reference(generated().file(std::string(c.name) + ".safetensors"));
    const RunResult r = run_file(generated().file(std::string(c.name) + ".onnx"), ref.input, true,
                                 c.parties, c.kind);
    const double err = vt::max_abs_diff(r.y, ref.output);
    const char* provider = c.kind == kDealer ? "dealer" : "tfp";
    INFO(c.name << " with " << c.parties << " parties (" << provider << "): max error " << err
                << ", tolerance " << ref.tol_secret);
    CHECK(r.secret);
    CHECK(err <= ref.tol_secret);
    std::printf(
        "onnx secret %-6s N=%d %-6s max error %.3g (tolerance %.3g), forward %lld "
        "rounds, %lld B (party 1)\n",
        c.name, c.parties, provider, err, ref.tol_secret, static_cast<long long>(r.rounds),
        static_cast<long long>(r.bytes));
  }
}

TEST_CASE("onnx: one error lists every unsupported node", "[onnx]") {
  if (!have_models()) {
    return;
  }
  const std::string path = generated().file("unsupported.onnx");
  const std::string msg = error_of([&](Party& p) { models::OnnxModel m(path, p); });
  INFO(msg);
  CHECK_THAT(msg, Contains("[onnx_import] " + path));
  CHECK_THAT(msg, Contains("4 unsupported nodes"));
  CHECK_THAT(msg, Contains("Conv 'conv_same'"));
  CHECK_THAT(msg, Contains("auto_pad SAME_UPPER"));
  CHECK_THAT(msg, Contains("MaxPool 'pool_ceil'"));
  CHECK_THAT(msg, Contains("ceil_mode 1"));
  CHECK_THAT(msg, Contains("LSTM 'lstm_0'"));
  CHECK_THAT(msg, Contains("Einsum 'einsum_0'"));
}

TEST_CASE("onnx: an opset older than veil imports is refused", "[onnx]") {
  if (!have_models()) {
    return;
  }
  const std::string path = generated().file("old_opset.onnx");
  const std::string msg = error_of([&](Party& p) { models::OnnxModel m(path, p); });
  CHECK_THAT(msg, Contains("[onnx_import] " + path + ": opset 7 is outside"));
}

// ---- bad files ----------------------------------------------------------------------------------

TEST_CASE("onnx: garbage, truncated, empty and missing files give clear errors", "[onnx]") {
  if (!models::onnx_available()) {
    // The stub names the CMake option.
    CHECK_THROWS_AS(models::read_onnx("bytes", "m.onnx"), veil::NotCompiledError);
    CHECK_THROWS_WITH(models::write_onnx(OnnxGraph{}), Contains("-DVEIL_WITH_ONNX=ON"));
  }
  if (!have_onnx()) {
    return;
  }
  const MlpData d;
  const std::string good = models::write_onnx(mlp_graph(d.w1, d.b1, d.w2));
  REQUIRE_NOTHROW(models::read_onnx(good, "good.onnx"));
  // GIVEN bytes that are not a model
  CHECK_THROWS_WITH(models::read_onnx("hello, I am not a model", "text.onnx"),
                    Contains("[onnx_import] text.onnx: not an ONNX model"));
  CHECK_THROWS_WITH(models::read_onnx("", "empty.onnx"),
                    Contains("[onnx_import] empty.onnx: the file is empty"));
  std::mt19937_64 gen(5);
  for (int k = 0; k < 50; ++k) {
    std::string junk(static_cast<std::size_t>(1 + gen() % 2000), '\0');
    for (char& ch : junk) {
      ch = static_cast<char>(gen() & 0xff);
    }
    CHECK_THROWS_AS(models::read_onnx(junk, "junk.onnx"), veil::ValueError);
  }
  // AND every truncation of a good model
  for (std::size_t cut = 1; cut < good.size(); cut += 7) {
    INFO("cut at " << cut << " of " << good.size());
    bool refused = false;
    try {
      const OnnxGraph g = models::read_onnx(good.substr(0, cut), "cut.onnx");
      // A cut on a field boundary may parse; the importer must then refuse the partial graph.
      refused = !error_of([&](Party& p) { models::OnnxModelImpl m(g, "cut.onnx", {}, p); }).empty();
    } catch (const veil::ValueError& e) {
      refused = std::string(e.what()).find("[onnx_import] cut.onnx") != std::string::npos;
    }
    CHECK(refused);
  }
  // AND corrupted bytes never crash: they parse and import, or throw veil::Error
  int survived = 0;
  for (int k = 0; k < 100; ++k) {
    std::string bad = good;
    for (int j = 0; j < 3; ++j) {
      bad[static_cast<std::size_t>(gen() % bad.size())] = static_cast<char>(gen() & 0xff);
    }
    try {
      const OnnxGraph g = models::read_onnx(bad, "flipped.onnx");
      if (error_of([&](Party& p) { models::OnnxModelImpl m(g, "flipped.onnx", {}, p); }).empty()) {
        ++survived;
      }
    } catch (const veil::Error&) {
    }
  }
  std::printf("onnx: %d of 100 corrupted models still imported (flipped weight bytes)\n", survived);
  // AND a missing file is an IoError naming it; a truncated file on disk a ValueError naming it
  vt::TempDir dir("veil_onnx_bad");
  const std::string missing = dir.file("missing.onnx");
  CHECK_THAT(error_of([&](Party& p) { models::OnnxModel m(missing, p); }),
             Contains("[onnx_import] " + missing + ": cannot open the file"));
  const std::string truncated = dir.file("truncated.onnx");
  write_bytes(truncated, good.substr(0, good.size() / 2));
  CHECK_THAT(error_of([&](Party& p) { models::OnnxModel m(truncated, p); }),
             Contains("[onnx_import] " + truncated + ": not an ONNX model"));
}

// ---- graphs built in C++ ------------------------------------------------------------------------

TEST_CASE("onnx: graph errors name the file, the node and the value", "[onnx]") {
  const MlpData d;
  SECTION("missing initializer") {
    OnnxGraph g = mlp_graph(d.w1, d.b1, d.w2);
    g.initializers.erase(g.initializers.begin());  // drop fc1.weight
    const std::string msg =
        error_of([&](Party& p) { models::OnnxModelImpl m(g, "m.onnx", {}, p); });
    CHECK_THAT(msg, Contains("[onnx_import] m.onnx: node Gemm 'fc1' reads 'fc1.weight'"));
    CHECK_THAT(msg, Contains("missing initializer"));
  }
  SECTION("graph output nobody produces, unknown domain, run-time Reshape shape") {
    OnnxGraph g = mlp_graph(d.w1, d.b1, d.w2);
    g.outputs.push_back(value_info("ghost"));
    OnnxNode custom = node("FusedThing", "fused0", {"y"}, {"z"});
    custom.domain = "com.example";
    g.nodes.push_back(custom);
    g.initializers.push_back(init("shape", Tensor::from_vector<int64_t>({-1}, {1})));
    g.nodes.push_back(node("Identity", "copy_shape", {"shape"}, {"shape2"}));
    g.nodes.push_back(node("Reshape", "reshape0", {"y", "shape2"}, {"flat"}));
    const std::string msg =
        error_of([&](Party& p) { models::OnnxModelImpl m(g, "m.onnx", {}, p); });
    INFO(msg);
    CHECK_THAT(msg, Contains("2 unsupported nodes"));
    CHECK_THAT(msg, Contains("com.example::FusedThing 'fused0' (operator domain 'com.example'"));
    CHECK_THAT(msg, Contains("Reshape 'reshape0' (its shape 'shape2' is computed at run time"));
    CHECK_THAT(msg, Contains("graph output 'ghost' is not produced"));
  }
  SECTION("unsupported attributes and outputs veil does not compute") {
    OnnxGraph g = mlp_graph(d.w1, d.b1, d.w2);
    g.nodes[1].attributes.push_back(OnnxAttribute::of_int("frobnicate", 1));  // Relu
    g.nodes.push_back(node("Dropout", "drop", {"y"}, {"y2", "mask"}));
    g.outputs.push_back(value_info("mask"));
    const std::string msg =
        error_of([&](Party& p) { models::OnnxModelImpl m(g, "m.onnx", {}, p); });
    INFO(msg);
    CHECK_THAT(msg, Contains("Relu 'relu' (attribute 'frobnicate' is not supported)"));
    CHECK_THAT(msg, Contains("graph output 'mask' (it is the mask output of Dropout 'drop'"));
  }
  SECTION("opset and inputs") {
    OnnxGraph g = mlp_graph(d.w1, d.b1, d.w2);
    g.opsets = {{"", 30}};
    CHECK_THAT(
        error_of([&](Party& p) { models::OnnxModelImpl m(g, "m.onnx", {}, p); }),
        Contains("[onnx_import] m.onnx: opset 30 is outside the range veil imports (9..21)"));
    g.opsets = {{"com.example", 1}};
    CHECK_THAT(error_of([&](Party& p) { models::OnnxModelImpl m(g, "m.onnx", {}, p); }),
               Contains("imports no opset of the default ONNX domain"));
    g = mlp_graph(d.w1, d.b1, d.w2);
    g.inputs[0].elem_type = static_cast<int32_t>(OnnxDataType::kInt64);
    CHECK_THAT(error_of([&](Party& p) { models::OnnxModelImpl m(g, "m.onnx", {}, p); }),
               Contains("graph input 'x' has element type INT64"));
  }
  SECTION("a wrong input shape at run time") {
    const OnnxGraph g = mlp_graph(d.w1, d.b1, d.w2);
    const std::string msg = error_of([&](Party& p) {
      models::OnnxModelImpl m(g, "m.onnx", {}, p);
      m.forward(MpcTensor::from_public(vt::uniform({2, 5}, -1, 1, 1), p));
    });
    CHECK_THAT(msg, Contains("[OnnxModel] m.onnx: input 'x' expected shape [N, 3], got [2, 5]"));
  }
}

TEST_CASE("onnx: dotted names become child modules, others are mangled", "[onnx]") {
  OnnxGraph g;
  g.opsets = {{"", 13}};
  g.inputs = {value_info("x", {2, 3})};
  g.outputs = {value_info("y")};
  const std::vector<std::string> names = {"fc.weight", "fc", "a..b", ".x", "features.0.weight"};
  std::string cur = "x";
  int k = 0;
  for (const auto& n : names) {
    g.initializers.push_back(init(n, vt::uniform({3}, -1, 1, static_cast<uint64_t>(40 + k))));
    const std::string out = k + 1 == static_cast<int>(names.size()) ? "y" : "v" + std::to_string(k);
    g.nodes.push_back(node("Add", "add" + std::to_string(k), {cur, n}, {out}));
    cur = out;
    ++k;
  }
  auto out = crypto::launch<std::vector<std::string>>(vt::test_options(2), [&](Party& p) {
    models::OnnxModelImpl m(g, "names.onnx", {}, p);
    std::vector<std::string> got;
    for (const auto& [name, t] : m.named_parameters()) {
      got.push_back(name);
    }
    got.push_back("state_name(fc)=" + m.state_name("fc"));
    // A frozen import: no parameter requires grad.
    models::OnnxImportOptions frozen;
    frozen.requires_grad = false;
    models::OnnxModelImpl f(g, "names.onnx", frozen, p);
    for (const auto& [name, t] : f.named_parameters()) {
      if (t.requires_grad()) {
        got.push_back("trainable " + name);
      }
    }
    return got;
  });
  const std::vector<std::string>& got = out[0];
  CHECK(contains(got, "fc.weight"));          // child module "fc", parameter "weight"
  CHECK(contains(got, "fc_1"));               // "fc" is already a module: mangled
  CHECK(contains(got, "a__b"));               // empty segment
  CHECK(contains(got, "_x"));                 // leading dot
  CHECK(contains(got, "features.0.weight"));  // two levels of children
  CHECK(contains(got, "state_name(fc)=fc_1"));
  CHECK(got.size() == 6);  // 5 names + state_name; nothing trainable in the frozen import
}

TEST_CASE("onnx: gradients flow through an imported graph (public and secret)", "[onnx]") {
  const MlpData d;
  // Analytic float64 gradients of loss = sum(relu(x W1^T + b1) W2 * r).
  const auto x = d.x.to_vector<double>();
  const auto w1 = d.w1.to_vector<double>();
  const auto b1 = d.b1.to_vector<double>();
  const auto w2 = d.w2.to_vector<double>();
  const auto rr = d.r.to_vector<double>();
  std::vector<double> gw1(12, 0), gb1(4, 0), gw2(8, 0);
  double min_abs_h = 1e9;
  for (int n = 0; n < 4; ++n) {
    for (int j = 0; j < 4; ++j) {
      double h = b1[static_cast<std::size_t>(j)];
      for (int i = 0; i < 3; ++i) {
        h += x[static_cast<std::size_t>(n * 3 + i)] * w1[static_cast<std::size_t>(j * 3 + i)];
      }
      min_abs_h = std::min(min_abs_h, std::abs(h));
      const double relu_h = std::max(h, 0.0);
      double dr = 0;  // d loss / d relu(h)
      for (int o = 0; o < 2; ++o) {
        dr += rr[static_cast<std::size_t>(n * 2 + o)] * w2[static_cast<std::size_t>(j * 2 + o)];
        gw2[static_cast<std::size_t>(j * 2 + o)] +=
            relu_h * rr[static_cast<std::size_t>(n * 2 + o)];
      }
      const double dh = h > 0 ? dr : 0.0;
      gb1[static_cast<std::size_t>(j)] += dh;
      for (int i = 0; i < 3; ++i) {
        gw1[static_cast<std::size_t>(j * 3 + i)] += dh * x[static_cast<std::size_t>(n * 3 + i)];
      }
    }
  }
  // The relu mask is well defined on the fixed-point grid.
  REQUIRE(min_abs_h > 100 * kU);
  // Tolerance: every gradient entry sums at most 4 products of values below 2 in magnitude whose
  // encodings are off by u/2, plus the truncations of the forward and backward products
  // (about 4 (2 u/2 + 2 u/2) + 3 u); 16 u leaves a factor of two.
  const double tol = 16 * kU;
  for (const bool secret : {false, true}) {
    auto out = crypto::launch<std::vector<Tensor>>(vt::test_options(2), [&](Party& p) {
      models::OnnxModelImpl m(mlp_graph(d.w1, d.b1, d.w2), "mlp.onnx", {}, p);
      MpcTensor xin = MpcTensor::from_public(d.x, p);
      if (secret) {
        m.encrypt(0);
        xin = MpcTensor::share(p.rank() == 1 ? d.x : Tensor(), 1, d.x.shape(), p);
      }
      const MpcTensor y = m.forward(xin);
      veil::sum(veil::mul(y, MpcTensor::from_public(d.r, p))).backward();
      std::vector<Tensor> g;
      for (const auto& [name, t] : m.named_parameters()) {
        g.push_back(t.grad().reveal());
      }
      return g;
    });
    const auto& g = out[0];
    REQUIRE(g.size() == 3);  // fc1.weight, fc1.bias, fc2.weight
    INFO((secret ? "secret" : "public"));
    CHECK(vt::max_abs_diff(g[0], Tensor::from_vector<double>(gw1, {4, 3})) <= tol);
    CHECK(vt::max_abs_diff(g[1], Tensor::from_vector<double>(gb1, {4})) <= tol);
    CHECK(vt::max_abs_diff(g[2], Tensor::from_vector<double>(gw2, {4, 2})) <= tol);
  }
}

TEST_CASE("onnx: an imported graph costs what the same veil ops cost", "[onnx][cost]") {
  // Public weights (a frozen pretrained layer) on secret data: public x secret products, no
  // Beaver triple; the Relu is the only protocol with rounds for N = 2.
  const MlpData d;
  for (const int n : {2, 3}) {
    auto costs = crypto::launch<std::vector<int64_t>>(vt::test_options(n), [&](Party& p) {
      models::OnnxModelImpl m(mlp_graph(d.w1, d.b1, d.w2), "mlp.onnx", {}, p);
      const MpcTensor x = MpcTensor::share(p.rank() == 1 ? d.x : Tensor(), 1, d.x.shape(), p);
      veil::NoGradGuard no_grad;
      auto before = p.comm().stats();
      const MpcTensor y1 = m.forward(x);
      const auto imported = p.comm().stats() - before;
      before = p.comm().stats();
      const MpcTensor w1 = MpcTensor::from_public(d.w1, p);
      const MpcTensor h =
          veil::add(veil::matmul(x, veil::transpose(w1)), MpcTensor::from_public(d.b1, p));
      const MpcTensor y2 = veil::matmul(veil::relu(h), MpcTensor::from_public(d.w2, p));
      const auto direct = p.comm().stats() - before;
      return std::vector<int64_t>{imported.total.rounds, imported.total.bytes_sent,
                                  direct.total.rounds, direct.total.bytes_sent};
    });
    const auto& c = costs[1];
    INFO(n << " parties: imported " << c[0] << " rounds / " << c[1] << " B, direct " << c[2]
           << " rounds / " << c[3] << " B");
    CHECK(c[0] == c[2]);
    CHECK(c[1] == c[3]);
    // The documented formulas: ReLU on the 16 hidden values, 4 rounds and
    // 8(N - 1)(n + 39 ceil(n / 64)) bytes; for N > 2 the truncations of Gemm's output (16) and
    // MatMul's (8) add a round and 8 bytes per element each.
    const int64_t relu_bytes = 8 * (n - 1) * (16 + 39);
    CHECK(c[0] == (n == 2 ? 4 : 6));
    CHECK(c[1] == relu_bytes + (n == 2 ? 0 : 8 * (16 + 8)));
    std::printf("onnx cost N=%d: imported mlp forward %lld rounds, %lld B (party 1)\n", n,
                static_cast<long long>(c[0]), static_cast<long long>(c[1]));
  }
}

// ---- export -------------------------------------------------------------------------------------

namespace {

models::LeNetConfig small_lenet() {
  models::LeNetConfig c;
  c.conv1_channels = 2;
  c.conv2_channels = 3;
  c.fc1_features = 8;
  c.fc2_features = 6;
  c.classes = 4;
  return c;
}

// Sets every parameter and buffer of a public module to seeded values (BatchNorm variances
// positive), so that no layer is at its default.
void randomize(nn::Module& m, uint64_t seed) {
  for (auto [name, t] : m.state_dict()) {
    if (name.find("num_batches_tracked") != std::string::npos) {
      continue;
    }
    const bool var = name.find("running_var") != std::string::npos;
    const Tensor v = vt::uniform(t.shape(), var ? 0.5 : -0.6, var ? 2.0 : 0.6, seed++);
    t.assign_(MpcTensor::from_public(v, t.party()));
  }
}

// Whether Python's onnx.checker accepts the file (true when Python or onnx is missing).
bool python_checker_accepts(const std::string& path) {
  if (std::system("/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1") != 0) {
    return true;
  }
  const std::string cmd =
      "/usr/bin/python3 -c 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]))' '" +
      path + "'";
  return std::system(cmd.c_str()) == 0;
}

}  // namespace

TEST_CASE("onnx: LeNet exported and imported again computes the same outputs", "[onnx]") {
  if (!have_onnx()) {
    return;
  }
  vt::TempDir dir("veil_onnx_lenet");
  const Tensor x = vt::uniform({2, 784}, 0, 1, 21);
  struct Out {
    Tensor y_lenet, y_onnx;
    bool bit_exact = false;
    std::vector<std::string> names;
    Tensor fc1_veil, fc1_onnx;
  };
  for (const bool secret : {false, true}) {
    auto out = crypto::launch<Out>(vt::test_options(2), [&](Party& p) {
      models::LeNet net(small_lenet(), p);
      randomize(*net, 100);
      net->eval();
      const std::string file = dir.file("lenet" + std::to_string(p.rank()) + ".onnx");
      models::export_onnx(net, file);  // the holder overload
      models::OnnxModel m(file, p);
      m->eval();
      Out o;
      for (const auto& [name, t] : m->state_dict()) {
        o.names.push_back(name);
      }
      o.fc1_veil = net->fc1->weight.reveal();
      for (const auto& [name, t] : m->named_parameters()) {
        if (name == "fc1.weight") {
          o.fc1_onnx = t.reveal();
        }
      }
      MpcTensor xin = MpcTensor::from_public(x, p);
      if (secret) {
        net->encrypt(0);
        m->encrypt(0);
        xin = MpcTensor::share(p.rank() == 1 ? x : Tensor(), 1, x.shape(), p);
      }
      const MpcTensor a = net(xin);
      const MpcTensor b = m(xin);
      o.bit_exact = a.is_public() && b.is_public() &&
                    a.public_ring().to_vector<uint64_t>() == b.public_ring().to_vector<uint64_t>();
      o.y_lenet = a.reveal();
      o.y_onnx = b.reveal();
      return o;
    });
    const Out& o = out[0];
    INFO((secret ? "secret" : "public"));
    // Names and layouts: the state_dict() names, the Linear weight transposed to [out, in].
    CHECK(contains(o.names, "conv1.weight"));
    CHECK(contains(o.names, "bn2.running_var"));
    CHECK(contains(o.names, "fc3.bias"));
    CHECK(vt::max_abs_diff(o.fc1_onnx, o.fc1_veil.t().contiguous()) == 0.0);
    if (!secret) {
      // Same encodings (float32 holds every fixed-point value below 256), same ops: bit exact.
      CHECK(o.bit_exact);
    } else {
      // Two secret evaluations differ by their truncation errors and inv_sqrt's contract
      // (1e-3 relative, BatchNorm); both are close to the public result.
      CHECK(vt::max_abs_diff(o.y_lenet, o.y_onnx) <= 2e-2);
    }
  }
  CHECK(python_checker_accepts(dir.file("lenet0.onnx")));
}

TEST_CASE("onnx: a Sequential exported and imported again computes the same outputs", "[onnx]") {
  if (!have_onnx()) {
    return;
  }
  vt::TempDir dir("veil_onnx_seq");
  const Tensor x = vt::uniform({3, 2, 4, 4}, -1, 1, 31);
  auto out = crypto::launch<std::vector<std::string>>(vt::test_options(2), [&](Party& p) {
    nn::Sequential seq(nn::Conv2d(nn::Conv2dOptions(2, 3, 3).padding(1), p),
                       nn::BatchNorm2d(nn::BatchNormOptions(3), p), nn::ReLU(), nn::MaxPool2d(2),
                       nn::Flatten(), nn::Linear(nn::LinearOptions(12, 5), p), nn::Tanh(),
                       nn::Dropout(0.2), nn::Linear(nn::LinearOptions(5, 3), p));
    randomize(*seq, 300);
    seq->eval();
    const std::string file = dir.file("seq" + std::to_string(p.rank()) + ".onnx");
    models::OnnxExportOptions opt;
    opt.input_shape = {-1, 2, 4, 4};
    models::export_onnx(*seq, file, opt);
    models::OnnxModel m(file, p);
    m->eval();
    const MpcTensor xin = MpcTensor::from_public(x, p);
    const MpcTensor a = seq(xin);
    const MpcTensor b = m(xin);
    std::vector<std::string> r;
    r.push_back(a.public_ring().to_vector<uint64_t>() == b.public_ring().to_vector<uint64_t>()
                    ? "bit exact"
                    : "differs");
    for (const auto& [name, t] : m->state_dict()) {
      r.push_back(name + " " + veil::core::shape_str(t.shape()));
    }
    // Secret parameters cannot be exported.
    seq->encrypt(0);
    try {
      models::export_onnx_bytes(*seq, opt);
      r.push_back("exported a secret model");
    } catch (const veil::ValueError& e) {
      r.push_back(e.what());
    }
    return r;
  });
  const auto& r = out[0];
  CHECK(r[0] == "bit exact");
  CHECK(contains(r, "0.weight [3, 2, 3, 3]"));
  CHECK(contains(r, "1.running_mean [3]"));
  CHECK(contains(r, "5.weight [5, 12]"));  // PyTorch layout [out, in]
  CHECK(contains(r, "8.bias [3]"));
  CHECK_THAT(r.back(), Contains("[export_onnx] '0.weight' is secret"));
  CHECK(python_checker_accepts(dir.file("seq0.onnx")));
}

TEST_CASE("onnx: more layers exported and imported again", "[onnx]") {
  if (!have_onnx()) {
    return;
  }
  vt::TempDir dir("veil_onnx_seq2");
  const Tensor x = vt::uniform({2, 1, 5, 5}, -1, 1, 32);
  auto out = crypto::launch<std::vector<double>>(vt::test_options(2), [&](Party& p) {
    nn::Sequential seq(
        nn::Conv2d(nn::Conv2dOptions(1, 2, 3), p), nn::AvgPool2d(nn::AvgPool2dOptions(2).stride(1)),
        nn::ReLU6(), nn::Flatten(), nn::LayerNorm(nn::LayerNormOptions({8}), p),
        nn::Sequential(nn::Linear(nn::LinearOptions(8, 6), p), nn::GELU(), nn::LeakyReLU(0.1)),
        nn::Hardtanh(-0.5, 0.5), nn::Linear(nn::LinearOptions(6, 3), p), nn::Softmax(1));
    randomize(*seq, 500);
    seq->eval();
    const std::string file = dir.file("seq" + std::to_string(p.rank()) + ".onnx");
    models::OnnxExportOptions opt;
    opt.input_shape = {-1, 1, 5, 5};
    models::export_onnx(*seq, file, opt);
    models::OnnxModel m(file, p);
    m->eval();
    const MpcTensor xin = MpcTensor::from_public(x, p);
    return std::vector<double>{vt::max_abs_diff(seq(xin).reveal(), m(xin).reveal()),
                               m->state_name("5.0.weight") == "5.0.weight" ? 1.0 : 0.0};
  });
  // GELU is exported as x (1 + erf(x / sqrt 2)) / 2 (opset 17 has no Gelu): three extra
  // truncations and roundings, a few u, then the last Linear (6 inputs, |w| <= 0.6) and the
  // Softmax (Lipschitz 1): 32 u is generous.
  CHECK(out[0][0] <= 32 * kU);
  CHECK(out[0][1] == 1.0);  // nested Sequential: "5.0.weight"
  CHECK(python_checker_accepts(dir.file("seq0.onnx")));
}

TEST_CASE("onnx: an imported model exports its current (fine-tuned) parameters", "[onnx]") {
  if (!have_onnx()) {
    return;
  }
  const MlpData d;
  auto out = crypto::launch<std::vector<double>>(vt::test_options(2), [&](Party& p) {
    models::OnnxModelImpl m(mlp_graph(d.w1, d.b1, d.w2), "mlp.onnx", {}, p);
    // A "fine-tuning step": new values for fc1.bias.
    const Tensor nb = vt::uniform({4}, -1, 1, 99);
    for (auto [name, t] : m.named_parameters()) {
      if (name == "fc1.bias") {
        t.assign_(MpcTensor::from_public(nb, p));
      }
    }
    const OnnxGraph g = models::read_onnx(models::export_onnx_bytes(m), "again.onnx");
    models::OnnxModelImpl again(g, "again.onnx", {}, p);
    const MpcTensor x = MpcTensor::from_public(d.x, p);
    const Tensor y1 = m.forward(x).reveal();
    const Tensor y2 = again.forward(x).reveal();
    Tensor b2;
    for (const auto& [name, t] : again.named_parameters()) {
      if (name == "fc1.bias") {
        b2 = t.reveal();
      }
    }
    return std::vector<double>{vt::max_abs_diff(y1, y2),
                               vt::max_abs_diff(b2, vt::uniform({4}, -1, 1, 99))};
  });
  CHECK(out[0][0] == 0.0);
  CHECK(out[0][1] <= kU / 2);  // the new bias, on the fixed-point grid
}

TEST_CASE("onnx: export refuses what ONNX cannot express", "[onnx]") {
  if (!have_onnx()) {
    return;
  }
  const std::string msg = error_of([&](Party& p) {
    nn::Sequential seq(nn::Linear(nn::LinearOptions(4, 4), p), nn::AdaptiveAvgPool2d(2));
    models::OnnxExportOptions opt;
    opt.input_shape = {2, 4};
    models::export_onnx_bytes(*seq, opt);
  });
  CHECK_THAT(msg, Contains("[export_onnx] module '1': AdaptiveAvgPool2d to 2x2 has no ONNX form"));
  const std::string msg2 = error_of([&](Party& p) {
    nn::Sequential seq(nn::Linear(nn::LinearOptions(4, 4), p));
    models::export_onnx_bytes(*seq);
  });
  CHECK_THAT(msg2, Contains("[export_onnx] options.input_shape is required"));
}

// ---- operator coverage (public mode, float64 references written here) --------------------------

namespace {

struct OpCase {
  std::string what;
  OnnxGraph graph;
  std::vector<Tensor> inputs;
  Tensor expected;
  double tol = 0;
};

// x -> op -> y on one input [rows, cols] at opset `opset`.
OnnxGraph unary_graph(const std::string& op,
                      std::vector<OnnxAttribute> attrs = {},
                      int64_t opset = 13,
                      std::vector<models::OnnxTensor> inits = {},
                      std::vector<std::string> extra_inputs = {}) {
  OnnxGraph g;
  g.opsets = {{"", opset}};
  g.inputs = {value_info("x")};
  g.outputs = {value_info("y")};
  g.initializers = std::move(inits);
  std::vector<std::string> in{"x"};
  in.insert(in.end(), extra_inputs.begin(), extra_inputs.end());
  g.nodes = {node(op, op + "_0", in, {"y"}, std::move(attrs))};
  return g;
}

Tensor map_ref(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> v = x.to_vector<double>();
  for (double& e : v) {
    e = f(e);
  }
  return Tensor::from_vector<double>(v, x.shape());
}

Tensor ints(std::vector<int64_t> v) {
  const auto n = static_cast<int64_t>(v.size());
  return Tensor::from_vector<int64_t>(v, {n});
}

}  // namespace

TEST_CASE("onnx: operators against float64 references (public mode)", "[onnx]") {
  // Tolerances: the input is rounded to the grid (u/2), a public transcendental is evaluated in
  // float64 on the rounded input and rounded again (L u/2 + u/2 with L its Lipschitz constant on
  // the domain), every product of two encodings is truncated once (u); the figures below add
  // those terms for each op (a few u).
  std::vector<OpCase> cases;
  const Tensor x = vt::uniform({3, 4}, -2, 2, 51);
  const Tensor xpos = vt::uniform({3, 4}, 0.5, 3, 52);
  auto unary = [&](const std::string& op, const Tensor& in, std::function<double(double)> f,
                   double lip, std::vector<OnnxAttribute> attrs = {}) {
    cases.push_back(
        {op, unary_graph(op, std::move(attrs)), {in}, map_ref(in, f), (lip + 1) * kU / 2 + kU});
  };
  unary(
      "Exp", x, [](double v) { return std::exp(v); }, std::exp(2.0));
  unary(
      "Log", xpos, [](double v) { return std::log(v); }, 2.0);
  unary(
      "Sqrt", xpos, [](double v) { return std::sqrt(v); }, 1.0);
  unary(
      "Reciprocal", xpos, [](double v) { return 1.0 / v; }, 4.0);
  unary(
      "Erf", x, [](double v) { return std::erf(v); }, 1.2);
  unary(
      "Sigmoid", x, [](double v) { return 1.0 / (1.0 + std::exp(-v)); }, 0.25);
  unary(
      "Tanh", x, [](double v) { return std::tanh(v); }, 1.0);
  unary(
      "Gelu", x, [](double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }, 1.2);
  unary(
      "Relu", x, [](double v) { return std::max(v, 0.0); }, 1.0);
  unary(
      "Neg", x, [](double v) { return -v; }, 1.0);
  unary(
      "Abs", x, [](double v) { return std::abs(v); }, 1.0);
  unary("LeakyRelu", x, [](double v) { return v > 0 ? v : 0.2 * v; }, 1.0,
        {OnnxAttribute::of_float("alpha", 0.2)});
  unary("HardSigmoid", x, [](double v) { return std::clamp(0.25 * v + 0.5, 0.0, 1.0); }, 2.0,
        {OnnxAttribute::of_float("alpha", 0.25), OnnxAttribute::of_float("beta", 0.5)});
  unary(
      "HardSwish", x, [](double v) { return v * std::clamp(v / 6.0 + 0.5, 0.0, 1.0); }, 8.0);
  // Clip, opset 9 (attributes, only a lower bound) and 13 (constant inputs).
  cases.push_back({"Clip opset 9",
                   unary_graph("Clip", {OnnxAttribute::of_float("min", -0.5)}, 9),
                   {x},
                   map_ref(x, [](double v) { return std::max(v, -0.5); }),
                   kU});
  cases.push_back({"Clip opset 13",
                   unary_graph("Clip", {}, 13,
                               {init("lo", Tensor::scalar<double>(-1.0)),
                                init("hi", Tensor::scalar<double>(0.75))},
                               {"lo", "hi"}),
                   {x},
                   map_ref(x, [](double v) { return std::clamp(v, -1.0, 0.75); }),
                   kU});
  // Pow with exponents 3 and -0.5.
  cases.push_back({"Pow 3",
                   unary_graph("Pow", {}, 13, {init("k", Tensor::scalar<double>(3.0))}, {"k"}),
                   {x},
                   map_ref(x, [](double v) { return v * v * v; }),
                   64 * kU});
  cases.push_back({"Pow -0.5",
                   unary_graph("Pow", {}, 13, {init("k", Tensor::scalar<double>(-0.5))}, {"k"}),
                   {xpos},
                   map_ref(xpos, [](double v) { return 1.0 / std::sqrt(v); }),
                   4 * kU});
  // Softmax / LogSoftmax along axis 0 (opset 13: one axis).
  {
    std::vector<double> s(12), l(12);
    const auto v = x.to_vector<double>();
    for (int c = 0; c < 4; ++c) {
      double m = -1e9, z = 0;
      for (int r = 0; r < 3; ++r) {
        m = std::max(m, v[static_cast<std::size_t>(r * 4 + c)]);
      }
      for (int r = 0; r < 3; ++r) {
        z += std::exp(v[static_cast<std::size_t>(r * 4 + c)] - m);
      }
      for (int r = 0; r < 3; ++r) {
        const auto k = static_cast<std::size_t>(r * 4 + c);
        s[k] = std::exp(v[k] - m) / z;
        l[k] = v[k] - m - std::log(z);
      }
    }
    cases.push_back({"Softmax axis 0",
                     unary_graph("Softmax", {OnnxAttribute::of_int("axis", 0)}),
                     {x},
                     Tensor::from_vector<double>(s, {3, 4}),
                     2 * kU});
    cases.push_back({"LogSoftmax axis 0",
                     unary_graph("LogSoftmax", {OnnxAttribute::of_int("axis", 0)}),
                     {x},
                     Tensor::from_vector<double>(l, {3, 4}),
                     3 * kU});
  }
  // Shapes: Transpose (default perm), Squeeze (all unit dims), Gather (scalar index), Slice
  // (opset 9 attributes, negative start), Pad (opset 9 attributes), ReduceMean (opset 18: axes
  // input), Mean and Div of two run-time inputs.
  {
    const auto v = x.to_vector<double>();
    std::vector<double> t(12), row(4), pad(3 * 7, 0.25), sl, rm(3);
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 4; ++c) {
        const double e = v[static_cast<std::size_t>(r * 4 + c)];
        t[static_cast<std::size_t>(c * 3 + r)] = e;
        pad[static_cast<std::size_t>(r * 7 + c + 1)] = e;
        rm[static_cast<std::size_t>(r)] += e / 4;
        if (c >= 2) {
          sl.push_back(e);
        }
      }
    }
    for (int c = 0; c < 4; ++c) {
      row[static_cast<std::size_t>(c)] = v[static_cast<std::size_t>(8 + c)];
    }
    cases.push_back(
        {"Transpose", unary_graph("Transpose"), {x}, Tensor::from_vector<double>(t, {4, 3}), 0});
    cases.push_back({"Squeeze", unary_graph("Squeeze"), {x.reshape({1, 3, 1, 4})}, x, 0});
    cases.push_back({"Gather scalar",
                     unary_graph("Gather", {OnnxAttribute::of_int("axis", 0)}, 13,
                                 {init("i", Tensor::scalar<int64_t>(-1))}, {"i"}),
                     {x},
                     Tensor::from_vector<double>(row, {4}),
                     0});
    cases.push_back(
        {"Slice opset 9",
         unary_graph("Slice",
                     {OnnxAttribute::of_ints("starts", {-2}), OnnxAttribute::of_ints("ends", {100}),
                      OnnxAttribute::of_ints("axes", {1})},
                     9),
         {x},
         Tensor::from_vector<double>(sl, {3, 2}),
         0});
    cases.push_back({"Pad opset 9",
                     unary_graph("Pad",
                                 {OnnxAttribute::of_ints("pads", {0, 1, 0, 2}),
                                  OnnxAttribute::of_float("value", 0.25)},
                                 9),
                     {x},
                     Tensor::from_vector<double>(pad, {3, 7}),
                     0});
    cases.push_back({"ReduceMean opset 18",
                     unary_graph("ReduceMean", {OnnxAttribute::of_int("keepdims", 0)}, 18,
                                 {init("ax", ints({-1}))}, {"ax"}),
                     {x},
                     Tensor::from_vector<double>(rm, {3}),
                     2 * kU});
    OnnxGraph two = unary_graph("Mean");
    two.inputs.push_back(value_info("x2"));
    two.nodes[0].inputs.push_back("x2");
    cases.push_back({"Mean", two, {x, xpos}, map_ref(x, [](double) { return 0.0; }), 3 * kU});
    std::vector<double> mean_ref = v;
    const auto vp = xpos.to_vector<double>();
    for (std::size_t k = 0; k < mean_ref.size(); ++k) {
      mean_ref[k] = (v[k] + vp[k]) / 2;
    }
    cases.back().expected = Tensor::from_vector<double>(mean_ref, {3, 4});
    OnnxGraph dv = unary_graph("Div");
    dv.inputs.push_back(value_info("x2"));
    dv.nodes[0].inputs.push_back("x2");
    std::vector<double> div_ref = v;
    for (std::size_t k = 0; k < div_ref.size(); ++k) {
      div_ref[k] = v[k] / vp[k];
    }
    // Reciprocal of a public run-time divisor in float64, then a product: 2|x| u/2 + u...
    cases.push_back(
        {"Div run-time", dv, {x, xpos}, Tensor::from_vector<double>(div_ref, {3, 4}), 8 * kU});
  }
  // Conv 1-D with asymmetric pads and a bias: x [1, 2, 6], w [3, 2, 3], pads [1, 2].
  {
    const Tensor cx = vt::uniform({1, 2, 6}, -1, 1, 53);
    const Tensor cw = vt::uniform({3, 2, 3}, -1, 1, 54);
    const Tensor cb = vt::uniform({3}, -1, 1, 55);
    const auto xv = cx.to_vector<double>();
    const auto wv = cw.to_vector<double>();
    const auto bv = cb.to_vector<double>();
    const int out_len = 6 + 1 + 2 - 3 + 1;  // 7
    std::vector<double> y(static_cast<std::size_t>(3 * out_len));
    for (int o = 0; o < 3; ++o) {
      for (int j = 0; j < out_len; ++j) {
        double acc = bv[static_cast<std::size_t>(o)];
        for (int c = 0; c < 2; ++c) {
          for (int k = 0; k < 3; ++k) {
            const int pos = j + k - 1;
            if (pos >= 0 && pos < 6) {
              acc += wv[static_cast<std::size_t>((o * 2 + c) * 3 + k)] *
                     xv[static_cast<std::size_t>(c * 6 + pos)];
            }
          }
        }
        y[static_cast<std::size_t>(o * out_len + j)] = acc;
      }
    }
    cases.push_back({"Conv 1-D",
                     unary_graph("Conv", {OnnxAttribute::of_ints("pads", {1, 2})}, 13,
                                 {init("w", cw), init("b", cb)}, {"w", "b"}),
                     {cx},
                     Tensor::from_vector<double>(y, {1, 3, out_len}),
                     6 * kU + 6 * kU / 2 + 2 * kU});
  }
  // Gemm with transA, alpha and beta, C broadcast from [2]: y = 0.5 x^T B + 1.5 C, x [3, 4] (so
  // A = x^T is [4, 3]), B [3, 2]; MatMul with a batch: x [3, 4] viewed as [3, 1, 4] @ W [4, 2].
  {
    const Tensor gb = vt::uniform({3, 2}, -1, 1, 57);
    const Tensor gc = vt::uniform({2}, -1, 1, 58);
    const auto v = x.to_vector<double>();
    const auto bv = gb.to_vector<double>();
    const auto cv = gc.to_vector<double>();
    std::vector<double> y(8);
    for (int i = 0; i < 4; ++i) {
      for (int j = 0; j < 2; ++j) {
        double acc = 0;
        for (int k = 0; k < 3; ++k) {
          acc += v[static_cast<std::size_t>(k * 4 + i)] * bv[static_cast<std::size_t>(k * 2 + j)];
        }
        y[static_cast<std::size_t>(i * 2 + j)] = 0.5 * acc + 1.5 * cv[static_cast<std::size_t>(j)];
      }
    }
    cases.push_back(
        {"Gemm transA alpha beta",
         unary_graph("Gemm",
                     {OnnxAttribute::of_int("transA", 1), OnnxAttribute::of_float("alpha", 0.5),
                      OnnxAttribute::of_float("beta", 1.5)},
                     13, {init("b", gb), init("c", gc)}, {"b", "c"}),
         {x},
         Tensor::from_vector<double>(y, {4, 2}),
         // 3 products of |x|, |b| <= 2 (rounding u/2 each), truncations, alpha, C
         3 * (2 + 1) * kU / 2 + 2 * kU + 2 * kU});
    const Tensor mw = vt::uniform({4, 2}, -1, 1, 59);
    const auto mv = mw.to_vector<double>();
    std::vector<double> m(6);
    for (int r = 0; r < 3; ++r) {
      for (int j = 0; j < 2; ++j) {
        double acc = 0;
        for (int k = 0; k < 4; ++k) {
          acc += v[static_cast<std::size_t>(r * 4 + k)] * mv[static_cast<std::size_t>(k * 2 + j)];
        }
        m[static_cast<std::size_t>(r * 2 + j)] = acc;
      }
    }
    cases.push_back({"MatMul batched",
                     unary_graph("MatMul", {}, 13, {init("w", mw)}, {"w"}),
                     {x.reshape({3, 1, 4})},
                     Tensor::from_vector<double>(m, {3, 1, 2}),
                     4 * (2 + 1) * kU / 2 + kU});
  }
  // GlobalAveragePool on [N, C, L].
  {
    const Tensor gx = vt::uniform({2, 3, 5}, -1, 1, 56);
    const auto v = gx.to_vector<double>();
    std::vector<double> m(6, 0.0);
    for (std::size_t k = 0; k < v.size(); ++k) {
      m[k / 5] += v[k] / 5;
    }
    cases.push_back({"GlobalAveragePool 1-D",
                     unary_graph("GlobalAveragePool"),
                     {gx},
                     Tensor::from_vector<double>(m, {2, 3, 1}),
                     5 * kU / 2 + kU});
  }

  auto outs = crypto::launch<std::vector<Tensor>>(vt::test_options(2), [&](Party& p) {
    std::vector<Tensor> ys;
    for (const OpCase& c : cases) {
      models::OnnxModelImpl m(c.graph, c.what, {}, p);
      std::vector<MpcTensor> in;
      for (const Tensor& t : c.inputs) {
        in.push_back(MpcTensor::from_public(t, p));
      }
      ys.push_back(m.forward(in).at(0).reveal());
    }
    return ys;
  });
  for (std::size_t k = 0; k < cases.size(); ++k) {
    const OpCase& c = cases[k];
    const Tensor& y = outs[0][k];
    INFO(c.what << ": got " << veil::core::shape_str(y.shape()) << ", expected "
                << veil::core::shape_str(c.expected.shape()));
    REQUIRE(y.shape() == c.expected.shape());
    // Exact ops still see the input's rounding to the grid (u/2).
    const double err = vt::max_abs_diff(y, c.expected);
    INFO("max error " << err << ", tolerance " << c.tol + kU / 2);
    CHECK(err <= c.tol + kU / 2);
  }
}

TEST_CASE("onnx: bad attributes and constants are refused per operator", "[onnx]") {
  struct Bad {
    OnnxGraph graph;
    std::string expect;
  };
  std::vector<Bad> bad;
  OnnxAttribute s;
  s.name = "approximate";
  s.kind = OnnxAttribute::Kind::kString;
  s.s = "tanh";
  bad.push_back({unary_graph("Gelu", {s}), "Gelu 'Gelu_0' (approximate 'tanh' is not supported"});
  s.name = "mode";
  s.s = "reflect";
  bad.push_back({unary_graph("Pad", {s}, 9), "Pad 'Pad_0' (mode 'reflect' is not supported"});
  bad.push_back({unary_graph("Pow", {}, 13, {init("k", Tensor::scalar<double>(1.5))}, {"k"}),
                 "Pow 'Pow_0' (exponent 1.5 is not supported"});
  bad.push_back({unary_graph("Softmax", {OnnxAttribute::of_float("axis", 1.0)}),
                 "Softmax 'Softmax_0' (attribute 'axis' should be an int)"});
  bad.push_back({unary_graph("MaxPool", {OnnxAttribute::of_ints("kernel_shape", {2, 2}),
                                         OnnxAttribute::of_ints("pads", {0, 0, 1, 1})}),
                 "MaxPool 'MaxPool_0' (asymmetric pads [0, 0, 1, 1] are not supported)"});
  bad.push_back({unary_graph("AveragePool", {OnnxAttribute::of_ints("kernel_shape", {2, 2, 2})}),
                 "AveragePool 'AveragePool_0' (3-D windows are not supported"});
  bad.push_back({unary_graph("BatchNormalization", {OnnxAttribute::of_int("training_mode", 1)}, 15),
                 "BatchNormalization 'BatchNormalization_0' (training_mode 1 is not supported"});
  bad.push_back({unary_graph("Slice", {}, 13,
                             {init("st", ints({0})), init("en", ints({4})), init("ax", ints({0})),
                              init("sp", ints({-1}))},
                             {"st", "en", "ax", "sp"}),
                 "Slice 'Slice_0' (step -1 is not supported"});
  bad.push_back({unary_graph("Cast", {OnnxAttribute::of_int("to", 7)}),
                 "Cast 'Cast_0' (cast to INT64 is not supported"});
  bad.push_back({unary_graph("Div", {}, 13, {init("z", Tensor::scalar<double>(0.0))}, {"z"}),
                 "Div 'Div_0' (its constant divisor has a zero or non-finite entry)"});
  bad.push_back({unary_graph("ConvTranspose", {OnnxAttribute::of_ints("output_shape", {4, 4})}, 13,
                             {init("w", vt::uniform({1, 1, 2, 2}, -1, 1, 3))}, {"w"}),
                 "ConvTranspose 'ConvTranspose_0' (attribute 'output_shape' is not supported"});
  auto msgs = crypto::launch<std::vector<std::string>>(vt::test_options(2), [&](Party& p) {
    std::vector<std::string> m;
    for (const Bad& b : bad) {
      try {
        models::OnnxModelImpl model(b.graph, "bad.onnx", {}, p);
        m.emplace_back("imported");
      } catch (const veil::ValueError& e) {
        m.emplace_back(e.what());
      }
    }
    return m;
  });
  for (std::size_t k = 0; k < bad.size(); ++k) {
    CHECK_THAT(msgs[0][k],
               Contains("[onnx_import] bad.onnx: 1 unsupported node: " + bad[k].expect));
  }
}
