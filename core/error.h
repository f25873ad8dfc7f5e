#pragma once
// veil's exception hierarchy and the checking macros. Messages: "[op] expected ..., got ...".
// Never format secret values or shares into a message: shapes, dtypes, tags and ranks only.

#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "kernels/error.h"

namespace veil {

/// A user-supplied value is invalid (shape mismatch, wrong dtype, NaN to encode, out of range).
class ValueError : public Error {
 public:
  explicit ValueError(const std::string& what) : Error(what) {}
};

/// The operation exists in the API but is not supported for this input combination yet.
class NotImplementedError : public Error {
 public:
  explicit NotImplementedError(const std::string& what) : Error(what) {}
};

/// Transport failure: a peer aborted, disconnected, or did not answer within the timeout.
class CommError : public Error {
 public:
  explicit CommError(const std::string& what) : Error(what) {}
};

/// Parties disagree on the protocol: wrong tag, wrong message size, unexpected message.
class ProtocolError : public Error {
 public:
  explicit ProtocolError(const std::string& what) : Error(what) {}
};

/// A file or dataset could not be read or written.
class IoError : public Error {
 public:
  explicit IoError(const std::string& what) : Error(what) {}
};

/// An internal invariant of veil itself was violated (a bug in veil, not in the caller's input).
class InternalError : public Error {
 public:
  explicit InternalError(const std::string& what) : Error(what) {}
};

}  // namespace veil

/// Throws ValueError with a formatted message when `cond` is false. Use for user input.
#define VEIL_CHECK(cond, ...)                               \
  do {                                                      \
    if (!(cond)) {                                          \
      throw ::veil::ValueError(::fmt::format(__VA_ARGS__)); \
    }                                                       \
  } while (false)

/// Throws the given exception type with a formatted message when `cond` is false.
#define VEIL_CHECK_WITH(ExcType, cond, ...)      \
  do {                                           \
    if (!(cond)) {                               \
      throw ExcType(::fmt::format(__VA_ARGS__)); \
    }                                            \
  } while (false)

/// Throws InternalError when an invariant of veil's own code does not hold.
#define VEIL_INTERNAL_ASSERT(cond, ...)                                                            \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      throw ::veil::InternalError(::fmt::format("internal error at {}:{}: {}", __FILE__, __LINE__, \
                                                ::fmt::format(__VA_ARGS__)));                      \
    }                                                                                              \
  } while (false)
