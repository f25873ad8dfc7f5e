// Session configuration: the JSON file, the environment variables, and the transport options they
// produce. Environment tests run on the main thread only (setenv is not thread-safe).

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "comm/config.h"
#include "core/error.h"
#include "tests/harness/errors.h"
#include "tests/harness/temp_dir.h"

#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using veil::comm::SessionConfig;

using veil::testing::TempDir;

using Vars = std::map<std::string, std::string>;

// Sets the given variables for the scope (main thread only: setenv is not thread-safe) and restores
// the previous values afterwards. Every variable config.h reads is cleared first, so the caller's
// environment does not leak in.
class EnvGuard {
 public:
  explicit EnvGuard(const Vars& vars) {
    for (const char* name :
         {"VEIL_CONFIG", "RANK", "WORLD_SIZE", "VEIL_PEERS", "VEIL_DEALER", "VEIL_TLS_DIR",
          "VEIL_TIMEOUT_MS", "VEIL_CONNECT_TIMEOUT_MS", "VEIL_INSECURE_PLAINTEXT"}) {
      const char* old = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
      saved_[name] = old != nullptr ? std::optional<std::string>(old) : std::nullopt;
      unsetenv(name);  // NOLINT(concurrency-mt-unsafe)
    }
    for (const auto& [name, value] : vars) {
      setenv(name.c_str(), value.c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
    }
  }
  ~EnvGuard() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
      } else {
        unsetenv(name.c_str());  // NOLINT(concurrency-mt-unsafe)
      }
    }
  }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

using veil::testing::error_of;

}  // namespace

TEST_CASE("config: a complete JSON file", "[comm][config]") {
  TempDir dir("veil_test_config");
  // GIVEN a file with every field, a relative tls_dir and a comment
  const std::string path = dir.write("session.json", R"({
    // three parties and a dealer
    "world_size": 3,
    "parties": ["10.0.0.1:50051", "node-b.example.org:50052", "[::1]:50053"],
    "dealer": "10.0.0.9:6000",
    "tls_dir": "tls",
    "timeout_ms": 1234,
    "connect_timeout_ms": 567,
    "insecure_plaintext": false
  })");
  // WHEN it is parsed
  const SessionConfig c = SessionConfig::from_json_file(path);
  // THEN every field is taken, the relative path resolved against the file's directory
  CHECK(c.world_size == 3);
  REQUIRE(c.parties.size() == 3);
  CHECK(c.parties[1] == "node-b.example.org:50052");
  CHECK(c.parties[2] == "[::1]:50053");
  REQUIRE(c.dealer.has_value());
  CHECK(*c.dealer == "10.0.0.9:6000");
  CHECK(c.tls_dir == (dir.path() / "tls").string());
  CHECK(c.timeout.count() == 1234);
  CHECK(c.connect_timeout.count() == 567);
  CHECK_FALSE(c.insecure_plaintext);
}

TEST_CASE("config: defaults and no dealer", "[comm][config]") {
  TempDir dir("veil_test_config");
  const std::string path = dir.write(
      "s.json", R"({"world_size": 2, "parties": ["a:1", "b:2"], "insecure_plaintext": true})");
  const SessionConfig c = SessionConfig::from_json_file(path);
  CHECK_FALSE(c.dealer.has_value());
  CHECK(c.timeout.count() == 60000);
  CHECK(c.connect_timeout.count() == 30000);
  CHECK(c.insecure_plaintext);
  CHECK(c.tls_dir.empty());
}

TEST_CASE("config: bad JSON files name the field", "[comm][config]") {
  TempDir dir("veil_test_config");
  const auto parse_error = [&dir](const std::string& text) {
    const std::string path = dir.write("bad.json", text);
    return error_of([&path] { SessionConfig::from_json_file(path); });
  };
  const std::string tls = R"("tls_dir": "/t")";
  // wrong number of parties
  CHECK_THAT(parse_error(R"({"world_size": 3, "parties": ["a:1", "b:2"], )" + tls + "}"),
             Catch::Contains("[config] 'parties' must list world_size (3) addresses, got 2"));
  // missing fields
  CHECK_THAT(parse_error(R"({"parties": ["a:1", "b:2"], )" + tls + "}"),
             Catch::Contains("missing field 'world_size'"));
  CHECK_THAT(parse_error(R"({"world_size": 2, )" + tls + "}"),
             Catch::Contains("missing field 'parties'"));
  // world_size out of range or of the wrong type
  CHECK_THAT(parse_error(R"({"world_size": 1, "parties": ["a:1"], )" + tls + "}"),
             Catch::Contains("'world_size' must be an integer in 2.."));
  CHECK_THAT(parse_error(R"({"world_size": "2", "parties": ["a:1", "b:2"], )" + tls + "}"),
             Catch::Contains("'world_size'"));
  // malformed addresses
  CHECK_THAT(parse_error(R"({"world_size": 2, "parties": ["a:1", "b"], )" + tls + "}"),
             Catch::Contains("party 1 address 'b' has no ':port'"));
  CHECK_THAT(parse_error(R"({"world_size": 2, "parties": ["a:1", "b:70000"], )" + tls + "}"),
             Catch::Contains("party 1 address 'b:70000' needs a port in 1..65535"));
  CHECK_THAT(parse_error(R"({"world_size": 2, "parties": ["a:0", "b:2"], )" + tls + "}"),
             Catch::Contains("party 0 address 'a:0' needs a port in 1..65535"));
  CHECK_THAT(parse_error(R"({"world_size": 2, "parties": [":1", "b:2"], )" + tls + "}"),
             Catch::Contains("empty host"));
  CHECK_THAT(parse_error(R"({"world_size": 2, "parties": ["a:1", 5], )" + tls + "}"),
             Catch::Contains("'parties[1]' must be a string"));
  // duplicates, including the dealer
  CHECK_THAT(parse_error(R"({"world_size": 2, "parties": ["a:1", "a:1"], )" + tls + "}"),
             Catch::Contains("party 1 address 'a:1' is used twice"));
  CHECK_THAT(
      parse_error(R"({"world_size": 2, "parties": ["a:1", "b:2"], "dealer": "b:2", )" + tls + "}"),
      Catch::Contains("dealer address 'b:2' is used twice"));
  // timeouts, flags, TLS
  CHECK_THAT(
      parse_error(R"({"world_size": 2, "parties": ["a:1", "b:2"], "timeout_ms": 0, )" + tls + "}"),
      Catch::Contains("'timeout_ms' must be a positive integer"));
  CHECK_THAT(
      parse_error(R"({"world_size": 2, "parties": ["a:1", "b:2"], "insecure_plaintext": 1})"),
      Catch::Contains("'insecure_plaintext' must be true or false"));
  CHECK_THAT(parse_error(R"({"world_size": 2, "parties": ["a:1", "b:2"]})"),
             Catch::Contains("'tls_dir' (or 'tls') is required unless insecure_plaintext"));
  CHECK_THAT(
      parse_error(R"({"world_size": 2, "parties": ["a:1", "b:2"], "tls": {"ca_cert": "ca.pem"}})"),
      Catch::Contains("missing field 'tls.cert'"));
  // typos and syntax
  CHECK_THAT(parse_error(R"({"world_size": 2, "parties": ["a:1", "b:2"], "timout_ms": 5})"),
             Catch::Contains("unknown field 'timout_ms'"));
  CHECK_THAT(parse_error(R"({"world_size": 2,)"), Catch::Contains("is not valid JSON"));
  CHECK_THAT(parse_error("[1, 2]"), Catch::Contains("top level must be a JSON object"));
  // every message names the file
  CHECK_THAT(parse_error(R"({"world_size": 2, "parties": ["a:1"], )" + tls + "}"),
             Catch::Contains("bad.json"));
}

TEST_CASE("config: an unreadable file is an IoError", "[comm][config]") {
  CHECK_THROWS_AS(SessionConfig::from_json_file("/nonexistent/veil/session.json"), veil::IoError);
  CHECK_THROWS_AS(SessionConfig::from_json_file("/nonexistent/veil/session.json"), veil::Error);
}

TEST_CASE("config: per-endpoint tls files from JSON", "[comm][config]") {
  TempDir dir("veil_test_config");
  const std::string path = dir.write("s.json", R"({"world_size": 2, "parties": ["a:1", "b:2"],
      "tls": {"ca_cert": "ca.pem", "cert": "/etc/me.pem", "key": "me.key"}})");
  const SessionConfig c = SessionConfig::from_json_file(path);
  const auto o = c.grpc_options(1);
  REQUIRE(o.tls.has_value());
  CHECK(o.tls->ca_cert == (dir.path() / "ca.pem").string());
  CHECK(o.tls->cert == "/etc/me.pem");
  CHECK(o.tls->key == (dir.path() / "me.key").string());
}

TEST_CASE("config: grpc_options for parties and the dealer", "[comm][config]") {
  SessionConfig c;
  c.world_size = 2;
  c.parties = {"127.0.0.1:5000", "127.0.0.1:5001"};
  c.dealer = "127.0.0.1:5002";
  c.tls_dir = "/pki";
  c.timeout = std::chrono::milliseconds(111);
  c.connect_timeout = std::chrono::milliseconds(222);

  // GIVEN party 1
  const auto p = c.grpc_options(1);
  CHECK(p.rank == 1);
  CHECK(p.world_size == 2);
  CHECK(p.has_dealer);
  CHECK(p.addresses ==
        std::vector<std::string>{"127.0.0.1:5000", "127.0.0.1:5001", "127.0.0.1:5002"});
  CHECK_FALSE(p.insecure_plaintext);
  REQUIRE(p.tls.has_value());
  const auto files = veil::comm::tls_files_in("/pki", 1, 2);
  CHECK(p.tls->ca_cert == files.ca_cert);
  CHECK(p.tls->cert == files.cert);
  CHECK(p.tls->key == files.key);
  CHECK(p.timeout.count() == 111);
  CHECK(p.connect_timeout.count() == 222);

  // AND the dealer (rank == world_size) gets its own files
  const auto d = c.grpc_options(2);
  REQUIRE(d.tls.has_value());
  CHECK(d.tls->cert == veil::comm::tls_files_in("/pki", 2, 2).cert);

  // out-of-range ranks are refused
  CHECK_THROWS_AS(c.grpc_options(3), veil::ValueError);
  CHECK_THROWS_AS(c.grpc_options(-1), veil::ValueError);

  // without a dealer, rank world_size is refused and the address list has only parties
  c.dealer.reset();
  CHECK_THROWS_WITH(c.grpc_options(2), Catch::Contains("no dealer"));
  const auto q = c.grpc_options(0);
  CHECK_FALSE(q.has_dealer);
  CHECK(q.addresses.size() == 2);

  // plaintext: no TLS files
  c.insecure_plaintext = true;
  c.tls_dir.clear();
  const auto r = c.grpc_options(0);
  CHECK(r.insecure_plaintext);
  CHECK_FALSE(r.tls.has_value());
}

TEST_CASE("config: from the environment", "[comm][config]") {
  SECTION("every variable") {
    EnvGuard env({{"RANK", "2"},
                  {"WORLD_SIZE", "3"},
                  {"VEIL_PEERS", "127.0.0.1:7000, 127.0.0.1:7001,127.0.0.1:7002"},
                  {"VEIL_DEALER", "127.0.0.1:7003"},
                  {"VEIL_TLS_DIR", "/pki"},
                  {"VEIL_TIMEOUT_MS", "4000"},
                  {"VEIL_CONNECT_TIMEOUT_MS", "3000"}});
    const SessionConfig c = SessionConfig::from_env();
    CHECK(c.world_size == 3);
    CHECK(c.parties ==
          std::vector<std::string>{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"});
    CHECK(c.dealer == std::optional<std::string>("127.0.0.1:7003"));
    CHECK(c.tls_dir == "/pki");
    CHECK(c.timeout.count() == 4000);
    CHECK(c.connect_timeout.count() == 3000);
    CHECK_FALSE(c.insecure_plaintext);
    CHECK(veil::comm::rank_from_env() == std::optional<int>(2));
  }
  SECTION("WORLD_SIZE may be left out; plaintext flag") {
    EnvGuard env({{"VEIL_PEERS", "h1:1,h2:2"}, {"VEIL_INSECURE_PLAINTEXT", "1"}});
    const SessionConfig c = SessionConfig::from_env();
    CHECK(c.world_size == 2);
    CHECK(c.insecure_plaintext);
    CHECK_FALSE(c.dealer.has_value());
    CHECK_FALSE(veil::comm::rank_from_env().has_value());
  }
  SECTION("VEIL_CONFIG wins over the other variables") {
    TempDir dir("veil_test_config");
    const std::string path = dir.write(
        "s.json", R"({"world_size": 2, "parties": ["x:1", "y:2"], "insecure_plaintext": true})");
    EnvGuard env({{"VEIL_CONFIG", path}, {"VEIL_PEERS", "h1:1,h2:2,h3:3"}, {"WORLD_SIZE", "3"}});
    const SessionConfig c = SessionConfig::from_env();
    CHECK(c.parties == std::vector<std::string>{"x:1", "y:2"});
  }
  SECTION("errors name the variable") {
    {
      EnvGuard env({});
      CHECK_THROWS_WITH(SessionConfig::from_env(), Catch::Contains("VEIL_PEERS is not set"));
    }
    {
      EnvGuard env({{"VEIL_PEERS", "h1:1,h2:2"}, {"WORLD_SIZE", "3"}, {"VEIL_TLS_DIR", "/p"}});
      CHECK_THROWS_WITH(SessionConfig::from_env(),
                        Catch::Contains("VEIL_PEERS must list WORLD_SIZE (3) addresses, got 2"));
    }
    {
      EnvGuard env({{"VEIL_PEERS", "h1:1,h2:2"}, {"WORLD_SIZE", "two"}, {"VEIL_TLS_DIR", "/p"}});
      CHECK_THROWS_WITH(SessionConfig::from_env(), Catch::Contains("WORLD_SIZE must be"));
    }
    {
      EnvGuard env(
          {{"VEIL_PEERS", "h1:1,h2:2"}, {"VEIL_TLS_DIR", "/p"}, {"VEIL_TIMEOUT_MS", "-5"}});
      CHECK_THROWS_WITH(SessionConfig::from_env(), Catch::Contains("VEIL_TIMEOUT_MS"));
    }
    {
      EnvGuard env({{"VEIL_PEERS", "h1:1,h2:2"}, {"VEIL_INSECURE_PLAINTEXT", "maybe"}});
      CHECK_THROWS_WITH(SessionConfig::from_env(), Catch::Contains("VEIL_INSECURE_PLAINTEXT"));
    }
    {
      EnvGuard env({{"VEIL_PEERS", "h1:1,h2"}, {"VEIL_TLS_DIR", "/p"}});
      CHECK_THROWS_WITH(SessionConfig::from_env(), Catch::Contains("party 1 address 'h2'"));
    }
    {
      EnvGuard env({{"VEIL_PEERS", "h1:1,h2:2"}, {"VEIL_TLS_DIR", "/p"}, {"RANK", "2"}});
      CHECK_THROWS_WITH(SessionConfig::from_env(), Catch::Contains("RANK must be in 0..1"));
    }
    {
      EnvGuard env(Vars{{"RANK", "x1"}});
      CHECK_THROWS_WITH(veil::comm::rank_from_env(), Catch::Contains("RANK must be"));
    }
    {
      EnvGuard env(Vars{{"RANK", "-1"}});
      CHECK_THROWS_AS(veil::comm::rank_from_env(), veil::ValueError);
    }
    {
      EnvGuard env(Vars{{"VEIL_CONFIG", "/nonexistent/veil.json"}});
      CHECK_THROWS_AS(SessionConfig::from_env(), veil::IoError);
    }
  }
}
