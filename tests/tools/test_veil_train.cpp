// veil-train as a user runs it: exit codes, the metrics file and its fields.

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/harness/temp_dir.h"
#include "tests/harness/tools.h"

namespace {

std::string binary() {
  return veil::testing::tool_path("veil-train");
}

int run(const std::string& args) {
  return veil::testing::run_tool("veil-train", args);
}

bool have_data() {
  return veil::testing::have_fashion_mnist();
}

}  // namespace

TEST_CASE("veil-train writes its metrics and tracks the plaintext twin", "[tools][slow]") {
  if (!std::filesystem::exists(binary()) || !have_data()) {
    std::puts("SKIPPED: veil-train or the Fashion-MNIST dataset is not available");
    return;
  }
  const auto path = std::filesystem::temp_directory_path() / "veil_test_metrics.json";
  std::filesystem::remove(path);
  // GIVEN a short run: 1,500 rows, 300 test images, 2 parties with the dealer
  REQUIRE(run("--samples 1500 --test-samples 300 --batch-size 64 --metrics-json " +
              path.string()) == 0);
  std::ifstream in(path);
  const auto j = nlohmann::json::parse(in);
  // THEN every documented field is there, with plausible values
  for (const char* key :
       {"test_accuracy", "plaintext_test_accuracy", "train_seconds", "plaintext_train_seconds",
        "parties", "samples", "epochs", "provider", "mb_sent_per_party", "rounds"}) {
    CHECK(j.contains(key));
  }
  CHECK(j["parties"] == 2);
  CHECK(j["samples"] == 1500);
  CHECK(j["provider"] == "dealer");
  CHECK(j["rounds"].get<int64_t>() > 0);
  CHECK(j["mb_sent_per_party"].get<double>() > 0);
  CHECK(j["test_accuracy"].get<double>() > 0.6);
  CHECK(std::abs(j["test_accuracy"].get<double>() - j["plaintext_test_accuracy"].get<double>()) <=
        0.05);
  std::filesystem::remove(path);
}

TEST_CASE("veil-train exits non-zero on bad input", "[tools]") {
  if (!std::filesystem::exists(binary())) {
    std::puts("SKIPPED: veil-train was not built");
    return;
  }
  CHECK(run("--parties 1") != 0);                           // fewer than 2 parties
  CHECK(run("--provider tfp --samples 10") != 0);           // insecure without --insecure
  CHECK(run("--provider nonsense --samples 10") != 0);      // unknown provider
  CHECK(run("--data-dir /nonexistent --samples 10") != 0);  // missing dataset files
  CHECK(run("--device tpu --samples 10") != 0);             // unknown device
  CHECK(run("--device cuda:99 --samples 10") != 0);         // no such GPU (or no CUDA build)
}

TEST_CASE("veil-train resumes from a checkpoint bit for bit", "[tools][checkpoint]") {
  if (!std::filesystem::exists(binary()) || !have_data()) {
    std::puts("SKIPPED: veil-train or the Fashion-MNIST dataset is not available");
    return;
  }
  const veil::testing::TempDir dir;
  const std::string ck = (dir.path() / "ck").string();
  const std::string a = (dir.path() / "a.json").string();
  const std::string b = (dir.path() / "b.json").string();
  const std::string common =
      "--samples 600 --test-samples 200 --batch-size 60 --no-twin --progress-every 1 ";
  // GIVEN a run (OS keys) that checkpoints every 2 of its 10 steps
  REQUIRE(run(common + "--checkpoint-dir " + ck + " --checkpoint-every 2 --metrics-json " + a) ==
          0);
  // WHEN a new session resumes from step 4 and runs to the end
  REQUIRE(run(common + "--checkpoint-dir " + ck + " --resume-step 4 --metrics-json " + b) == 0);
  std::ifstream ina(a);
  std::ifstream inb(b);
  const auto ja = nlohmann::json::parse(ina);
  const auto jb = nlohmann::json::parse(inb);
  // THEN the revealed losses of steps 5..10 and every test prediction are those of the first run
  const auto la = ja["losses"].get<std::vector<double>>();
  const auto lb = jb["losses"].get<std::vector<double>>();
  REQUIRE(la.size() == 10);
  CHECK(std::vector<double>(la.begin() + 4, la.end()) == lb);
  CHECK(ja["predictions_digest"] == jb["predictions_digest"]);
  CHECK(jb["resumed_from_step"] == 4);
  // a checkpoint of another model, or none, is refused
  CHECK(run(common + "--model lenet --checkpoint-dir " + ck + " --resume-step 4") != 0);
  CHECK(run(common + "--checkpoint-dir " + (dir.path() / "none").string() + " --resume") != 0);
}
