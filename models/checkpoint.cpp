#include "models/checkpoint.h"

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/version.h"
#include "crypto/digest.h"
#include "optim/adam.h"
#include "optim/sgd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace veil::models {

namespace {

constexpr const char* kFormat = "veil-checkpoint";
constexpr const char* kFormatVersion = "1";
constexpr const char* kRing = "Z_2^64";
constexpr const char* kModelPrefix = "model.";
constexpr const char* kSessionPrefix = "session.";
constexpr const char* kExtraPrefix = "progress.extra.";
constexpr const char* kChecksumKey = "checksum";

using Tensors = std::vector<std::pair<std::string, core::Tensor>>;
using Metadata = std::map<std::string, std::string>;

std::string shape_text(const core::Shape& s) {
  return fmt::format("[{}]", fmt::join(s, ","));
}

// SHA-256 over every metadata entry but the checksum (sorted by key) and every tensor in file
// order: lengths are included, so no two different contents hash the same message.
std::string checksum(const Tensors& tensors, const Metadata& meta) {
  crypto::Sha256 h;
  h.update("veil-checkpoint-checksum-v1");
  h.update_u64(meta.size() - meta.count(kChecksumKey));
  for (const auto& [k, v] : meta) {
    if (k == kChecksumKey) {
      continue;
    }
    h.update_u64(k.size()).update(k).update_u64(v.size()).update(v);
  }
  h.update_u64(tensors.size());
  for (const auto& [name, t] : tensors) {
    const std::string dtype = core::safetensors_dtype_name(t.dtype());
    h.update_u64(name.size()).update(name).update_u64(dtype.size()).update(dtype);
    h.update_u64(t.shape().size());
    for (int64_t e : t.shape()) {
      h.update_u64(static_cast<uint64_t>(e));
    }
    const core::Tensor c = t.to(core::Device::cpu()).contiguous();
    h.update_u64(c.nbytes());
    h.update(c.bytes());
  }
  const crypto::Sha256::Digest d = h.digest();
  return crypto::to_hex(d);
}

std::string visibility_text(const MpcTensor& t) {
  return fmt::format("{},{}", t.is_secret() ? "secret" : "public", t.frac_bits());
}

const char* optimizer_kind(const optim::Optimizer* opt) {
  if (opt == nullptr) {
    return "none";
  }
  if (dynamic_cast<const optim::SGD*>(opt) != nullptr) {
    return "SGD";
  }
  if (dynamic_cast<const optim::AdamW*>(opt) != nullptr) {
    return "AdamW";
  }
  if (dynamic_cast<const optim::Adam*>(opt) != nullptr) {
    return "Adam";
  }
  return nullptr;
}

bool valid_extra_key(const std::string& k) {
  if (k.empty()) {
    return false;
  }
  for (char c : k) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

// Writes the checkpoint so that no other user can read it at any moment and a reader of `path`
// sees the old file or the complete new one: the safetensors writer (itself temp file + fsync +
// rename) writes into a fresh private directory (mkdtemp: mode 0700) next to `path`, the file is
// made 0600 and renamed over `path` (same file system: atomic), and the directory is fsync'ed.
void write_private_atomically(const std::string& path,
                              const Tensors& tensors,
                              const Metadata& meta) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp_dir = (dir / ("." + target.filename().string() + ".ckpt-XXXXXX")).string();
  if (::mkdtemp(tmp_dir.data()) == nullptr) {
    throw IoError(fmt::format(
        "[save_checkpoint] cannot create a private temporary directory next to '{}': {}", path,
        std::strerror(errno)));
  }
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
    }
  } cleanup{tmp_dir};
  const std::string inner = (fs::path(tmp_dir) / target.filename()).string();
  core::write_safetensors(inner, tensors, meta);
  if (::chmod(inner.c_str(), S_IRUSR | S_IWUSR) != 0) {
    throw IoError(fmt::format("[save_checkpoint] cannot restrict the permissions of '{}': {}",
                              inner, std::strerror(errno)));
  }
  std::error_code ec;
  fs::rename(inner, target, ec);
  if (ec) {
    throw IoError(
        fmt::format("[save_checkpoint] cannot rename '{}' to '{}': {}", inner, path, ec.message()));
  }
  // Make the rename durable (best effort: some file systems refuse fsync on directories).
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
}

// ---- reading -----------------------------------------------------------------------------------

// A checkpoint file as read: tensors by name, metadata, and the path for messages.
struct Parsed {
  std::string path;
  std::map<std::string, core::Tensor> tensors;
  Metadata meta;

  [[noreturn]] void fail(const std::string& what) const {
    throw IoError(fmt::format("[read_checkpoint] '{}': {}", path, what));
  }
  const std::string& get(const std::string& key) const {
    const auto it = meta.find(key);
    if (it == meta.end()) {
      fail(fmt::format("the metadata field '{}' is missing", key));
    }
    return it->second;
  }
  int64_t get_int(const std::string& key) const {
    const std::string& s = get(key);
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) {
      fail(fmt::format("the metadata field '{}' is not an integer", key));
    }
    return v;
  }
  double get_double(const std::string& key) const {
    const std::string& s = get(key);
    double v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) {
      fail(fmt::format("the metadata field '{}' is not a number", key));
    }
    return v;
  }
  // Visibility and frac_bits of the tensor `name` ("tensor.<name>" = "secret,16").
  std::pair<bool, int> visibility(const std::string& name) const {
    const std::string& s = get("tensor." + name);
    const auto comma = s.find(',');
    const std::string vis = s.substr(0, comma);
    int f = -1;
    if (comma != std::string::npos) {
      const char* b = s.data() + comma + 1;
      const auto [end, ec] = std::from_chars(b, s.data() + s.size(), f);
      if (ec != std::errc() || end != s.data() + s.size()) {
        f = -1;
      }
    }
    if ((vis != "secret" && vis != "public") || f < 0 || f > 62) {
      fail(fmt::format("the metadata field 'tensor.{}' is malformed", name));
    }
    return {vis == "secret", f};
  }
  const core::Tensor* tensor(const std::string& name) const {
    const auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
  }
};

Parsed read_file(const std::string& path) {
  core::SafetensorsFile file = core::read_safetensors(path);
  Parsed p;
  p.path = path;
  p.meta = std::move(file.metadata);
  const auto format = p.meta.find("format");
  if (format == p.meta.end() || format->second != kFormat) {
    p.fail("not a veil checkpoint (the metadata field 'format' is not 'veil-checkpoint')");
  }
  if (p.get("format_version") != kFormatVersion) {
    p.fail(fmt::format("expected checkpoint format version {}, got '{}'", kFormatVersion,
                       p.get("format_version")));
  }
  Tensors ordered;
  ordered.reserve(file.tensors.size());
  for (auto& e : file.tensors) {
    ordered.emplace_back(e.name, e.tensor);
    p.tensors.emplace(e.name, e.tensor);
  }
  if (checksum(ordered, p.meta) != p.get(kChecksumKey)) {
    p.fail("checksum mismatch: the file is corrupt (or was edited)");
  }
  return p;
}

CheckpointInfo info_of(const Parsed& p) {
  CheckpointInfo info;
  info.veil_version = p.get("veil_version");
  info.rank = static_cast<int>(p.get_int("rank"));
  info.world_size = static_cast<int>(p.get_int("world_size"));
  info.ring = p.get("ring");
  info.frac_bits = static_cast<int>(p.get_int("frac_bits"));
  info.provider = p.get("provider");
  info.program = p.get("program");
  info.model = p.get("model");
  info.optimizer = p.get("optimizer");
  info.run_id = p.get(std::string(kSessionPrefix) + "run_id");
  info.progress.step = p.get_int("progress.step");
  info.progress.epoch = p.get_int("progress.epoch");
  for (const auto& [k, v] : p.meta) {
    if (k.rfind(kExtraPrefix, 0) == 0) {
      info.progress.extra[k.substr(std::string(kExtraPrefix).size())] = v;
    }
  }
  return info;
}

crypto::SessionState session_of(const Parsed& p) {
  std::map<std::string, std::string> fields;
  const std::string prefix = kSessionPrefix;
  for (const auto& [k, v] : p.meta) {
    if (k.rfind(prefix, 0) == 0) {
      fields[k.substr(prefix.size())] = v;
    }
  }
  return crypto::SessionState::from_fields(fields);
}

// A loaded tensor as an MpcTensor of `party`: the share (on the party's device) or the public
// encoding.
MpcTensor to_mpc(const Parsed& p, const std::string& name, Party& party) {
  const core::Tensor* t = p.tensor(name);
  VEIL_INTERNAL_ASSERT(t != nullptr, "tensor checked before");
  if (t->dtype() != core::DType::kRing64) {
    p.fail(fmt::format("tensor '{}' is stored as {}, expected U64 (ring64)", name,
                       core::safetensors_dtype_name(t->dtype())));
  }
  const auto [secret, f] = p.visibility(name);
  if (secret) {
    return MpcTensor::from_secret(crypto::AShare{t->to(party.device()), f}, party);
  }
  return MpcTensor::from_public_ring(*t, f, party);
}

// Appends "'name': [..] in the file, [..] here" / "missing" / "unexpected" differences between
// the file's tensors under `prefix` and the expected (name, shape) list.
void diff_tensors(const Parsed& p,
                  const std::string& prefix,
                  const std::vector<std::pair<std::string, core::Shape>>& expected,
                  const char* what,
                  std::vector<std::string>& diffs) {
  std::map<std::string, bool> seen;
  for (const auto& [name, shape] : expected) {
    const core::Tensor* t = p.tensor(prefix + name);
    if (t == nullptr) {
      diffs.push_back(
          fmt::format("{} entry '{}' {} is missing in the file", what, name, shape_text(shape)));
      continue;
    }
    seen[prefix + name] = true;
    if (t->shape() != shape) {
      diffs.push_back(fmt::format("{} entry '{}': {} in the file, {} here", what, name,
                                  shape_text(t->shape()), shape_text(shape)));
    }
  }
  for (const auto& [name, t] : p.tensors) {
    if (name.rfind(prefix, 0) == 0 && !seen.count(name)) {
      diffs.push_back(fmt::format("{} entry '{}' {} in the file is not in this {}", what,
                                  name.substr(prefix.size()), shape_text(t.shape()), what));
    }
  }
}

// The state-dict name of each optimizer parameter ("" when it is not one of the module's).
std::vector<std::string> optimizer_param_names(const nn::Module& module,
                                               const optim::Optimizer& opt) {
  const auto state = module.state_dict();
  std::vector<std::string> names;
  for (const MpcTensor& p : opt.parameters()) {
    std::string name;
    for (const auto& [n, t] : state) {
      if (t.is_same(p)) {
        name = n;
        break;
      }
    }
    names.push_back(name);
  }
  return names;
}

}  // namespace

std::string model_fingerprint(const nn::Module& module) {
  std::vector<std::string> parts;
  for (const auto& [name, t] : module.state_dict()) {
    parts.push_back(name + shape_text(t.shape()));
  }
  return fmt::format("{}", fmt::join(parts, ";"));
}

void save_checkpoint(const std::string& path,
                     const nn::Module& module,
                     const optim::Optimizer* optimizer,
                     const CheckpointProgress& progress,
                     Party& party) {
  constexpr const char* kOp = "[save_checkpoint]";
  Tensors tensors;
  Metadata meta;
  auto add = [&](const std::string& name, const MpcTensor& t) {
    VEIL_CHECK(&t.party() == &party, "{} tensor '{}' belongs to another party", kOp, name);
    tensors.emplace_back(name, t.ring().to(core::Device::cpu()).contiguous());
    meta["tensor." + name] = visibility_text(t);
  };
  meta["format"] = kFormat;
  meta["format_version"] = kFormatVersion;
  meta["veil_version"] = kVersion;
  meta["rank"] = std::to_string(party.rank());
  meta["world_size"] = std::to_string(party.world_size());
  meta["ring"] = kRing;
  meta["frac_bits"] = std::to_string(party.frac_bits());
  meta["provider"] = crypto::provider_name(party.options().provider);
  meta["program"] = party.options().program_id;
  meta["model"] = model_fingerprint(module);
  for (const auto& [name, t] : module.state_dict()) {
    add(kModelPrefix + name, t);
  }
  const char* kind = optimizer_kind(optimizer);
  VEIL_CHECK(kind != nullptr, "{} expected an SGD, Adam or AdamW optimizer (or none), got another",
             kOp);
  meta["optimizer"] = kind;
  if (optimizer != nullptr) {
    const auto& params = optimizer->parameters();
    const auto names = optimizer_param_names(module, *optimizer);
    meta["optimizer.lr"] = fmt::format("{}", optimizer->lr());
    meta["optimizer.params"] = std::to_string(params.size());
    const auto* sgd = dynamic_cast<const optim::SGD*>(optimizer);
    const auto* adam = dynamic_cast<const optim::AdamBase*>(optimizer);
    for (std::size_t i = 0; i < params.size(); ++i) {
      const std::string base = fmt::format("optimizer.{}.", i);
      meta[base + "param"] = names[i];
      meta[base + "shape"] = shape_text(params[i].shape());
      if (sgd != nullptr && sgd->momentum_buffer(i).defined()) {
        add(base + "momentum_buffer", sgd->momentum_buffer(i));
      }
      if (adam != nullptr) {
        meta[base + "step"] = std::to_string(adam->step_count(i));
        if (adam->exp_avg(i).defined()) {
          add(base + "exp_avg", adam->exp_avg(i));
          add(base + "exp_avg_sq", adam->exp_avg_sq(i));
        }
      }
    }
  }
  meta["progress.step"] = std::to_string(progress.step);
  meta["progress.epoch"] = std::to_string(progress.epoch);
  for (const auto& [k, v] : progress.extra) {
    VEIL_CHECK(valid_extra_key(k),
               "{} expected progress.extra keys of letters, digits and '_.-', got '{}'", kOp, k);
    meta[kExtraPrefix + k] = v;
  }
  crypto::SessionState session = party.session_state();
  for (const auto& [k, v] : session.to_fields()) {
    meta[kSessionPrefix + k] = v;
  }
  crypto::secure_wipe(session);
  meta[kChecksumKey] = checksum(tensors, meta);
  write_private_atomically(path, tensors, meta);
}

CheckpointInfo read_checkpoint_info(const std::string& path) {
  const Parsed p = read_file(path);
  CheckpointInfo info = info_of(p);
  info.resume_point = session_of(p).resume_point();
  return info;
}

crypto::SessionState read_checkpoint_session(const std::string& path) {
  return session_of(read_file(path));
}

CheckpointProgress load_checkpoint(const std::string& path,
                                   nn::Module& module,
                                   optim::Optimizer* optimizer,
                                   Party& party,
                                   const CheckpointLoadOptions& options) {
  const Parsed p = read_file(path);
  const CheckpointInfo info = info_of(p);
  crypto::SessionState session = session_of(p);

  // The setup that wrote the file must be this one (public fields only in messages).
  std::vector<std::string> diffs;
  auto compare = [&](const char* field, const std::string& in_file, const std::string& here) {
    if (in_file != here) {
      diffs.push_back(fmt::format("{}: '{}' in the file, '{}' here", field, in_file, here));
    }
  };
  compare("rank", std::to_string(info.rank), std::to_string(party.rank()));
  compare("world_size", std::to_string(info.world_size), std::to_string(party.world_size()));
  compare("ring", info.ring, kRing);
  compare("frac_bits", std::to_string(info.frac_bits), std::to_string(party.frac_bits()));
  compare("provider", info.provider, crypto::provider_name(party.options().provider));
  compare("program", info.program, party.options().program_id);
  // The model: every state-dict entry with its shape.
  const auto state = module.state_dict();
  std::vector<std::pair<std::string, core::Shape>> expected;
  for (const auto& [name, t] : state) {
    expected.emplace_back(name, t.shape());
  }
  diff_tensors(p, kModelPrefix, expected, "model", diffs);
  // The optimizer: type, parameters and the shapes of its state.
  const char* kind = optimizer_kind(optimizer);
  VEIL_CHECK(kind != nullptr,
             "[load_checkpoint] expected an SGD, Adam or AdamW optimizer (or none), got another");
  std::size_t n_params = 0;
  if (optimizer != nullptr) {
    compare("optimizer", info.optimizer, kind);
    if (info.optimizer == kind) {
      n_params = optimizer->parameters().size();
      const int64_t in_file = p.get_int("optimizer.params");
      compare("optimizer parameters", std::to_string(in_file), std::to_string(n_params));
      if (in_file == static_cast<int64_t>(n_params)) {
        for (std::size_t i = 0; i < n_params; ++i) {
          const std::string base = fmt::format("optimizer.{}.", i);
          const std::string shape = shape_text(optimizer->parameters()[i].shape());
          compare(fmt::format("optimizer parameter {} shape", i).c_str(), p.get(base + "shape"),
                  shape);
          for (const char* s : {"momentum_buffer", "exp_avg", "exp_avg_sq"}) {
            const core::Tensor* t = p.tensor(base + s);
            if (t != nullptr && shape_text(t->shape()) != shape) {
              diffs.push_back(fmt::format("optimizer state '{}{}': {} in the file, {} here", base,
                                          s, shape_text(t->shape()), shape));
            }
          }
        }
      } else {
        n_params = 0;
      }
    }
  }
  VEIL_CHECK(diffs.empty(), "[load_checkpoint] '{}' was written by another setup or model: {}",
             path, fmt::join(diffs, "; "));

  // Build every value before changing anything (to_mpc may still refuse a malformed entry).
  std::vector<MpcTensor> values;
  for (const auto& [name, t] : state) {
    values.push_back(to_mpc(p, kModelPrefix + name, party));
  }
  struct OptState {
    MpcTensor a, b;
    int64_t step = 0;
  };
  std::vector<OptState> opt_states(n_params);
  const bool is_sgd = dynamic_cast<optim::SGD*>(optimizer) != nullptr;
  for (std::size_t i = 0; i < n_params; ++i) {
    const std::string base = fmt::format("optimizer.{}.", i);
    if (is_sgd) {
      if (p.tensor(base + "momentum_buffer") != nullptr) {
        opt_states[i].a = to_mpc(p, base + "momentum_buffer", party);
      }
    } else {
      opt_states[i].step = p.get_int(base + "step");
      const bool has_m = p.tensor(base + "exp_avg") != nullptr;
      const bool has_v = p.tensor(base + "exp_avg_sq") != nullptr;
      if (has_m != has_v || has_m != (opt_states[i].step > 0)) {
        p.fail(fmt::format("the Adam state of optimizer parameter {} is incomplete", i));
      }
      if (has_m) {
        opt_states[i].a = to_mpc(p, base + "exp_avg", party);
        opt_states[i].b = to_mpc(p, base + "exp_avg_sq", party);
      }
    }
  }
  const double lr = optimizer != nullptr ? p.get_double("optimizer.lr") : 0.0;

  if (options.restore_session) {
    VEIL_CHECK(
        party.resumed_from() == session.resume_point(),
        "[load_checkpoint] '{}': this session was not resumed from the checkpoint "
        "(resume point '{}' in the file, '{}' here); set PartyOptions::resume = "
        "read_checkpoint_session(path) for a bit-for-bit resume, or load with "
        "restore_session = false",
        path, session.resume_point(),
        party.resumed_from().empty() ? std::string("a fresh session") : party.resumed_from());
    party.restore_streams(session);  // checks first, then rewinds; throws before any change
  }
  crypto::secure_wipe(session);

  for (std::size_t i = 0; i < state.size(); ++i) {
    MpcTensor handle = state[i].second;
    handle.assign_(values[i]);
  }
  if (optimizer != nullptr) {
    optimizer->set_lr(lr);
    for (std::size_t i = 0; i < n_params; ++i) {
      if (auto* sgd = dynamic_cast<optim::SGD*>(optimizer)) {
        sgd->set_state(i, opt_states[i].a);
      } else if (auto* adam = dynamic_cast<optim::AdamBase*>(optimizer)) {
        adam->set_state(i, opt_states[i].a, opt_states[i].b, opt_states[i].step);
      }
    }
  }
  return info.progress;
}

}  // namespace veil::models
