#include "crypto/session_state.h"

#include <charconv>

#include <fmt/format.h>

#include "core/error.h"
#include "crypto/digest.h"

namespace veil::crypto {

namespace {

const std::string& field(const std::map<std::string, std::string>& fields, const std::string& k) {
  const auto it = fields.find(k);
  VEIL_CHECK(it != fields.end(), "[SessionState] expected the field '{}', which is missing", k);
  return it->second;
}

uint64_t parse_u64(const std::map<std::string, std::string>& fields, const std::string& k) {
  const std::string& s = field(fields, k);
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  VEIL_CHECK(ec == std::errc() && end == s.data() + s.size() && !s.empty(),
             "[SessionState] expected a decimal unsigned integer in field '{}'", k);
  return v;
}

int parse_int(const std::map<std::string, std::string>& fields, const std::string& k) {
  const uint64_t v = parse_u64(fields, k);
  VEIL_CHECK(v <= 1u << 30, "[SessionState] field '{}' is out of range", k);
  return static_cast<int>(v);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  return -1;
}

Prg::Seed parse_key(const std::map<std::string, std::string>& fields, const std::string& k) {
  const std::string& s = field(fields, k);
  Prg::Seed key{};
  VEIL_CHECK(s.size() == 2 * key.size(),
             "[SessionState] expected {} lower-case hex digits in field '{}', got {} characters",
             2 * key.size(), k, s.size());
  for (std::size_t i = 0; i < key.size(); ++i) {
    const int hi = hex_digit(s[2 * i]);
    const int lo = hex_digit(s[2 * i + 1]);
    VEIL_CHECK(hi >= 0 && lo >= 0, "[SessionState] expected lower-case hex digits in field '{}'",
               k);
    key[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return key;
}

constexpr const char* kStreams[] = {"own", "next", "prev", "common", "dealer"};

template <class State>
auto* stream(State& s, std::size_t i) {
  decltype(&s.own) all[] = {&s.own, &s.next, &s.prev, &s.common, &s.dealer};
  return all[i];
}

}  // namespace

std::string SessionState::resume_point() const {
  return fmt::format("{}@{}/{}", run_id, op_counter, common.position);
}

std::map<std::string, std::string> SessionState::to_fields() const {
  std::map<std::string, std::string> f;
  f["format"] = std::to_string(kFormatVersion);
  f["rank"] = std::to_string(rank);
  f["world_size"] = std::to_string(world_size);
  f["frac_bits"] = std::to_string(frac_bits);
  f["provider"] = provider_name(provider);
  f["run_id"] = run_id;
  f["op_counter"] = std::to_string(op_counter);
  f["node_counter"] = std::to_string(node_counter);
  for (std::size_t i = 0; i < std::size(kStreams); ++i) {
    const PrgState& s = *stream(*this, i);
    f[std::string(kStreams[i]) + ".key"] = to_hex(s.key);
    f[std::string(kStreams[i]) + ".position"] = std::to_string(s.position);
  }
  return f;
}

SessionState SessionState::from_fields(const std::map<std::string, std::string>& fields) {
  const uint64_t format = parse_u64(fields, "format");
  VEIL_CHECK(format == kFormatVersion,
             "[SessionState] expected format version {}, got {} (written by another veil version)",
             kFormatVersion, format);
  SessionState s;
  s.rank = parse_int(fields, "rank");
  s.world_size = parse_int(fields, "world_size");
  s.frac_bits = parse_int(fields, "frac_bits");
  s.provider = parse_provider(field(fields, "provider"));
  s.run_id = field(fields, "run_id");
  VEIL_CHECK(s.run_id.size() == 16, "[SessionState] expected a 16-digit run_id, got {} characters",
             s.run_id.size());
  s.op_counter = parse_u64(fields, "op_counter");
  s.node_counter = parse_u64(fields, "node_counter");
  for (std::size_t i = 0; i < std::size(kStreams); ++i) {
    PrgState& st = *stream(s, i);
    st.key = parse_key(fields, std::string(kStreams[i]) + ".key");
    st.position = parse_u64(fields, std::string(kStreams[i]) + ".position");
  }
  return s;
}

std::vector<std::string> SessionState::mismatches(int expected_rank,
                                                  int expected_world_size,
                                                  int expected_frac_bits,
                                                  ProviderKind expected_provider) const {
  std::vector<std::string> out;
  if (rank != expected_rank) {
    out.push_back(fmt::format("rank: {} in the state, {} expected", rank, expected_rank));
  }
  if (world_size != expected_world_size) {
    out.push_back(
        fmt::format("world_size: {} in the state, {} expected", world_size, expected_world_size));
  }
  if (frac_bits != expected_frac_bits) {
    out.push_back(
        fmt::format("frac_bits: {} in the state, {} expected", frac_bits, expected_frac_bits));
  }
  if (provider != expected_provider) {
    out.push_back(fmt::format("provider: '{}' in the state, '{}' expected", provider_name(provider),
                              provider_name(expected_provider)));
  }
  return out;
}

void secure_wipe(SessionState& state) {
  for (std::size_t i = 0; i < std::size(kStreams); ++i) {
    secure_wipe(std::span<uint8_t>(stream(state, i)->key));
  }
}

std::string run_id_for(const Prg::Seed& common_key) {
  Sha256 h;
  h.update("veil-run-id");
  h.update(std::as_bytes(std::span<const uint8_t>(common_key)));
  const Sha256::Digest d = h.digest();
  return to_hex(std::span<const uint8_t>(d.data(), 8));
}

}  // namespace veil::crypto
