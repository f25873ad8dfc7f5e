#include "core/log.h"

#include <cstdio>
#include <mutex>

namespace veil::core {

namespace {
std::mutex& log_mutex() {
  static std::mutex mu;
  return mu;
}
void emit(std::string_view prefix, std::string_view msg) {
  std::lock_guard<std::mutex> lock(log_mutex());
  std::fprintf(stderr, "%.*s%.*s\n", static_cast<int>(prefix.size()), prefix.data(),
               static_cast<int>(msg.size()), msg.data());
  std::fflush(stderr);
}
}  // namespace

void log_warning(std::string_view msg) {
  emit("veil WARNING: ", msg);
}
void log_info(std::string_view msg) {
  emit("veil: ", msg);
}

}  // namespace veil::core
