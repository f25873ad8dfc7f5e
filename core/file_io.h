#pragma once
// Writing files so that nothing is lost: a reader (or a crash) sees either the old file or the
// complete new one, never a partial one. One implementation for every file veil writes
// (safetensors, ONNX, IDX, keys and certificates, metrics).

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace veil::core {

/// Writes the concatenation of `parts` to `path` atomically: a fresh temporary file next to it
/// (O_CREAT | O_EXCL | O_NOFOLLOW: never an existing file or a planted symlink; created with
/// `mode`, e.g. 0600 for keys and shares, then fchmod'ed so the umask cannot narrow it), written,
/// fsync'ed, renamed over `path`, and the directory fsync'ed (best effort). The temporary file is
/// removed on failure. `op` prefixes error messages ("[op] ..."). Throws IoError naming the path
/// and the system's reason when any step fails.
void write_file_atomically(const std::string& path,
                           const std::vector<std::span<const std::byte>>& parts,
                           std::string_view op,
                           unsigned mode = 0644);

/// The same for one string of bytes.
void write_file_atomically(const std::string& path,
                           std::string_view content,
                           std::string_view op,
                           unsigned mode = 0644);

}  // namespace veil::core
