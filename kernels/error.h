#pragma once
// The root of veil's exception hierarchy. It lives in kernels/ (the bottom layer) so that kernel
// stubs can throw NotCompiledError; core/error.h adds the rest of the hierarchy.

#include <stdexcept>
#include <string>

namespace veil {

/// Base class of every exception veil throws. Messages have the form "[op] expected ..., got ...".
/// They never contain secret values or shares (shapes, tags and ranks only).
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// A backend or feature that this build does not contain (e.g. CUDA kernels with
/// VEIL_WITH_CUDA=OFF). The message names the CMake option that enables it.
class NotCompiledError : public Error {
 public:
  explicit NotCompiledError(const std::string& what) : Error(what) {}
};

}  // namespace veil
