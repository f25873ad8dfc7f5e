#pragma once
// The message of the veil::Error a callable throws, for tests that check what an error says (and
// that it says nothing secret).

#include <functional>
#include <string>

#include "core/error.h"

namespace veil::testing {

/// fn()'s veil::Error message, or "(no exception)" when it returns normally. Other exception
/// types propagate (a test then fails on them).
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const veil::Error& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace veil::testing
