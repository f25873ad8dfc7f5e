// veil-finetune as a user runs it: the metrics file, what each party's directory holds, and the
// delivered weights.

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "tests/harness/temp_dir.h"
#include "tests/harness/tools.h"

namespace {

std::string binary() {
  return veil::testing::tool_path("veil-finetune");
}

int run(const std::string& args) {
  return veil::testing::run_tool("veil-finetune", args);
}

bool have_data() {
  return veil::testing::have_fashion_mnist();
}

}  // namespace

TEST_CASE("veil-finetune fine-tunes privately and delivers the weights to party 0 only",
          "[tools][finetune]") {
  if (!std::filesystem::exists(binary()) || !have_data()) {
    std::puts("SKIPPED: veil-finetune or the Fashion-MNIST dataset is not available");
    return;
  }
  const veil::testing::TempDir dir;
  const std::string out = (dir.path() / "run").string();
  const std::string metrics = (dir.path() / "m.json").string();
  // GIVEN a short run: 600 pretraining images, 600 of classes 5-9, 120 replayed, 300 test images
  REQUIRE(run("--pretrain-samples 600 --finetune-samples 600 --replay 120 --test-samples 300 "
              "--batch-size 60 --eval-batch 150 --out-dir " +
              out + " --metrics-json " + metrics) == 0);
  std::ifstream in(metrics);
  const auto j = nlohmann::json::parse(in);
  // THEN the documented fields are there
  for (const char* key : {"accuracy_before", "accuracy_after", "plaintext_accuracy_after",
                          "seconds", "delivered_accuracy", "rows_per_party"}) {
    CHECK(j.contains(key));
  }
  CHECK(j["rows_per_party"] == nlohmann::json::array({120, 300, 300}));
  // the private fine-tune follows the plaintext twin, and the model delivered to party 0 gives
  // (in public-mode inference) what the encrypted inference gave
  const double after = j["accuracy_after"].get<double>();
  CHECK(std::abs(after - j["plaintext_accuracy_after"].get<double>()) <= 0.05);
  CHECK(std::abs(after - j["delivered_accuracy"].get<double>()) <= 0.03);
  // the pretrained 5-class model can never be right on classes 5-9; the fine-tuned one learns them
  CHECK(j["accuracy_after_classes_5_9"].get<double>() > 0.3);
  // only party 0's directory holds files: its pretrained model and the delivered weights
  CHECK(std::filesystem::exists(out + "/party0/pretrained.safetensors"));
  CHECK(std::filesystem::exists(out + "/party0/pretrained.onnx"));
  CHECK(!std::filesystem::exists(out + "/party1"));
  CHECK(!std::filesystem::exists(out + "/party2"));
  const auto delivered = veil::core::read_safetensors(out + "/party0/finetuned.safetensors");
  const auto* head = delivered.find("fc3.weight");
  REQUIRE(head != nullptr);
  CHECK(head->tensor.shape() == veil::core::Shape{10, 84});  // PyTorch layout [out, in]
  CHECK(delivered.find("bn1.running_mean") != nullptr);
}

TEST_CASE("veil-finetune exits non-zero on bad input", "[tools][finetune]") {
  if (!std::filesystem::exists(binary())) {
    std::puts("SKIPPED: veil-finetune was not built");
    return;
  }
  CHECK(run("--replay -1 --pretrain-samples 50 --finetune-samples 50") != 0);
  CHECK(run("--replay 100 --pretrain-samples 50 --finetune-samples 50") != 0);  // > party 0's
  CHECK(run("--data-dir /nonexistent") != 0);
}
