// read_onnx / write_onnx in a build without libonnx (VEIL_WITH_ONNX=OFF, or AUTO without
// libonnx-dev): both throw NotCompiledError naming the CMake option. Everything else of the ONNX
// importer and exporter (models/onnx_import.cpp, models/onnx_export.cpp) is compiled either way.

#include <string>

#include "kernels/error.h"
#include "models/onnx_ir.h"

namespace veil::models {

namespace {

[[noreturn]] void not_compiled(const char* op) {
  throw NotCompiledError(std::string("[") + op +
                         "] veil was built without ONNX support: install libonnx-dev "
                         "(scripts/install_deps.sh) and configure with -DVEIL_WITH_ONNX=ON");
}

}  // namespace

bool onnx_available() {
  return false;
}

OnnxGraph read_onnx(const std::string& /*bytes*/, const std::string& /*source*/) {
  not_compiled("onnx_import");
}

std::string write_onnx(const OnnxGraph& /*graph*/) {
  not_compiled("export_onnx");
}

}  // namespace veil::models
