#pragma once
// The command-line programs of this build and the Fashion-MNIST files, for the tests that run
// them: one place for the path rule (VEIL_BINARY_DIR is set by CTest) and the data check.

#include <cstdlib>
#include <filesystem>
#include <string>

#include "models/data.h"

#include <sys/wait.h>

namespace veil::testing {

/// Path of the program `name` (e.g. "veil-train") in this build's tools/ directory.
inline std::string tool_path(const std::string& name) {
  const char* dir = std::getenv("VEIL_BINARY_DIR");  // NOLINT(concurrency-mt-unsafe)
  return std::string(dir != nullptr ? dir : ".") + "/tools/" + name;
}

/// Runs tool `name` with `args` (a shell word list), output discarded; its exit code, -1 when it
/// did not exit normally.
inline int run_tool(const std::string& name, const std::string& args) {
  const std::string cmd = tool_path(name) + " " + args + " > /dev/null 2>&1";
  const int status = std::system(cmd.c_str());  // NOLINT(cert-env33-c): test of a CLI program
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// True when the Fashion-MNIST training images are where models::fashion_mnist_dir() says.
inline bool have_fashion_mnist() {
  return std::filesystem::exists(models::fashion_mnist_dir() + "/train-images-idx3-ubyte.gz");
}

}  // namespace veil::testing
