// models/weights: PyTorch state dicts in and out. A veil model saved and loaded reproduces its
// outputs exactly; a PyTorch-style state dict written by scripts/make_torch_state_dict.py (numpy
// only, run at test time) loads into the equivalent veil modules, publicly and secret-shared from
// its owner (2 and 3 parties), and their forwards match the script's float64 numpy forward;
// wrong names, shapes and dtypes are refused naming the tensor, on every party for
// load_pretrained; save_revealed_to writes only at the target party, byte for byte what the
// public model saves; the costs match the documented formulas.

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "crypto/launch.h"
#include "models/weights.h"
#include "nn/nn.h"
#include "tests/harness/simulate.h"
#include "tests/harness/temp_dir.h"

namespace fs = std::filesystem;
namespace nn = veil::nn;
namespace vm = veil::models;
namespace vt = veil::testing;
using Catch::Matchers::Contains;
using veil::MpcTensor;
using veil::Party;
using veil::core::DType;
using veil::core::Tensor;

namespace {

using Names = std::vector<std::string>;
using Named = std::vector<std::pair<std::string, Tensor>>;

// ---- the script -----------------------------------------------------------------------------

std::string script_path() {
  if (const char* dir = std::getenv("VEIL_SOURCE_DIR")) {  // NOLINT(concurrency-mt-unsafe)
    return (fs::path(dir) / "scripts" / "make_torch_state_dict.py").string();
  }
  return (fs::path(__FILE__).parent_path().parent_path().parent_path() / "scripts" /
          "make_torch_state_dict.py")
      .string();
}

// Runs the script into `dir`; false (and a SKIPPED line) when Debian's python3 or numpy is
// missing.
bool make_state_dicts(const vt::TempDir& dir) {
  if (!fs::exists("/usr/bin/python3") ||
      std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
    std::cout << "SKIPPED: /usr/bin/python3 with numpy is needed to write the PyTorch-style "
                 "state dicts (apt install python3-numpy)\n";
    return false;
  }
  const std::string cmd =
      "/usr/bin/python3 '" + script_path() + "' '" + dir.path().string() + "' 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  return true;
}

// ---- veil twins of the script's PyTorch models --------------------------------------------------

nn::Sequential make_mlp() {
  return nn::Sequential(nn::Linear(6, 8), nn::ReLU(), nn::Linear(8, 3));
}

struct ConvNetImpl : nn::Module {
  ConvNetImpl() {
    features = register_module("features",
                               nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 3, 3).padding(1)),
                                              nn::BatchNorm2d(3), nn::ReLU()));
    fc = register_module("fc", nn::Linear(75, 4));
  }
  MpcTensor forward(const MpcTensor& x) {
    const MpcTensor h = features(x);
    return fc(h.reshape({h.size(0), 75}));
  }
  nn::Sequential features{nullptr};
  nn::Linear fc{nullptr};
};
VEIL_MODULE(ConvNet);

// A model with every kind of parameter and buffer PyTorch names: Conv2d, BatchNorm2d (running
// statistics and num_batches_tracked), Linear (transposed in files), LayerNorm.
struct TinyImpl : nn::Module {
  explicit TinyImpl(uint64_t seed) {
    conv = register_module("conv", nn::Conv2d(nn::Conv2dOptions(1, 2, 3).seed(seed)));
    bn = register_module("bn", nn::BatchNorm2d(2));
    fc = register_module("fc", nn::Linear(nn::LinearOptions(18, 4).seed(seed + 1)));
    ln = register_module("ln", nn::LayerNorm(std::vector<int64_t>{4}));
  }
  MpcTensor forward(const MpcTensor& x) {
    const MpcTensor h = veil::relu(bn(conv(x)));
    return ln(fc(h.reshape({h.size(0), 18})));
  }
  nn::Conv2d conv{nullptr};
  nn::BatchNorm2d bn{nullptr};
  nn::Linear fc{nullptr};
  nn::LayerNorm ln{nullptr};
};
VEIL_MODULE(Tiny);

const Names kTinyNames = {"conv.weight",
                          "conv.bias",
                          "bn.weight",
                          "bn.bias",
                          "bn.running_mean",
                          "bn.running_var",
                          "bn.num_batches_tracked",
                          "fc.weight",
                          "fc.bias",
                          "ln.weight",
                          "ln.bias"};

Tensor io(const std::string& path, const std::string& name) {
  const auto f = veil::core::read_safetensors(path);
  REQUIRE(f.find(name) != nullptr);
  return f.find(name)->tensor;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Rewrites a safetensors file through `edit` on its (name, tensor) list.
void rewrite(const std::string& from,
             const std::string& to,
             const std::function<void(Named&)>& edit) {
  Named t;
  for (const auto& e : veil::core::read_safetensors(from).tensors) {
    t.emplace_back(e.name, e.tensor);
  }
  edit(t);
  veil::core::write_safetensors(to, t);
}

vm::WeightsSaveOptions f32_options() {
  vm::WeightsSaveOptions o;
  o.float_dtype = DType::kFloat32;
  return o;
}

struct Cost {
  int64_t rounds = 0;
  int64_t bytes = 0;
};

Cost cost_of(const veil::comm::CommStats& d) {
  return {d.total.rounds, d.total.bytes_sent};
}

}  // namespace

TEST_CASE("weights: a veil model saved and loaded reproduces its outputs exactly",
          "[models][weights]") {
  vt::TempDir dir("veil_weights");
  struct Out {
    Names file_names;
    bool fc_transposed = false, nbt_i64 = false, same64 = false, same32 = false;
    Names ignored;
    std::string strict_error;
    Names missing, unexpected;
    bool kept = false;
  };
  const auto out = veil::crypto::launch<Out>(vt::test_options(2), [&dir](Party& p) {
    Out o;
    const std::string tag = "_r" + std::to_string(p.rank());
    // GIVEN a trained-looking model (one training forward fills the running statistics)
    Tiny a(11);
    const Tensor x = vt::uniform({3, 1, 5, 5}, -1, 1, 5);
    a(MpcTensor::from_public(x, p));
    a->eval();
    const Tensor ya = a(MpcTensor::from_public(x, p)).public_ring();
    // WHEN saved (F64 and F32) and loaded into models initialised differently
    vm::save_safetensors(*a, dir.file("tiny64" + tag));
    vm::save_safetensors(*a, dir.file("tiny32" + tag), f32_options());
    Tiny b(99);
    Tiny c(77);
    vm::load_safetensors_into(*b, dir.file("tiny64" + tag));
    vm::load_safetensors_into(*c, dir.file("tiny32" + tag));
    b->eval();
    c->eval();
    // THEN the outputs are identical to the bit (the ring encodings)
    o.same64 = b(MpcTensor::from_public(x, p)).public_ring().to_vector<uint64_t>() ==
               ya.to_vector<uint64_t>();
    o.same32 = c(MpcTensor::from_public(x, p)).public_ring().to_vector<uint64_t>() ==
               ya.to_vector<uint64_t>();
    // AND the file has PyTorch's names, order and layouts
    const auto f = veil::core::read_safetensors(dir.file("tiny64" + tag));
    for (const auto& e : f.tensors) {
      o.file_names.push_back(e.name);
    }
    const Tensor w = a->fc->weight.reveal();  // veil [18, 4]
    const Tensor fw = f.find("fc.weight")->tensor;
    o.fc_transposed =
        fw.shape() == veil::core::Shape{4, 18} && vt::max_abs_diff(fw, w.t().contiguous()) == 0.0;
    const auto* nbt = f.find("bn.num_batches_tracked");
    o.nbt_i64 = nbt->stored_dtype == "I64" && nbt->tensor.dim() == 0 &&
                nbt->tensor.item<int64_t>() == 1 && f.metadata.at("format") == "pt";
    // AND a num_batches_tracked the module lacks is accepted and ignored, even when strict
    rewrite(dir.file("tiny64" + tag), dir.file("extra" + tag), [](Named& t) {
      t.emplace_back("conv.num_batches_tracked", Tensor::scalar<int64_t>(3));
    });
    o.ignored = vm::load_safetensors_into(*b, dir.file("extra" + tag)).ignored;
    // AND missing / unexpected entries: listed together when strict, reported otherwise
    rewrite(dir.file("tiny64" + tag), dir.file("partial" + tag), [](Named& t) {
      t.erase(t.begin() + 10);  // ln.bias
      t.erase(t.begin() + 1);   // conv.bias
      t.emplace_back("zzz", Tensor::scalar<double>(1.0));
    });
    try {
      vm::load_safetensors_into(*c, dir.file("partial" + tag));
    } catch (const veil::ValueError& e) {
      o.strict_error = e.what();
    }
    const auto before = c->ln->bias.public_ring().to_vector<uint64_t>();
    const auto report = vm::load_safetensors_into(*c, dir.file("partial" + tag), false);
    o.missing = report.missing;
    o.unexpected = report.unexpected;
    o.kept = c->ln->bias.public_ring().to_vector<uint64_t>() == before;
    return o;
  });
  for (const Out& o : out) {
    CHECK(o.same64);
    CHECK(o.same32);  // |values| < 256: float32 holds every 16-fractional-bit value exactly
    CHECK(o.file_names == kTinyNames);
    CHECK(o.fc_transposed);
    CHECK(o.nbt_i64);
    CHECK(o.ignored == Names{"conv.num_batches_tracked"});
    CHECK_THAT(o.strict_error, Contains("[load_safetensors] '") &&
                                   Contains("does not match the module: missing 'conv.bias', "
                                            "'ln.bias'; unexpected 'zzz'"));
    CHECK(o.missing == Names{"conv.bias", "ln.bias"});
    CHECK(o.unexpected == Names{"zzz"});
    CHECK(o.kept);
  }
}

TEST_CASE("weights: every nn layer's file entries have PyTorch's names and shapes",
          "[models][weights]") {
  // PyTorch's shapes (torch.nn docs): Conv1d weight [out, in/groups, k]; ConvTranspose2d weight
  // [in, out/groups, k, k]; Linear weight [out, in]; BatchNorm1d weight, bias, running_mean,
  // running_var [C] and num_batches_tracked []; LayerNorm weight and bias normalized_shape.
  struct LayersImpl : nn::Module {
    LayersImpl() {
      register_module("c1", nn::Conv1d(nn::Conv1dOptions(2, 4, 3).groups(2)));
      register_module("ct", nn::ConvTranspose2d(nn::ConvTranspose2dOptions(4, 6, 3).groups(2)));
      register_module("fc", nn::Linear(nn::LinearOptions(5, 7).bias(false)));
      register_module("bn", nn::BatchNorm1d(4));
      register_module("ln", nn::LayerNorm(std::vector<int64_t>{2, 3}));
    }
  };
  using Entry = std::pair<std::string, veil::core::Shape>;
  const std::vector<Entry> torch = {{"c1.weight", {4, 1, 3}},
                                    {"c1.bias", {4}},
                                    {"ct.weight", {4, 3, 3, 3}},
                                    {"ct.bias", {6}},
                                    {"fc.weight", {7, 5}},
                                    {"bn.weight", {4}},
                                    {"bn.bias", {4}},
                                    {"bn.running_mean", {4}},
                                    {"bn.running_var", {4}},
                                    {"bn.num_batches_tracked", {}},
                                    {"ln.weight", {2, 3}},
                                    {"ln.bias", {2, 3}}};
  vt::TempDir dir("veil_weights_layers");
  const auto out = veil::crypto::launch<std::vector<Entry>>(vt::test_options(2), [&](Party& p) {
    // GIVEN one of every layer with parameters; WHEN saved, THEN read back and loaded strictly
    LayersImpl m;
    const std::string path = dir.file("layers_r" + std::to_string(p.rank()));
    vm::save_safetensors(m, path);
    std::vector<Entry> got;
    for (const auto& e : veil::core::read_safetensors(path).tensors) {
      got.emplace_back(e.name, e.tensor.shape());
    }
    LayersImpl fresh;
    vm::load_safetensors_into(fresh, path);
    return got;
  });
  for (const auto& got : out) {
    CHECK(got == torch);
  }
}

TEST_CASE("weights: a PyTorch state dict from the script loads and matches numpy",
          "[models][weights][python]") {
  vt::TempDir dir("veil_weights_py");
  if (!make_state_dicts(dir)) {
    return;
  }
  const Tensor mlp_x = io(dir.file("mlp_io.safetensors"), "input");
  const Tensor mlp_y = io(dir.file("mlp_io.safetensors"), "output");
  const Tensor conv_x = io(dir.file("convnet_io.safetensors"), "input");
  const Tensor conv_y = io(dir.file("convnet_io.safetensors"), "output");
  // Tolerances in units of 2^-f (f = 16), worst case: inputs and weights are rounded to 2^-17
  // and every product is truncated (1 ulp; secret: +1). MLP: layer 1 (fan-in 6, |x| <= 1,
  // |w| <= 0.41) <= 6 ulps, layer 2 (fan-in 8, |w| <= 0.36) multiplies that by <= 2.9 and adds
  // ~5: < 32 ulps. Convnet: conv (fan-in 9) <= 8 ulps, BatchNorm scale <= 1.5 / sqrt(0.5) = 2.2,
  // fc row L1 norm <= 75 * 0.116 = 8.7: <= ~160 ulps; secret adds crypto::inv_sqrt's error
  // (measured 1.3e-4 on BatchNorm outputs, autograd/norm.h) times 8.7, ~72 ulps: < 256 ulps.
  const double tol_mlp = 32 * vt::ulp();
  const double tol_conv = 256 * vt::ulp();

  SECTION("public: every party reads the file") {
    struct Out {
      double err_mlp = 1e9, err_conv = 1e9;
      Names loaded;
      bool public_after = false;
    };
    const auto out = veil::crypto::launch<Out>(vt::test_options(2), [&](Party& p) {
      Out o;
      // GIVEN the veil twins of the PyTorch models
      nn::Sequential mlp = make_mlp();
      ConvNet net;
      net->eval();
      // WHEN the state dicts are loaded
      vm::load_safetensors_into(*mlp, dir.file("mlp.safetensors"));
      o.loaded = vm::load_safetensors_into(*net, dir.file("convnet.safetensors")).loaded;
      o.public_after = net->fc->weight.is_public();
      // THEN the public forwards match numpy's
      o.err_mlp = vt::max_abs_diff(mlp(MpcTensor::from_public(mlp_x, p)).reveal(), mlp_y);
      o.err_conv = vt::max_abs_diff(net(MpcTensor::from_public(conv_x, p)).reveal(), conv_y);
      return o;
    });
    for (const Out& o : out) {
      CHECK(o.err_mlp <= tol_mlp);
      CHECK(o.err_conv <= tol_conv);
      CHECK(o.loaded == Names{"features.0.weight", "features.0.bias", "features.1.weight",
                              "features.1.bias", "features.1.running_mean",
                              "features.1.running_var", "features.1.num_batches_tracked",
                              "fc.weight", "fc.bias"});
      CHECK(o.public_after);
      UNSCOPED_INFO("public errors: mlp " << o.err_mlp << ", convnet " << o.err_conv);
    }
  }

  SECTION("secret: only the owner has the file") {
    for (int n : {2, 3}) {
      for (int owner : {0, n - 1}) {
        INFO("parties " << n << ", owner " << owner);
        struct Out {
          double err_mlp = 1e9, err_conv = 1e9;
          bool all_secret = false, nbt_ok = false;
        };
        const auto out = veil::crypto::launch<Out>(vt::test_options(n), [&](Party& p) {
          Out o;
          // GIVEN the file at the owner only (the others pass a path that does not exist)
          const bool is_owner = p.rank() == owner;
          const std::string mlp_path =
              is_owner ? dir.file("mlp.safetensors") : "/nonexistent/mlp.safetensors";
          const std::string net_path =
              is_owner ? dir.file("convnet.safetensors") : "/nonexistent/convnet.safetensors";
          nn::Sequential mlp = make_mlp();
          ConvNet net;
          net->eval();
          // WHEN loaded secret-shared from the owner
          vm::load_pretrained(*mlp, mlp_path, owner, p);
          vm::load_pretrained(*net, net_path, owner, p);
          o.all_secret = true;
          for (const auto& [name, t] : net->state_dict()) {
            o.all_secret = o.all_secret && t.is_secret();
          }
          for (const auto& [name, t] : mlp->state_dict()) {
            o.all_secret = o.all_secret && t.is_secret();
          }
          o.nbt_ok = net->features->ptr(1)->named_buffers()[2].second.reveal().item<double>() == 7;
          // THEN the encrypted forward on an input secret-shared by another party matches numpy
          const int data_owner = (owner + 1) % n;
          auto secret_in = [&](const Tensor& x) {
            return MpcTensor::share(p.rank() == data_owner ? x : Tensor(), data_owner, x.shape(),
                                    p);
          };
          o.err_mlp = vt::max_abs_diff(mlp(secret_in(mlp_x)).reveal(), mlp_y);
          o.err_conv = vt::max_abs_diff(net(secret_in(conv_x)).reveal(), conv_y);
          return o;
        });
        for (const Out& o : out) {
          CHECK(o.all_secret);
          CHECK(o.nbt_ok);
          CHECK(o.err_mlp <= tol_mlp);
          CHECK(o.err_conv <= tol_conv);
        }
        UNSCOPED_INFO("secret errors (" << n << " parties): mlp " << out[0].err_mlp << ", convnet "
                                        << out[0].err_conv);
      }
    }
  }

  SECTION("saved back in PyTorch's layout, the values are the file's") {
    const auto out = veil::crypto::launch<int>(vt::test_options(2), [&](Party& p) {
      nn::Sequential mlp = make_mlp();
      vm::load_safetensors_into(*mlp, dir.file("mlp.safetensors"));
      if (p.rank() == 0) {
        vm::save_safetensors(*mlp, dir.file("mlp_back.safetensors"), f32_options());
      }
      return 0;
    });
    (void)out;
    const auto orig = veil::core::read_safetensors(dir.file("mlp.safetensors"));
    const auto back = veil::core::read_safetensors(dir.file("mlp_back.safetensors"));
    REQUIRE(back.tensors.size() == orig.tensors.size());
    for (const auto& e : orig.tensors) {
      INFO(e.name);
      const auto* b = back.find(e.name);
      REQUIRE(b != nullptr);
      CHECK(b->stored_dtype == "F32");
      CHECK(b->tensor.shape() == e.tensor.shape());
      // the only change is the rounding to 16 fractional bits
      CHECK(vt::max_abs_diff(b->tensor.to(DType::kFloat64), e.tensor.to(DType::kFloat64)) <=
            vt::ulp() / 2);
    }
  }

  SECTION("wrong names, shapes and dtypes are refused naming the tensor") {
    // GIVEN edited copies of the PyTorch MLP
    const std::string mlp = dir.file("mlp.safetensors");
    rewrite(mlp, dir.file("renamed.safetensors"), [](Named& t) {
      for (auto& [name, v] : t) {
        name = name == "2.bias" ? "2.biass" : name;
      }
    });
    rewrite(mlp, dir.file("veil_layout.safetensors"), [](Named& t) {
      for (auto& [name, v] : t) {
        v = name == "0.weight" ? v.t().contiguous() : v;  // [6, 8]: veil's layout, not PyTorch's
      }
    });
    rewrite(mlp, dir.file("int.safetensors"), [](Named& t) {
      for (auto& [name, v] : t) {
        v = name == "2.weight" ? Tensor::zeros(v.shape(), DType::kInt64) : v;
      }
    });
    rewrite(mlp, dir.file("nan.safetensors"), [](Named& t) {
      for (auto& [name, v] : t) {
        if (name == "0.bias") {
          v = v.clone();
          v.data<float>()[3] = std::nanf("");
        }
      }
    });
    struct Case {
      std::string file;
      std::string message;
    };
    const std::vector<Case> cases = {
        {"renamed.safetensors", "missing '2.bias'; unexpected '2.biass'"},
        {"veil_layout.safetensors",
         "'0.weight' has shape [6, 8], expected [8, 6] (PyTorch's layout of veil's [6, 8])"},
        {"int.safetensors", "'2.weight' has dtype I64, expected a floating-point dtype"},
        {"nan.safetensors", "'0.bias' cannot be encoded"},
    };
    for (const Case& c : cases) {
      INFO(c.file);
      // WHEN loaded by every party: ValueError naming the tensor
      const std::string path = dir.file(c.file);
      const auto msgs = veil::crypto::launch<std::string>(vt::test_options(2), [&](Party&) {
        nn::Sequential m = make_mlp();
        try {
          vm::load_safetensors_into(*m, path);
        } catch (const veil::ValueError& e) {
          return std::string(e.what());
        }
        return std::string("no error");
      });
      CHECK_THAT(msgs[0], Contains("[load_safetensors] '" + path + "' does not match the module") &&
                              Contains(c.message));
      // AND by the owner only (load_pretrained): every party throws, none hangs, and the session
      // stays usable
      for (int n : {2, 3}) {
        INFO("parties " << n);
        const auto got = veil::crypto::launch<std::string>(vt::test_options(n), [&](Party& p) {
          nn::Sequential m = make_mlp();
          std::string r;
          try {
            vm::load_pretrained(*m, p.rank() == 1 ? path : "", 1, p);
            r = "no error";
          } catch (const veil::ValueError& e) {
            r = std::string("ValueError: ") + e.what();
          }
          const Tensor one = Tensor::scalar<double>(1.0);
          const double v =
              MpcTensor::share(p.rank() == 0 ? one : Tensor(), 0, {}, p).reveal().item<double>();
          return r + (v == 1.0 ? " | session ok" : " | session broken");
        });
        for (int r = 0; r < n; ++r) {
          INFO("party " << r);
          CHECK_THAT(got[static_cast<std::size_t>(r)],
                     Contains("ValueError: ") && Contains(c.message) && Contains("session ok"));
          if (r != 1) {
            CHECK_THAT(got[static_cast<std::size_t>(r)],
                       Contains("[load_pretrained] party 1 could not load its weights: "
                                "[load_pretrained] '" +
                                path + "' does not match the module"));
          }
        }
      }
    }
  }
}

TEST_CASE("weights: load_pretrained errors reach every party, bad arguments", "[models][weights]") {
  vt::TempDir dir("veil_weights_err");
  // GIVEN an owner whose file does not exist; WHEN load_pretrained; THEN IoError everywhere
  const std::string missing = dir.file("none.safetensors");
  const auto got = veil::crypto::launch<std::string>(vt::test_options(3), [&](Party& p) {
    nn::Sequential m = make_mlp();
    try {
      vm::load_pretrained(*m, missing, 2, p);
    } catch (const veil::IoError& e) {
      return std::string("IoError: ") + e.what();
    }
    return std::string("no error");
  });
  for (int r = 0; r < 3; ++r) {
    CHECK_THAT(
        got[static_cast<std::size_t>(r)],
        Contains("IoError: ") && Contains("[read_safetensors] '" + missing + "': cannot open"));
  }
  CHECK_THAT(got[0], Contains("[load_pretrained] party 2 could not load its weights"));
  // bad owner / rank / dtype: ValueError on every party, no communication
  const auto bad = veil::crypto::launch<std::string>(vt::test_options(2), [&](Party& p) {
    nn::Sequential m = make_mlp();
    vm::WeightsSaveOptions int_options;
    int_options.float_dtype = DType::kInt64;
    std::string r;
    for (const auto& fn :
         std::vector<std::function<void()>>{[&] { vm::load_pretrained(*m, missing, 2, p); },
                                            [&] { vm::save_revealed_to(*m, -1, missing, p); },
                                            [&] {
                                              vm::save_safetensors(*m, missing, int_options);
                                            }}) {
      try {
        fn();
      } catch (const veil::ValueError& e) {
        r += std::string(e.what()) + "\n";
      }
    }
    m->encrypt(0);
    try {
      vm::save_safetensors(*m, missing);
    } catch (const veil::ValueError& e) {
      r += e.what();
    }
    return r;
  });
  CHECK_THAT(bad[0], Contains("[load_pretrained] owner party 2 out of range [0, 2)"));
  CHECK_THAT(bad[0], Contains("[save_revealed_to] party -1 out of range [0, 2)"));
  CHECK_THAT(bad[0], Contains("[torch_state_dict] expected float_dtype float64 or float32, got "
                              "int64"));
  CHECK_THAT(bad[0], Contains("[torch_state_dict] '0.weight' is secret"));
  CHECK_FALSE(fs::exists(missing));
}

TEST_CASE("weights: load_pretrained keeps values exact and costs what is documented",
          "[models][weights][cost]") {
  vt::TempDir dir("veil_weights_cost");
  for (int n : {2, 3}) {
    for (const bool secret : {true, false}) {
      INFO("parties " << n << (secret ? ", secret" : ", public"));
      struct Out {
        Cost cost;
        bool exact = false, visibility = false, frozen_kept = false;
      };
      const auto out = veil::crypto::launch<Out>(vt::test_options(n), [&](Party& p) {
        Out o;
        // GIVEN a public model saved by the owner (party 0) and a fresh model everywhere whose
        // first layer is frozen
        const std::string path = dir.file("mlp_" + std::to_string(n) + ".safetensors");
        nn::Sequential src(nn::Linear(nn::LinearOptions(6, 8).seed(1)), nn::ReLU(),
                           nn::Linear(nn::LinearOptions(8, 3).seed(2)));
        if (p.rank() == 0) {
          vm::save_safetensors(*src, path);
        }
        nn::Sequential m = make_mlp();
        m->get_submodule("0")->requires_grad_(false);
        // WHEN loaded from the owner
        const auto before = p.comm().stats();
        vm::PretrainedOptions po;
        po.secret = secret;
        vm::load_pretrained(*m, p.rank() == 0 ? path : "", 0, p, po);
        o.cost = cost_of(p.comm().stats() - before);
        // THEN the values are the owner's exactly, with the asked visibility and requires_grad
        o.exact = true;
        o.visibility = true;
        const auto want = src->state_dict();
        const auto have = m->state_dict();
        for (std::size_t i = 0; i < want.size(); ++i) {
          o.exact = o.exact && have[i].second.reveal().to_vector<double>() ==
                                   want[i].second.reveal().to_vector<double>();
          o.visibility = o.visibility && have[i].second.is_secret() == secret;
        }
        o.frozen_kept = !have[0].second.requires_grad() && have[2].second.requires_grad();
        return o;
      });
      // T = 4 tensors, 83 elements: status 8(N-1)(3 + T) from the owner, 1 round; public: one
      // more round with 8(N-1) * 83 bytes from the owner; the others send nothing
      const int64_t status = 8 * (n - 1) * (3 + 4);
      const int64_t values = secret ? 0 : 8 * (n - 1) * 83;
      CHECK(out[0].cost.rounds == (secret ? 1 : 2));
      CHECK(out[0].cost.bytes == status + values);
      for (int r = 1; r < n; ++r) {
        CHECK(out[static_cast<std::size_t>(r)].cost.rounds == (secret ? 1 : 2));
        CHECK(out[static_cast<std::size_t>(r)].cost.bytes == 0);
      }
      for (const Out& o : out) {
        CHECK(o.exact);
        CHECK(o.visibility);
        CHECK(o.frozen_kept);
      }
    }
  }
}

TEST_CASE("weights: exclude_prefixes loads the body and keeps a replaced head",
          "[models][weights][finetune]") {
  vt::TempDir dir("veil_weights_head");
  struct Out {
    Names loaded, excluded, missing;
    bool body_equal = false, head_kept = false, all_secret = false;
    std::string without_exclude;
  };
  const auto out = veil::crypto::launch<Out>(vt::test_options(3), [&](Party& p) {
    Out o;
    // GIVEN a pretrained 3-class MLP saved by the owner (party 2)
    const std::string path = dir.file("pretrained.safetensors");
    nn::Sequential pre(nn::Linear(nn::LinearOptions(6, 8).seed(1)), nn::ReLU(),
                       nn::Linear(nn::LinearOptions(8, 3).seed(2)));
    if (p.rank() == 2) {
      vm::save_safetensors(*pre, path);
    }
    // AND a model whose head was replaced by a 5-class one
    nn::Sequential m = make_mlp();
    nn::Linear head = m->replace_module("2", nn::Linear(nn::LinearOptions(8, 5).seed(9)));
    const Tensor head_init = head->weight.reveal();
    // WHEN the file is loaded without the head: no error for the head's other shape
    try {
      vm::load_pretrained(*m, p.rank() == 2 ? path : "", 2, p);
    } catch (const veil::ValueError& e) {
      o.without_exclude = e.what();
    }
    vm::PretrainedOptions po;
    po.exclude_prefixes = {"2."};
    const vm::LoadReport r = vm::load_pretrained(*m, p.rank() == 2 ? path : "", 2, p, po);
    o.loaded = r.loaded;
    o.excluded = r.excluded;
    o.missing = r.missing;
    // THEN the body is the file's, the head keeps its initial values, everything is secret
    o.body_equal = m->named_parameters()[0].second.reveal().to_vector<double>() ==
                   pre->named_parameters()[0].second.reveal().to_vector<double>();
    o.head_kept = vt::max_abs_diff(head->weight.reveal(), head_init) == 0.0;
    o.all_secret = true;
    for (const MpcTensor& t : m->parameters()) {
      o.all_secret = o.all_secret && t.is_secret();
    }
    return o;
  });
  for (const Out& o : out) {
    CHECK_THAT(o.without_exclude, Contains("'2.weight' has shape [3, 8], expected [5, 8]"));
    CHECK(o.loaded == Names{"0.weight", "0.bias"});
    CHECK(o.excluded == Names{"2.weight", "2.bias"});
    CHECK(o.missing.empty());
    CHECK(o.body_equal);
    CHECK(o.head_kept);
    CHECK(o.all_secret);
  }
}

TEST_CASE("weights: save_revealed_to writes only at the target, equal to the public save",
          "[models][weights][cost]") {
  vt::TempDir dir("veil_weights_out");
  for (int n : {2, 3}) {
    const int target = n - 1;
    INFO("parties " << n << ", target " << target);
    const auto out = veil::crypto::launch<Cost>(vt::test_options(n), [&](Party& p) {
      // GIVEN a trained-looking public model, saved by party 0 as the reference
      Tiny m(5);
      m(MpcTensor::from_public(vt::uniform({3, 1, 5, 5}, -1, 1, 8), p));
      const std::string tag = std::to_string(n);
      if (p.rank() == 0) {
        vm::save_safetensors(*m, dir.file("public" + tag));
      }
      // WHEN it is encrypted (secret from party 0) and revealed to the target only
      m->encrypt(0);
      const auto before = p.comm().stats();
      vm::save_revealed_to(*m, target, dir.file("out" + tag + "_r" + std::to_string(p.rank())), p);
      return cost_of(p.comm().stats() - before);
    });
    const std::string tag = std::to_string(n);
    // THEN only the target wrote, and its file is the public model's, byte for byte
    for (int r = 0; r < n; ++r) {
      CHECK(fs::exists(dir.file("out" + tag + "_r" + std::to_string(r))) == (r == target));
    }
    CHECK(read_bytes(dir.file("out" + tag + "_r" + std::to_string(target))) ==
          read_bytes(dir.file("public" + tag)));
    // AND the cost: 1 round; each other party sends 8 bytes per element (113 elements), the
    // target nothing
    const int64_t elements = 18 + 2 + 2 + 2 + 2 + 2 + 1 + 72 + 4 + 4 + 4;
    for (int r = 0; r < n; ++r) {
      INFO("party " << r);
      CHECK(out[static_cast<std::size_t>(r)].rounds == 1);
      CHECK(out[static_cast<std::size_t>(r)].bytes == (r == target ? 0 : 8 * elements));
    }
  }
}
