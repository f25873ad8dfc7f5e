#include "crypto/fingerprint.h"

#include <sstream>

#include "core/error.h"
#include "core/version.h"
#include "crypto/party.h"

namespace veil::crypto {

std::string SetupFingerprint::serialize() const {
  std::string out;
  for (const auto& [k, v] : fields) {
    out += k;
    out += '=';
    out += v;
    out += '\n';
  }
  return out;
}

SetupFingerprint SetupFingerprint::parse(const std::string& text) {
  SetupFingerprint fp;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    VEIL_CHECK_WITH(ProtocolError, eq != std::string::npos && eq > 0,
                    "[setup] malformed fingerprint line ({} bytes)", line.size());
    fp.fields[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return fp;
}

SetupFingerprint dealer_fingerprint(int world_size) {
  SetupFingerprint fp;
  fp.fields["veil_version"] = kVersion;
  fp.fields["ring"] = "Z_2^64";
  fp.fields["world_size"] = std::to_string(world_size);
  fp.fields["provider"] = provider_name(ProviderKind::kDealer);
  fp.fields["protocols"] = kProtocolSuite;
  return fp;
}

SetupFingerprint party_fingerprint(const PartyOptions& options, int world_size) {
  SetupFingerprint fp = dealer_fingerprint(world_size);
  fp.fields["provider"] = provider_name(options.provider);
  fp.fields["frac_bits"] = std::to_string(options.frac_bits);
  fp.fields["program"] = options.program_id;
  fp.fields["deterministic_seeds"] = options.insecure_seed ? "yes" : "no";
  return fp;
}

std::vector<std::string> fingerprint_diff(const SetupFingerprint& mine,
                                          const SetupFingerprint& theirs,
                                          const std::string& who,
                                          bool only_mine_keys) {
  std::vector<std::string> out;
  auto value = [](const SetupFingerprint& f, const std::string& k) {
    const auto it = f.fields.find(k);
    return it == f.fields.end() ? std::string("(absent)") : "'" + it->second + "'";
  };
  std::map<std::string, bool> keys;
  for (const auto& kv : mine.fields) {
    keys[kv.first] = true;
  }
  if (!only_mine_keys) {
    for (const auto& kv : theirs.fields) {
      keys[kv.first] = true;
    }
  }
  for (const auto& kv : keys) {
    const std::string a = value(mine, kv.first);
    const std::string b = value(theirs, kv.first);
    if (a != b) {
      out.push_back(fmt::format("{}: {} here, {} at {}", kv.first, a, b, who));
    }
  }
  return out;
}

}  // namespace veil::crypto
