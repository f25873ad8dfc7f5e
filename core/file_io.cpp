#include "core/file_io.h"

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <system_error>

#include <fmt/format.h>

#include "core/error.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace veil::core {

namespace {

// A temporary name next to `path` that no other writer (thread or process) picks.
std::string temp_name(const std::filesystem::path& path) {
  static std::atomic<uint64_t> counter{0};
  std::random_device rd;
  const uint64_t nonce = (uint64_t{rd()} << 32U) ^ rd() ^ counter.fetch_add(1);
  return (path.parent_path() /
          fmt::format(".{}.tmp-{}-{:016x}", path.filename().string(), ::getpid(), nonce))
      .string();
}

// 0 or the errno of the failed write.
int write_all(int fd, std::span<const std::byte> data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t w = ::write(fd, data.data() + done, data.size() - done);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno;
    }
    done += static_cast<std::size_t>(w);
  }
  return 0;
}

}  // namespace

void write_file_atomically(const std::string& path,
                           const std::vector<std::span<const std::byte>>& parts,
                           std::string_view op,
                           unsigned mode) {
  const std::filesystem::path target(path);
  const std::string tmp = temp_name(target);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                        static_cast<mode_t>(mode));
  if (fd < 0) {
    throw IoError(fmt::format("[{}] cannot create a temporary file next to '{}': {}", op, path,
                              std::strerror(errno)));
  }
  int err = 0;
  for (const auto& part : parts) {
    if (err == 0) {
      err = write_all(fd, part);
    }
  }
  if (err == 0 && ::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
    err = errno;
  }
  if (err == 0 && ::fsync(fd) != 0) {
    err = errno;
  }
  if (::close(fd) != 0 && err == 0) {
    err = errno;
  }
  std::error_code ignored;
  if (err != 0) {
    std::filesystem::remove(tmp, ignored);
    throw IoError(fmt::format("[{}] writing '{}' failed: {}", op, path, std::strerror(err)));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, target, ec);
  if (ec) {
    std::filesystem::remove(tmp, ignored);
    throw IoError(fmt::format("[{}] cannot rename '{}' to '{}': {}", op, tmp, path, ec.message()));
  }
  // make the rename itself durable (best effort: some file systems refuse to sync a directory)
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomically(const std::string& path,
                           std::string_view content,
                           std::string_view op,
                           unsigned mode) {
  write_file_atomically(path,
                        {std::span<const std::byte>(
                            reinterpret_cast<const std::byte*>(content.data()), content.size())},
                        op, mode);
}

}  // namespace veil::core
