#pragma once
// A fresh private directory for one test's files (mkdtemp), removed with its contents when the
// object goes out of scope.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include <catch2/catch.hpp>

#include <sys/stat.h>

namespace veil::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "veil_test") {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "_XXXXXX")).string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// The path of `name` inside the directory.
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  /// Writes `text` to `name` and returns its path.
  std::string write(const std::string& name, const std::string& text) const {
    const std::string p = file(name);
    std::ofstream(p) << text;
    return p;
  }
  /// Writes an executable shell script and returns its path.
  std::string script(const std::string& name, const std::string& body) const {
    const std::string p = write(name, body);
    chmod(p.c_str(), 0700);
    return p;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace veil::testing
