#include "kernels/cuda/dynlib.h"

#include <map>
#include <mutex>
#include <string>

#include <dlfcn.h>

namespace veil::kernels::cuda::detail {

#ifndef VEIL_CUDA_MAJOR
#define VEIL_CUDA_MAJOR 13
#endif

std::string versioned_soname(const char* base) {
  return std::string(base) + ".so." + std::to_string(VEIL_CUDA_MAJOR);
}

void* open_library(std::initializer_list<const char*> sonames, const char* what) {
  static std::mutex mu;
  static std::map<std::string, void*> opened;
  const std::lock_guard<std::mutex> lock(mu);
  std::string tried;
  std::string last_error;
  for (const char* name : sonames) {
    auto it = opened.find(name);
    if (it != opened.end()) {
      return it->second;
    }
    void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
#ifdef VEIL_CUDA_LIBDIR
    if (h == nullptr) {  // the toolkit this build was configured with (not always in ld.so.conf)
      h = dlopen((std::string(VEIL_CUDA_LIBDIR) + "/" + name).c_str(), RTLD_NOW | RTLD_LOCAL);
    }
#endif
    if (h != nullptr) {
      opened.emplace(name, h);
      return h;
    }
    const char* err = dlerror();
    last_error = err != nullptr ? err : "unknown dlopen error";
    tried += tried.empty() ? name : std::string(", ") + name;
  }
  throw CudaError(std::string("[cuda::") + what + "] cannot load " + tried + ": " + last_error +
                  " (is the CUDA toolkit's lib directory on LD_LIBRARY_PATH?)");
}

void* find_symbol(void* lib, const char* name, const char* what) {
  dlerror();
  void* p = dlsym(lib, name);
  if (p == nullptr) {
    throw CudaError(std::string("[cuda::") + what + "] symbol " + name +
                    " missing from its CUDA library");
  }
  return p;
}

}  // namespace veil::kernels::cuda::detail
