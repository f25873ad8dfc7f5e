// Encrypted checkpoints (models/checkpoint.h): a training run killed at a random step and resumed
// from its last checkpoint in a NEW session (new hub, new dealer, OS keys restored from the files)
// ends with the same parameters, bit for bit, as the uninterrupted run; files of another setup or
// model, and corrupt or truncated files, are refused; a killed writer leaves the previous file.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "core/safetensors.h"
#include "crypto/protocols/arithmetic.h"
#include "models/checkpoint.h"
#include "nn/nn.h"
#include "optim/adam.h"
#include "optim/sgd.h"
#include "tests/harness/errors.h"
#include "tests/harness/simulate.h"
#include "tests/harness/temp_dir.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace crypto = veil::crypto;
namespace models = veil::models;
namespace nn = veil::nn;
namespace optim = veil::optim;
namespace vt = veil::testing;
using crypto::Party;
using veil::MpcTensor;
using veil::core::Tensor;

namespace {

constexpr int64_t kRows = 240;
constexpr int64_t kIn = 8;
constexpr int64_t kClasses = 3;
constexpr int64_t kBatch = 24;

// A synthetic public-seeded dataset: party 0 holds the features, the last party the labels.
struct Data {
  Tensor x;                    // float64 [rows, kIn]
  std::vector<int64_t> label;  // rows class indices
};

Data make_data() {
  Data d;
  d.x = vt::uniform({kRows, kIn}, -1, 1, 11);
  const double* x = d.x.data<double>();
  for (int64_t i = 0; i < kRows; ++i) {
    const double s = x[i * kIn] + 0.5 * x[i * kIn + 1] - x[i * kIn + 2];
    d.label.push_back(s < -0.3 ? 0 : (s < 0.3 ? 1 : 2));
  }
  return d;
}

nn::Sequential make_model(int64_t hidden = 16) {
  // Initial weights from the common PRG (default Linear init) and a dropout layer: both draw
  // public randomness that a resumed run must continue exactly.
  return nn::Sequential(nn::Linear(kIn, hidden), nn::ReLU(), nn::Dropout(0.25),
                        nn::Linear(hidden, kClasses));
}

enum class Opt { kSgdMomentum, kAdam };

std::unique_ptr<optim::Optimizer> make_optimizer(Opt kind, const nn::Sequential& model) {
  if (kind == Opt::kSgdMomentum) {
    return std::make_unique<optim::SGD>(model->parameters(),
                                        optim::SGDOptions(0.05).momentum(0.9).weight_decay(1e-3));
  }
  return std::make_unique<optim::Adam>(model->parameters(), optim::AdamOptions(1e-2));
}

struct Killed : veil::Error {
  explicit Killed(const std::string& what) : veil::Error(what) {}
};

// One training step on a batch drawn from the common PRG (a public shuffle per step). With
// `kill_after_forward`, party 1 dies in the middle of the step.
void train_step(Party& p,
                const Data& d,
                nn::Sequential& model,
                optim::Optimizer& opt,
                bool kill_after_forward = false) {
  const int n = p.world_size();
  std::vector<int64_t> perm(kRows);
  std::iota(perm.begin(), perm.end(), 0);
  p.common_prg().shuffle(perm);
  Tensor xb = Tensor::empty({kBatch, kIn}, veil::core::DType::kFloat64);
  Tensor yb = Tensor::zeros({kBatch, kClasses}, veil::core::DType::kFloat64);
  for (int64_t i = 0; i < kBatch; ++i) {
    const int64_t row = perm[static_cast<std::size_t>(i)];
    for (int64_t j = 0; j < kIn; ++j) {
      xb.data<double>()[i * kIn + j] = d.x.data<double>()[row * kIn + j];
    }
    yb.data<double>()[i * kClasses + d.label[static_cast<std::size_t>(row)]] = 1.0;
  }
  const MpcTensor x = MpcTensor::share(p.rank() == 0 ? xb : Tensor(), 0, {kBatch, kIn}, p);
  const MpcTensor y =
      MpcTensor::share(p.rank() == n - 1 ? yb : Tensor(), n - 1, {kBatch, kClasses}, p);
  opt.zero_grad();
  const MpcTensor logits = model->forward(x);
  if (kill_after_forward && p.rank() == 1) {
    throw Killed("party 1 killed in the middle of a step");
  }
  nn::CrossEntropyLoss loss_fn;
  loss_fn(logits, y).backward();
  opt.step();
}

// Each party's final parameters: the revealed ring values, then its own raw shares (plus what
// the party thread observed, checked on the main thread).
struct Final {
  std::vector<uint64_t> revealed;
  std::vector<uint64_t> shares;
  bool all_secret = true;
  int64_t loaded_step = -1;     // progress.step returned by load_checkpoint
  int64_t save_load_bytes = 0;  // bytes sent during save_checkpoint / load_checkpoint
};

Final final_parameters(Party& p, const nn::Sequential& model) {
  Final f;
  for (const auto& [name, t] : model->state_dict()) {
    f.all_secret = f.all_secret && t.is_secret();
    const auto r = crypto::reveal(p, t.ashare()).to_vector<uint64_t>();
    const auto s = t.ring().to_vector<uint64_t>();
    f.revealed.insert(f.revealed.end(), r.begin(), r.end());
    f.shares.insert(f.shares.end(), s.begin(), s.end());
  }
  return f;
}

std::string path_of(const vt::TempDir& dir, int rank) {
  return dir.file("ckpt.rank" + std::to_string(rank) + ".safetensors");
}

crypto::LaunchOptions resume_options(const vt::TempDir& dir, int n = 2) {
  auto o = vt::test_options(n);
  o.party_for_rank = [&dir, base = o.party](int rank) {
    crypto::PartyOptions po = base;
    po.resume = models::read_checkpoint_session(path_of(dir, rank));
    return po;
  };
  return o;
}

// Runs `steps` steps from scratch, saving every party's checkpoint after each step; returns the
// final parameters.
std::vector<Final> train_and_save(const vt::TempDir& dir, Opt kind, int steps, const Data& d) {
  return crypto::launch<Final>(vt::test_options(2), [&](Party& p) {
    nn::Sequential model = make_model();
    model->encrypt(0);
    auto opt = make_optimizer(kind, model);
    for (int s = 0; s < steps; ++s) {
      train_step(p, d, model, *opt);
      models::save_checkpoint(path_of(dir, p.rank()), *model, opt.get(),
                              {s + 1, 0, {{"loader", "epoch0"}}}, p);
    }
    return final_parameters(p, model);
  });
}

using veil::testing::error_of;

}  // namespace

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST_CASE(
    "a run killed at a random step and resumed from its checkpoint ends bit for bit like "
    "the uninterrupted run",
    "[models][checkpoint]") {
  // Sessions draw their keys from the OS, so two separate runs never agree; the reference and the
  // interrupted run are made the same session by resuming the reference's step-0 checkpoint.
  const Data d = make_data();
  constexpr int kSteps = 6;
  std::random_device rd;
  for (Opt kind : {Opt::kSgdMomentum, Opt::kAdam}) {
    const char* name = kind == Opt::kSgdMomentum ? "SGD(momentum)" : "Adam";
    vt::TempDir ref_dir("veil_ckpt_ref");
    vt::TempDir dir("veil_ckpt");
    auto ref_path = [&](int step, int rank) {
      return ref_dir.file(fmt::format("step-{}.rank{}.safetensors", step, rank));
    };
    // GIVEN the uninterrupted reference run of kSteps steps (2 parties, dealer provider, OS
    // keys), which saves a checkpoint before its first step and after every step
    auto full = crypto::launch<Final>(vt::test_options(2), [&](Party& p) {
      nn::Sequential model = make_model();
      model->encrypt(0);
      auto opt = make_optimizer(kind, model);
      models::save_checkpoint(ref_path(0, p.rank()), *model, opt.get(), {0, 0, {}}, p);
      for (int s = 0; s < kSteps; ++s) {
        train_step(p, d, model, *opt);
        models::save_checkpoint(ref_path(s + 1, p.rank()), *model, opt.get(), {s + 1, 0, {}}, p);
      }
      return final_parameters(p, model);
    });
    // WHEN the same session is run again (a new launch resuming the step-0 checkpoint), saves a
    // checkpoint after every step and is killed in the middle of step k + 1, k drawn at random
    const int k = std::uniform_int_distribution<int>(1, kSteps - 1)(rd);
    std::printf("checkpoint test (%s): killed in step %d of %d, resuming after step %d\n", name,
                k + 1, kSteps, k);
    INFO(name << ": killed in step " << k + 1 << ", resumed after step " << k);
    for (int r = 0; r < 2; ++r) {
      std::filesystem::copy_file(ref_path(0, r), path_of(dir, r));
    }
    std::vector<int64_t> first_loaded(2, -1);
    const std::string killed = error_of([&] {
      crypto::launch(resume_options(dir), [&](Party& p) {
        nn::Sequential model = make_model();
        model->encrypt(0);
        auto opt = make_optimizer(kind, model);
        const auto progress = models::load_checkpoint(path_of(dir, p.rank()), *model, opt.get(), p);
        first_loaded[static_cast<std::size_t>(p.rank())] = progress.step;
        for (int s = 0; s < kSteps; ++s) {
          train_step(p, d, model, *opt, /*kill_after_forward=*/s == k);
          models::save_checkpoint(path_of(dir, p.rank()), *model, opt.get(), {s + 1, 0, {}}, p);
        }
      });
    });
    REQUIRE_THAT(killed, Catch::Contains("killed in the middle of a step"));
    CHECK(first_loaded == std::vector<int64_t>{0, 0});
    for (int r = 0; r < 2; ++r) {
      // only the owner may read a checkpoint (it holds shares and keys)
      const auto perms = std::filesystem::status(path_of(dir, r)).permissions();
      CHECK((perms & std::filesystem::perms::all) ==
            (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
      // the last complete checkpoint is step k's, byte for byte the reference run's
      CHECK(models::read_checkpoint_info(path_of(dir, r)).progress.step == k);
      CHECK(file_bytes(path_of(dir, r)) == file_bytes(ref_path(k, r)));
    }
    // AND a NEW session (new hub, new dealer, keys restored from the files) builds the model and
    // the optimizer again (drawing other initial weights), loads, and trains to kSteps
    auto resumed = crypto::launch<Final>(resume_options(dir), [&](Party& p) {
      nn::Sequential model = make_model();
      model->encrypt(0);
      auto opt = make_optimizer(kind, model);
      const auto before = p.comm().stats();
      const auto progress = models::load_checkpoint(path_of(dir, p.rank()), *model, opt.get(), p);
      models::save_checkpoint(dir.file("extra" + std::to_string(p.rank())), *model, opt.get(),
                              progress, p);
      const auto delta = p.comm().stats() - before;
      for (int64_t s = progress.step; s < kSteps; ++s) {
        train_step(p, d, model, *opt);
      }
      Final f = final_parameters(p, model);
      f.loaded_step = progress.step;
      f.save_load_bytes = delta.total.bytes_sent + delta.dealer.bytes_sent;
      return f;
    });
    // THEN the revealed parameters and each party's own shares equal the uninterrupted run's
    REQUIRE(!full[0].revealed.empty());
    for (int r = 0; r < 2; ++r) {
      const auto i = static_cast<std::size_t>(r);
      CHECK(resumed[i].loaded_step == k);
      CHECK(resumed[i].save_load_bytes == 0);  // saving and loading are local
      CHECK(resumed[i].all_secret);
      CHECK(resumed[i].revealed == full[i].revealed);
      CHECK(resumed[i].shares == full[i].shares);
    }
    CHECK(full[0].shares != full[1].shares);  // shares, not public values
    // AND training did something: the parameters moved away from the step-0 checkpoint
    const auto start = models::read_checkpoint_info(ref_path(0, 0));
    CHECK(start.progress.step == 0);
    const auto f0 = veil::core::read_safetensors(ref_path(0, 0));
    const auto f1 = veil::core::read_safetensors(ref_path(kSteps, 0));
    const auto* w0 = f0.find("model.3.weight");
    const auto* w1 = f1.find("model.3.weight");
    REQUIRE(w0 != nullptr);
    REQUIRE(w1 != nullptr);
    CHECK(w0->tensor.to_vector<uint64_t>() != w1->tensor.to_vector<uint64_t>());
  }
}

TEST_CASE(
    "checkpoints of another rank, world size, model or optimizer are refused with the "
    "differing fields",
    "[models][checkpoint]") {
  const Data d = make_data();
  vt::TempDir dir("veil_ckpt_refuse");
  const auto saved = train_and_save(dir, Opt::kSgdMomentum, 2, d);
  const auto info = models::read_checkpoint_info(path_of(dir, 1));
  CHECK(info.rank == 1);
  CHECK(info.world_size == 2);
  CHECK(info.ring == "Z_2^64");
  CHECK(info.frac_bits == 16);
  CHECK(info.provider == "dealer");
  CHECK(info.optimizer == "SGD");
  CHECK(info.model == "0.weight[8,16];0.bias[16];3.weight[16,3];3.bias[3]");
  CHECK(info.progress == models::CheckpointProgress{2, 0, {{"loader", "epoch0"}}});
  CHECK(info.run_id.size() == 16);

  // GIVEN a fresh 2-party session (its own keys)
  const auto errors = crypto::launch<std::vector<std::string>>(vt::test_options(2), [&](Party& p) {
    std::vector<std::string> e;
    const std::string mine = path_of(dir, p.rank());
    const std::string other = path_of(dir, 1 - p.rank());
    models::CheckpointLoadOptions shares_only;
    shares_only.restore_session = false;
    nn::Sequential model = make_model();
    model->encrypt(0);
    auto sgd = make_optimizer(Opt::kSgdMomentum, model);
    const Final initial = final_parameters(p, model);
    // a bit-for-bit resume needs a session resumed from the file
    e.push_back(error_of([&] { models::load_checkpoint(mine, *model, sgd.get(), p); }));
    // another rank's file
    e.push_back(
        error_of([&] { models::load_checkpoint(other, *model, sgd.get(), p, shares_only); }));
    // another model (hidden width 12) and another optimizer
    nn::Sequential narrow = make_model(12);
    e.push_back(error_of([&] { models::load_checkpoint(mine, *narrow, nullptr, p, shares_only); }));
    auto adam = make_optimizer(Opt::kAdam, model);
    e.push_back(
        error_of([&] { models::load_checkpoint(mine, *model, adam.get(), p, shares_only); }));
    // bad saves: a progress key with a space, a directory that does not exist
    e.push_back(error_of([&] {
      models::save_checkpoint(dir.file("x"), *model, sgd.get(), {0, 0, {{"bad key", "1"}}}, p);
    }));
    e.push_back(error_of(
        [&] { models::save_checkpoint(dir.file("no/such/dir/x"), *model, sgd.get(), {}, p); }));
    // the refusals changed nothing
    const Final unchanged = final_parameters(p, model);
    e.push_back(unchanged.shares == initial.shares ? "unchanged" : "changed");
    // the shares load into a fresh session and reveal the saved parameters (shares do not
    // depend on the session's keys)
    const auto progress = models::load_checkpoint(mine, *model, sgd.get(), p, shares_only);
    e.push_back(std::to_string(progress.step));
    const Final f = final_parameters(p, model);
    e.push_back(f.revealed == saved[0].revealed ? "same" : "different");
    e.push_back(f.shares == saved[static_cast<std::size_t>(p.rank())].shares ? "same"
                                                                             : "different");
    return e;
  });
  for (const auto& e : errors) {
    CHECK_THAT(e[0], Catch::Contains("[load_checkpoint]") &&
                         Catch::Contains("this session was not resumed from the checkpoint"));
    CHECK_THAT(e[1],
               Catch::Contains("written by another setup or model") && Catch::Contains("rank: '"));
    CHECK_THAT(e[2], Catch::Contains("model entry '0.weight': [8,16] in the file, [8,12] here") &&
                         Catch::Contains("'3.weight': [16,3] in the file, [12,3] here"));
    CHECK_THAT(e[3], Catch::Contains("optimizer: 'SGD' in the file, 'Adam' here"));
    CHECK_THAT(e[4], Catch::Contains("[save_checkpoint] expected progress.extra keys"));
    CHECK_THAT(e[5], Catch::Contains("[save_checkpoint] cannot create a private temporary"));
    CHECK(e[6] == "unchanged");
    CHECK(e[7] == "2");
    CHECK(e[8] == "same");
    CHECK(e[9] == "same");
  }
  CHECK_THAT(errors[0][1], Catch::Contains("rank: '1' in the file, '0' here"));

  // WHEN a 3-party session loads the 2-party files THEN the world size is named
  const std::string three = error_of([&] {
    crypto::launch(vt::test_options(3), [&](Party& p) {
      nn::Sequential model = make_model();
      models::CheckpointLoadOptions shares_only;
      shares_only.restore_session = false;
      models::load_checkpoint(path_of(dir, p.rank() % 2), *model, nullptr, p, shares_only);
    });
  });
  CHECK_THAT(three, Catch::Contains("world_size: '2' in the file, '3' here"));

  // WHEN a session with another fixed-point scale loads them THEN frac_bits is named
  auto f20 = vt::test_options(2);
  f20.party.frac_bits = 20;
  const std::string scale = error_of([&] {
    crypto::launch(f20, [&](Party& p) {
      nn::Sequential model = make_model();
      models::CheckpointLoadOptions shares_only;
      shares_only.restore_session = false;
      models::load_checkpoint(path_of(dir, p.rank()), *model, nullptr, p, shares_only);
    });
  });
  CHECK_THAT(scale, Catch::Contains("frac_bits: '16' in the file, '20' here"));

  // WHEN the parties resume each other's files THEN setup refuses (rank of the session state)
  auto swapped = vt::test_options(2);
  swapped.party_for_rank = [&dir, base = swapped.party](int rank) {
    crypto::PartyOptions po = base;
    po.resume = models::read_checkpoint_session(path_of(dir, 1 - rank));
    return po;
  };
  CHECK_THAT(
      error_of([&] { crypto::launch(swapped, [](Party&) {}); }),
      Catch::Contains("the resume state does not fit this party") && Catch::Contains("rank: "));
  // WHEN a session resumed from the files communicates before loading THEN the load is refused
  const auto late = crypto::launch<std::string>(resume_options(dir), [&](Party& p) {
    nn::Sequential model = make_model();
    model->encrypt(0);
    (void)crypto::reveal(p, model->parameters()[0].ashare());
    return error_of([&] { models::load_checkpoint(path_of(dir, p.rank()), *model, nullptr, p); });
  });
  CHECK_THAT(late[0], Catch::Contains("expected no communication"));
}

TEST_CASE("corrupt, truncated and foreign files are refused", "[models][checkpoint]") {
  const Data d = make_data();
  vt::TempDir dir("veil_ckpt_corrupt");
  (void)train_and_save(dir, Opt::kAdam, 1, d);
  const std::string good = path_of(dir, 0);
  const std::string bytes = file_bytes(good);
  REQUIRE(bytes.size() > 200);
  auto write = [&](const std::string& name, const std::string& content) {
    const std::string p = dir.file(name);
    std::ofstream(p, std::ios::binary) << content;
    return p;
  };
  // a flipped bit in the data section
  std::string flipped = bytes;
  flipped[flipped.size() - 5] = static_cast<char>(flipped[flipped.size() - 5] ^ 0x10);
  CHECK_THROWS_WITH(models::read_checkpoint_info(write("flipped", flipped)),
                    Catch::Contains("checksum mismatch"));
  // an edited public field in the header (same length, valid JSON)
  std::string edited = bytes;
  const auto at = edited.find("\"progress.step\":\"1\"");
  REQUIRE(at != std::string::npos);
  edited[at + std::string("\"progress.step\":\"").size()] = '7';
  CHECK_THROWS_WITH(models::read_checkpoint_info(write("edited", edited)),
                    Catch::Contains("checksum mismatch"));
  // truncated files
  for (std::size_t keep : {bytes.size() - 1, bytes.size() / 2, std::size_t{5}}) {
    INFO("kept " << keep << " bytes");
    CHECK_THROWS_AS(models::read_checkpoint_info(write("truncated", bytes.substr(0, keep))),
                    veil::IoError);
    CHECK_THROWS_AS(models::read_checkpoint_session(write("truncated", bytes.substr(0, keep))),
                    veil::IoError);
  }
  // a safetensors file that is not a checkpoint, and a missing file
  veil::core::write_safetensors(dir.file("plain"), {{"w", vt::uniform({2, 2}, 0, 1, 1)}});
  CHECK_THROWS_WITH(models::read_checkpoint_info(dir.file("plain")),
                    Catch::Contains("not a veil checkpoint"));
  CHECK_THROWS_AS(models::read_checkpoint_info(dir.file("missing")), veil::IoError);
  // the intact file still reads
  CHECK(models::read_checkpoint_info(good).optimizer == "Adam");
}

TEST_CASE("a writer killed in the middle of a save leaves the previous checkpoint intact",
          "[models][checkpoint]") {
  vt::TempDir dir("veil_ckpt_kill");
  const std::string path = path_of(dir, 0);
  std::random_device rd;
  std::vector<int64_t> steps;  // the step found in the file after each kill
  int leftovers = 0;
  // GIVEN a large model (~100k parameters, ~0.8 MB per file) and a complete checkpoint of it
  const auto outcome = crypto::launch<std::vector<std::string>>(
      vt::test_options(2), [&](Party& p) -> std::vector<std::string> {
        if (p.rank() != 0) {
          (void)p.comm().recv(0, "test#done");  // idle (no locks held) while party 0 forks
          return {};
        }
        nn::Sequential model = make_model(8192);
        model->encrypt(0);
        models::save_checkpoint(path, *model, nullptr, {1, 0, {}}, p);
        std::vector<std::string> out;
        for (int attempt = 0; attempt < 4; ++attempt) {
          // WHEN a child process saves over it again and again and is SIGKILLed at a random time
          // (the last attempt waits long enough for complete saves even on a slow machine)
          const int delay_ms = attempt < 3 ? std::uniform_int_distribution<int>(5, 60)(rd) : 400;
          const pid_t child = fork();
          if (child == 0) {
            try {
              for (int64_t step = 2;; ++step) {
                models::save_checkpoint(path, *model, nullptr, {step, 0, {}}, p);
              }
            } catch (...) {
              _exit(3);
            }
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
          kill(child, SIGKILL);
          int status = 0;
          waitpid(child, &status, 0);
          out.push_back(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? "killed" : "exited");
          // THEN the file at `path` is a complete, valid checkpoint (the old one or a newer one)
          int64_t step = 0;
          out.push_back(error_of([&] {
            step = models::read_checkpoint_info(path).progress.step;
            if (step < 1) {
              throw veil::Error("step went back");
            }
          }));
          steps.push_back(step);
        }
        // leftovers of the killed writers (temporary files that were never renamed)
        for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
          leftovers += e.path() != path ? 1 : 0;
        }
        p.comm().send(1, "test#done", std::vector<std::byte>(1));
        return out;
      });
  const auto& out = outcome[0];
  std::printf("killed-writer test: steps found after the kills: %s; %d unrenamed temporary files\n",
              fmt::format("{}", fmt::join(steps, ", ")).c_str(), leftovers);
  // the children did write (some kill found a newer file), so the kills hit working writers
  CHECK(*std::max_element(steps.begin(), steps.end()) > 1);
  REQUIRE(out.size() == 8);
  for (std::size_t i = 0; i < out.size(); i += 2) {
    CHECK(out[i] == "killed");
    CHECK(out[i + 1] == "(no exception)");
  }
}

TEST_CASE("SGD::set_state restores a momentum buffer and checks index and shape",
          "[models][checkpoint][optim]") {
  struct Out {
    std::vector<double> err;
    std::string bad_index, bad_shape;
    bool cleared = false;
  };
  const auto r = crypto::launch<Out>(vt::test_options(2), [](Party& p) {
    MpcTensor handle = MpcTensor::from_public(vt::uniform({3, 2}, -1, 1, 5), p);
    handle.encrypt(0);
    handle.set_requires_grad(true);
    optim::SGD opt({handle}, optim::SGDOptions(0.5).momentum(0.5));
    const Tensor buf = vt::uniform({3, 2}, -1, 1, 6);
    const Tensor g = vt::uniform({3, 2}, -1, 1, 7);
    opt.set_state(0, MpcTensor::from_public(buf, p));
    handle.set_grad(MpcTensor::from_public(g, p));
    const Tensor before = handle.reveal();
    opt.step();  // buf <- 0.5 buf + g; w <- w - 0.5 buf
    const Tensor after = handle.reveal();
    Out out;
    for (int64_t i = 0; i < 6; ++i) {
      const double expected =
          before.data<double>()[i] - 0.5 * (0.5 * buf.data<double>()[i] + g.data<double>()[i]);
      out.err.push_back(std::abs(after.data<double>()[i] - expected));
    }
    out.bad_index = error_of([&] { opt.set_state(1, MpcTensor()); });
    out.bad_shape = error_of([&] { opt.set_state(0, MpcTensor::zeros({2, 3}, p)); });
    opt.set_state(0, MpcTensor());  // "no step yet": the next step starts from the gradient
    out.cleared = !opt.momentum_buffer(0).defined();
    return out;
  });
  for (const Out& o : r) {
    REQUIRE(o.err.size() == 6);
    for (double e : o.err) {
      CHECK(e <= 4 * vt::ulp());
    }
    CHECK_THAT(o.bad_index, Catch::Contains("[SGD::set_state] parameter index 1 out of range"));
    CHECK_THAT(o.bad_shape,
               Catch::Contains("[SGD::set_state] expected a momentum buffer of shape [3, 2]"));
    CHECK(o.cleared);
  }
}
