#pragma once
// Minimal logging to stderr (one line per call, thread-safe). Never log secret values or shares.

#include <string_view>

namespace veil::core {

/// Prints "veil WARNING: <msg>" to stderr.
void log_warning(std::string_view msg);
/// Prints "veil: <msg>" to stderr.
void log_info(std::string_view msg);

}  // namespace veil::core
