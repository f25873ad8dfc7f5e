#pragma once
// veil's version, as in the top-level CMakeLists.txt (checked by a test).

namespace veil {

inline constexpr const char* kVersion = "0.1.0";

}  // namespace veil
