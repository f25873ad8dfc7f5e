// Session configuration: parsing and validation of the JSON file and the environment variables.

#include "comm/config.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace veil::comm {
namespace {

using nlohmann::json;

constexpr int kMaxWorldSize = 1024;
constexpr std::array<std::string_view, 8> kKnownFields = {
    "world_size",         "parties",           "dealer", "tls_dir", "tls", "timeout_ms",
    "connect_timeout_ms", "insecure_plaintext"};

// "host:port", "[v6]:port". Returns an empty string when well-formed, else what is wrong.
std::string address_problem(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) {
    return "has no ':port'";
  }
  const std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.empty()) {
    return "has an empty host";
  }
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') {
      return "has a malformed [IPv6] host";
    }
    for (const char c : host.substr(1, host.size() - 2)) {
      const bool ok = std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == ':' || c == '.';
      if (!ok) {
        return "has a malformed [IPv6] host";
      }
    }
  } else {
    for (const char c : host) {
      const bool ok =
          std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' || c == '_';
      if (!ok) {
        return fmt::format("has an invalid character '{}' in the host (IPv6 needs [brackets])", c);
      }
    }
  }
  if (port.empty() || port.size() > 5) {
    return "needs a port in 1..65535";
  }
  int value = 0;
  for (const char c : port) {
    if (c < '0' || c > '9') {
      return "needs a port in 1..65535";
    }
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value > 65535) {
    return "needs a port in 1..65535";
  }
  return {};
}

// Parses a whole string as a decimal integer in [lo, hi]; nullopt when malformed or out of range.
std::optional<long long> parse_int(const std::string& text, long long lo, long long hi) {
  if (text.empty()) {
    return std::nullopt;
  }
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size() || value < lo || value > hi) {
    return std::nullopt;
  }
  // strtoll accepts leading whitespace and '+'; a configuration value should not have them.
  if (std::isspace(static_cast<unsigned char>(text.front())) != 0 || text.front() == '+') {
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> get_env(const char* name) {
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read at startup
  if (value == nullptr) {
    return std::nullopt;
  }
  return std::string(value);
}

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) {
    return {};
  }
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> items;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    items.push_back(trim(item));
  }
  if (!s.empty() && s.back() == ',') {
    items.emplace_back();
  }
  return items;
}

std::string json_type(const json& j) {
  return j.type_name();
}

// Resolves a path from the config file against the file's directory.
std::string resolve(const std::filesystem::path& base, const std::string& path) {
  if (path.empty() || std::filesystem::path(path).is_absolute()) {
    return path;
  }
  return (base / path).lexically_normal().string();
}

std::chrono::milliseconds json_timeout(const json& j,
                                       const char* field,
                                       const std::string& where,
                                       std::chrono::milliseconds fallback) {
  if (!j.contains(field)) {
    return fallback;
  }
  const json& v = j.at(field);
  if (!v.is_number_integer() || v.get<long long>() <= 0 ||
      v.get<long long>() > std::numeric_limits<int>::max()) {
    throw ValueError(
        fmt::format("[config] '{}' must be a positive integer (milliseconds), got {}{}", field,
                    v.dump(), where));
  }
  return std::chrono::milliseconds(v.get<long long>());
}

std::string json_string(const json& v, const std::string& field, const std::string& where) {
  if (!v.is_string()) {
    throw ValueError(fmt::format("[config] '{}' must be a string, got {} {}{}", field, json_type(v),
                                 v.dump(), where));
  }
  return v.get<std::string>();
}

std::chrono::milliseconds env_timeout(const char* name, std::chrono::milliseconds fallback) {
  const auto text = get_env(name);
  if (!text) {
    return fallback;
  }
  const auto value = parse_int(*text, 1, std::numeric_limits<int>::max());
  if (!value) {
    throw ValueError(fmt::format("[config] {} must be a positive integer (milliseconds), got '{}'",
                                 name, *text));
  }
  return std::chrono::milliseconds(*value);
}

bool env_flag(const char* name) {
  const auto text = get_env(name);
  if (!text) {
    return false;
  }
  std::string v = trim(*text);
  for (char& c : v) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (v == "1" || v == "true" || v == "yes" || v == "on") {
    return true;
  }
  if (v.empty() || v == "0" || v == "false" || v == "no" || v == "off") {
    return false;
  }
  throw ValueError(fmt::format("[config] {} must be 1/0 (or true/false), got '{}'", name, *text));
}

}  // namespace

void SessionConfig::validate() const {
  VEIL_CHECK(world_size >= 2 && world_size <= kMaxWorldSize,
             "[config] world_size must be in 2..{}, got {}", kMaxWorldSize, world_size);
  VEIL_CHECK(parties.size() == static_cast<size_t>(world_size),
             "[config] 'parties' must list world_size ({}) addresses, got {}", world_size,
             parties.size());
  std::set<std::string> seen;
  const auto check_address = [&seen](const std::string& address, const std::string& who) {
    const std::string problem = address_problem(address);
    VEIL_CHECK(problem.empty(), "[config] {} address '{}' {} (expected host:port)", who, address,
               problem);
    VEIL_CHECK(seen.insert(address).second, "[config] {} address '{}' is used twice", who, address);
  };
  for (size_t i = 0; i < parties.size(); ++i) {
    check_address(parties[i], fmt::format("party {}", i));
  }
  if (dealer) {
    check_address(*dealer, "dealer");
  }
  VEIL_CHECK(timeout.count() > 0, "[config] timeout must be positive, got {} ms", timeout.count());
  VEIL_CHECK(connect_timeout.count() > 0, "[config] connect_timeout must be positive, got {} ms",
             connect_timeout.count());
  if (!insecure_plaintext) {
    VEIL_CHECK(!tls_dir.empty() || tls.has_value(),
               "[config] 'tls_dir' (or 'tls') is required unless insecure_plaintext is set");
    if (tls) {
      VEIL_CHECK(!tls->ca_cert.empty() && !tls->cert.empty() && !tls->key.empty(),
                 "[config] 'tls' must name ca_cert, cert and key");
    }
  }
}

SessionConfig SessionConfig::from_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw IoError(fmt::format("[config] cannot read config file '{}'", path));
  }
  json j;
  try {
    j = json::parse(in, nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    throw ValueError(fmt::format("[config] '{}' is not valid JSON: {}", path, e.what()));
  }
  const std::string where = fmt::format(" (in '{}')", path);
  if (!j.is_object()) {
    throw ValueError(
        fmt::format("[config] the top level must be a JSON object, got {}{}", json_type(j), where));
  }
  for (const auto& item : j.items()) {
    if (std::find(kKnownFields.begin(), kKnownFields.end(), item.key()) == kKnownFields.end()) {
      throw ValueError(fmt::format("[config] unknown field '{}'{}", item.key(), where));
    }
  }
  const std::filesystem::path base = std::filesystem::path(path).parent_path();

  SessionConfig config;
  if (!j.contains("world_size")) {
    throw ValueError(fmt::format("[config] missing field 'world_size'{}", where));
  }
  const json& ws = j.at("world_size");
  if (!ws.is_number_integer() || ws.get<long long>() < 2 || ws.get<long long>() > kMaxWorldSize) {
    throw ValueError(fmt::format("[config] 'world_size' must be an integer in 2..{}, got {}{}",
                                 kMaxWorldSize, ws.dump(), where));
  }
  config.world_size = ws.get<int>();

  if (!j.contains("parties")) {
    throw ValueError(fmt::format("[config] missing field 'parties'{}", where));
  }
  const json& parties = j.at("parties");
  if (!parties.is_array()) {
    throw ValueError(fmt::format("[config] 'parties' must be an array of \"host:port\", got {}{}",
                                 json_type(parties), where));
  }
  for (size_t i = 0; i < parties.size(); ++i) {
    config.parties.push_back(json_string(parties[i], fmt::format("parties[{}]", i), where));
  }
  if (j.contains("dealer") && !j.at("dealer").is_null()) {
    config.dealer = json_string(j.at("dealer"), "dealer", where);
  }
  if (j.contains("tls_dir")) {
    config.tls_dir = resolve(base, json_string(j.at("tls_dir"), "tls_dir", where));
  }
  if (j.contains("tls")) {
    const json& t = j.at("tls");
    if (!t.is_object()) {
      throw ValueError(
          fmt::format("[config] 'tls' must be an object {{ca_cert, cert, key}}, got {}{}",
                      json_type(t), where));
    }
    TlsFiles files;
    for (const auto& item : t.items()) {
      const std::string field = "tls." + item.key();
      if (item.key() == "ca_cert") {
        files.ca_cert = resolve(base, json_string(item.value(), field, where));
      } else if (item.key() == "cert") {
        files.cert = resolve(base, json_string(item.value(), field, where));
      } else if (item.key() == "key") {
        files.key = resolve(base, json_string(item.value(), field, where));
      } else {
        throw ValueError(fmt::format("[config] unknown field '{}'{}", field, where));
      }
    }
    for (const auto& [name, value] :
         {std::pair{"ca_cert", &files.ca_cert}, {"cert", &files.cert}, {"key", &files.key}}) {
      if (value->empty()) {
        throw ValueError(fmt::format("[config] missing field 'tls.{}'{}", name, where));
      }
    }
    config.tls = files;
  }
  if (!config.tls_dir.empty() && config.tls) {
    throw ValueError(fmt::format("[config] give 'tls_dir' or 'tls', not both{}", where));
  }
  config.timeout = json_timeout(j, "timeout_ms", where, config.timeout);
  config.connect_timeout = json_timeout(j, "connect_timeout_ms", where, config.connect_timeout);
  if (j.contains("insecure_plaintext")) {
    const json& v = j.at("insecure_plaintext");
    if (!v.is_boolean()) {
      throw ValueError(fmt::format("[config] 'insecure_plaintext' must be true or false, got {}{}",
                                   v.dump(), where));
    }
    config.insecure_plaintext = v.get<bool>();
  }
  try {
    config.validate();
  } catch (const ValueError& e) {
    throw ValueError(e.what() + where);
  }
  return config;
}

SessionConfig SessionConfig::from_env() {
  if (const auto file = get_env("VEIL_CONFIG"); file && !file->empty()) {
    return from_json_file(*file);
  }
  SessionConfig config;
  const auto peers = get_env("VEIL_PEERS");
  if (!peers || trim(*peers).empty()) {
    throw ValueError(
        "[config] VEIL_PEERS is not set: expected \"host:port,host:port,...\" (one per party), "
        "or VEIL_CONFIG naming a JSON file");
  }
  config.parties = split_list(trim(*peers));
  if (const auto ws = get_env("WORLD_SIZE")) {
    const auto value = parse_int(trim(*ws), 2, kMaxWorldSize);
    if (!value) {
      throw ValueError(fmt::format("[config] WORLD_SIZE must be an integer in 2..{}, got '{}'",
                                   kMaxWorldSize, *ws));
    }
    config.world_size = static_cast<int>(*value);
    if (config.parties.size() != static_cast<size_t>(config.world_size)) {
      throw ValueError(
          fmt::format("[config] VEIL_PEERS must list WORLD_SIZE ({}) addresses, got {}",
                      config.world_size, config.parties.size()));
    }
  } else {
    config.world_size = static_cast<int>(config.parties.size());
  }
  if (const auto dealer = get_env("VEIL_DEALER"); dealer && !trim(*dealer).empty()) {
    config.dealer = trim(*dealer);
  }
  if (const auto dir = get_env("VEIL_TLS_DIR")) {
    config.tls_dir = *dir;
  }
  config.timeout = env_timeout("VEIL_TIMEOUT_MS", config.timeout);
  config.connect_timeout = env_timeout("VEIL_CONNECT_TIMEOUT_MS", config.connect_timeout);
  config.insecure_plaintext = env_flag("VEIL_INSECURE_PLAINTEXT");
  try {
    config.validate();
  } catch (const ValueError& e) {
    throw ValueError(std::string(e.what()) +
                     " (from the environment: WORLD_SIZE, VEIL_PEERS, "
                     "VEIL_DEALER, VEIL_TLS_DIR)");
  }
  if (const auto rank = rank_from_env()) {
    const int last = config.dealer ? config.world_size : config.world_size - 1;
    VEIL_CHECK(*rank <= last, "[config] RANK must be in 0..{}{}, got {}", last,
               config.dealer ? " (the dealer is WORLD_SIZE)" : "", *rank);
  }
  return config;
}

GrpcOptions SessionConfig::grpc_options(int rank) const {
  validate();
  const int last = dealer ? world_size : world_size - 1;
  VEIL_CHECK(rank >= 0 && rank <= last, "[config] rank must be in 0..{}{}, got {}", last,
             dealer ? " (the dealer is world_size)" : " (no dealer is configured)", rank);
  GrpcOptions options;
  options.rank = rank;
  options.world_size = world_size;
  options.has_dealer = dealer.has_value();
  options.addresses = parties;
  if (dealer) {
    options.addresses.push_back(*dealer);
  }
  options.insecure_plaintext = insecure_plaintext;
  if (!insecure_plaintext) {
    options.tls = tls ? *tls : tls_files_in(tls_dir, rank, world_size);
  }
  options.connect_timeout = connect_timeout;
  options.timeout = timeout;
  return options;
}

std::optional<int> rank_from_env() {
  const auto text = get_env("RANK");
  if (!text || trim(*text).empty()) {
    return std::nullopt;
  }
  const auto value = parse_int(trim(*text), 0, kMaxWorldSize);
  if (!value) {
    throw ValueError(fmt::format("[config] RANK must be a non-negative integer (0..{}), got '{}'",
                                 kMaxWorldSize, *text));
  }
  return static_cast<int>(*value);
}

}  // namespace veil::comm
