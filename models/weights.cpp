#include "models/weights.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <set>

#include <fmt/format.h>

#include "crypto/fixed_point.h"
#include "crypto/protocols/arithmetic.h"

namespace veil::models {

namespace {

// One parameter or buffer of a module tree, in PyTorch's state-dict order.
struct Slot {
  std::string name;          // dotted name, "features.0.weight"
  std::string local;         // name in its module, "weight"
  const nn::Module* module;  // the module that registered it (for the layout hooks)
  MpcTensor tensor;          // the handle (assign_ updates the module)
};

void collect_slots(const nn::Module& m, const std::string& prefix, std::vector<Slot>& out) {
  for (const auto& [local, t] : m.named_parameters(false)) {
    out.push_back({prefix + local, local, &m, t});
  }
  for (const auto& [local, t] : m.named_buffers(false)) {
    out.push_back({prefix + local, local, &m, t});
  }
  for (const auto& [child_name, child] : m.named_children()) {
    collect_slots(*child, prefix + child_name + ".", out);
  }
}

std::vector<Slot> slots_of(const nn::Module& m) {
  std::vector<Slot> out;
  collect_slots(m, "", out);
  return out;
}

bool is_integer_slot(const Slot& s) {
  return s.tensor.frac_bits() == 0;
}

// The shape the slot has in PyTorch's layout (the hook applied to a stride-0 view: no copy).
core::Shape torch_shape(const Slot& s) {
  const core::Tensor probe = core::Tensor::scalar<double>(0.0).expand(s.tensor.shape());
  return s.module->to_torch_layout(s.local, probe).shape();
}

void check_float_dtype(core::DType d, const char* op) {
  VEIL_CHECK(d == core::DType::kFloat64 || d == core::DType::kFloat32,
             "[{}] expected float_dtype float64 or float32, got {}", op, core::dtype_name(d));
}

// Plaintext value of a slot from its ring encoding, in PyTorch's layout, contiguous.
core::Tensor to_torch_value(const Slot& s, const core::Tensor& ring, core::DType float_dtype) {
  const core::Tensor host = ring.is_cuda() ? ring.to(core::Device::cpu()) : ring;
  core::Tensor value;
  if (is_integer_slot(s)) {
    value = host.to(core::DType::kInt64);
  } else {
    value = crypto::FixedPointEncoder(s.tensor.frac_bits()).decode(host);
    if (float_dtype != core::DType::kFloat64) {
      value = value.to(float_dtype);
    }
  }
  return s.module->to_torch_layout(s.local, value).contiguous();
}

std::string names_list(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    out += (i == 0 ? "'" : ", '") + names[i] + "'";
  }
  return out;
}

bool is_excluded(const std::string& name, const std::vector<std::string>& prefixes) {
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&name](const std::string& p) { return name.starts_with(p); });
}

bool is_ignorable(const std::string& name) {
  const std::string kLeaf = "num_batches_tracked";
  return name == kLeaf || (name.size() > kLeaf.size() &&
                           name.compare(name.size() - kLeaf.size(), kLeaf.size(), kLeaf) == 0 &&
                           name[name.size() - kLeaf.size() - 1] == '.');
}

// A validated load: ring64 encodings (veil layout) for the slots the file has.
struct Prepared {
  std::vector<core::Tensor> rings;  // per slot; undefined when missing
  LoadReport report;
};

// Checks `file` against the slots and encodes every value; throws one ValueError listing every
// problem (op: the message prefix, source: the file or state dict for messages).
Prepared prepare(const std::vector<Slot>& slots,
                 const core::SafetensorsFile& file,
                 const LoadOptions& options,
                 const char* op,
                 const std::string& source) {
  Prepared out;
  out.rings.resize(slots.size());
  std::vector<std::string> problems;
  std::set<std::string> known;
  for (const Slot& s : slots) {
    known.insert(s.name);
  }
  const bool strict = options.strict;
  for (const core::SafetensorsEntry& e : file.tensors) {
    if (known.count(e.name) == 0 && !is_excluded(e.name, options.exclude_prefixes)) {
      (is_ignorable(e.name) ? out.report.ignored : out.report.unexpected).push_back(e.name);
    }
  }
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const Slot& s = slots[i];
    if (is_excluded(s.name, options.exclude_prefixes)) {
      out.report.excluded.push_back(s.name);
      continue;
    }
    const core::SafetensorsEntry* e = file.find(s.name);
    if (e == nullptr) {
      out.report.missing.push_back(s.name);
      continue;
    }
    const core::Shape want = torch_shape(s);
    if (e->tensor.shape() != want) {
      problems.push_back(fmt::format("'{}' has shape {}, expected {}{}", s.name,
                                     core::shape_str(e->tensor.shape()), core::shape_str(want),
                                     want == s.tensor.shape()
                                         ? std::string()
                                         : fmt::format(" (PyTorch's layout of veil's {})",
                                                       core::shape_str(s.tensor.shape()))));
      continue;
    }
    const core::DType dt = e->tensor.dtype();
    const bool is_float = dt == core::DType::kFloat64 || dt == core::DType::kFloat32;
    const bool is_int = dt == core::DType::kInt64 || dt == core::DType::kUInt8;
    if (is_integer_slot(s)) {
      if (!is_int) {
        problems.push_back(
            fmt::format("'{}' has dtype {}, expected an integer dtype (I64) for "
                        "this integer buffer",
                        s.name, e->stored_dtype));
        continue;
      }
      const core::Tensor v =
          s.module->from_torch_layout(s.local, e->tensor.to(core::DType::kInt64));
      out.rings[i] = v.contiguous().to(core::DType::kRing64);
    } else {
      if (!is_float) {
        problems.push_back(
            fmt::format("'{}' has dtype {}, expected a floating-point dtype (F64, "
                        "F32, F16 or BF16)",
                        s.name, e->stored_dtype));
        continue;
      }
      const core::Tensor v = s.module->from_torch_layout(s.local, e->tensor).contiguous();
      try {
        const core::Tensor v64 =
            v.dtype() == core::DType::kFloat64 ? v : v.to(core::DType::kFloat64);
        out.rings[i] = crypto::FixedPointEncoder(s.tensor.frac_bits()).encode(v64, op);
      } catch (const ValueError& err) {
        problems.push_back(fmt::format("'{}' cannot be encoded: {}", s.name, err.what()));
        continue;
      }
    }
    out.report.loaded.push_back(s.name);
  }
  if (strict && !out.report.missing.empty()) {
    problems.insert(problems.begin(), "missing " + names_list(out.report.missing));
  }
  if (strict && !out.report.unexpected.empty()) {
    problems.insert(problems.begin() + (out.report.missing.empty() ? 0 : 1),
                    "unexpected " + names_list(out.report.unexpected));
  }
  if (!problems.empty()) {
    std::string msg = fmt::format("[{}] {} does not match the module: ", op, source);
    for (std::size_t i = 0; i < problems.size(); ++i) {
      msg += (i == 0 ? "" : "; ") + problems[i];
    }
    throw ValueError(msg);
  }
  return out;
}

void assign_public(const std::vector<Slot>& slots, const Prepared& prepared) {
  for (std::size_t i = 0; i < slots.size(); ++i) {
    if (prepared.rings[i].defined()) {
      MpcTensor t = slots[i].tensor;
      t.assign_(MpcTensor::from_public_ring(prepared.rings[i], t.frac_bits(), t.party()));
    }
  }
}

core::SafetensorsFile as_file(const std::vector<std::pair<std::string, core::Tensor>>& state) {
  core::SafetensorsFile file;
  for (const auto& [name, t] : state) {
    VEIL_CHECK(t.defined(), "[load_torch_state_dict] entry '{}' is undefined", name);
    VEIL_CHECK(file.find(name) == nullptr, "[load_torch_state_dict] entry '{}' is repeated", name);
    file.tensors.push_back({name, t.is_cuda() ? t.to(core::Device::cpu()) : t,
                            core::safetensors_dtype_name(t.dtype())});
  }
  return file;
}

// Flattens ring tensors (host copies) into one [total] ring tensor.
core::Tensor concat_rings(const std::vector<core::Tensor>& parts) {
  int64_t total = 0;
  for (const core::Tensor& p : parts) {
    total += p.numel();
  }
  core::Tensor flat = core::Tensor::empty({total}, core::DType::kRing64);
  uint64_t* dst = flat.data<uint64_t>();
  for (const core::Tensor& p : parts) {
    const core::Tensor c = p.is_cuda() ? p.to(core::Device::cpu()) : p.contiguous();
    if (c.numel() > 0) {
      std::memcpy(dst, c.data<uint64_t>(), c.nbytes());
    }
    dst += c.numel();
  }
  return flat;
}

// The inverse: part i of `flat` with `shape`, copied.
core::Tensor slice_ring(const core::Tensor& flat, int64_t start, const core::Shape& shape) {
  const int64_t n = core::shape_numel(shape);
  core::Tensor out = core::Tensor::empty(shape, core::DType::kRing64);
  if (n > 0) {
    std::memcpy(out.data<uint64_t>(), flat.data<uint64_t>() + start,
                static_cast<std::size_t>(n) * sizeof(uint64_t));
  }
  return out;
}

enum ErrorKind : int64_t { kOther = 0, kValue = 1, kIo = 2, kNotImplemented = 3 };

[[noreturn]] void throw_kind(int64_t kind, const std::string& msg) {
  switch (kind) {
    case kValue:
      throw ValueError(msg);
    case kIo:
      throw IoError(msg);
    case kNotImplemented:
      throw NotImplementedError(msg);
    default:
      throw Error(msg);
  }
}

std::map<std::string, std::string> with_format(std::map<std::string, std::string> metadata) {
  metadata.emplace("format", "pt");
  return metadata;
}

}  // namespace

std::vector<std::pair<std::string, core::Tensor>> torch_state_dict(const nn::Module& module,
                                                                   core::DType float_dtype) {
  check_float_dtype(float_dtype, "torch_state_dict");
  std::vector<std::pair<std::string, core::Tensor>> out;
  for (const Slot& s : slots_of(module)) {
    VEIL_CHECK(s.tensor.is_public(),
               "[torch_state_dict] '{}' is secret; reveal it first (models::save_revealed_to)",
               s.name);
    out.emplace_back(s.name, to_torch_value(s, s.tensor.public_ring(), float_dtype));
  }
  return out;
}

void save_safetensors(const nn::Module& module,
                      const std::string& path,
                      const WeightsSaveOptions& options) {
  core::write_safetensors(path, torch_state_dict(module, options.float_dtype),
                          with_format(options.metadata));
}

LoadReport load_torch_state_dict(nn::Module& module,
                                 const std::vector<std::pair<std::string, core::Tensor>>& state,
                                 const LoadOptions& options,
                                 const std::string& source) {
  const std::vector<Slot> slots = slots_of(module);
  const Prepared prepared =
      prepare(slots, as_file(state), options, "load_torch_state_dict", source);
  assign_public(slots, prepared);
  return prepared.report;
}

LoadReport load_safetensors_into(nn::Module& module,
                                 const std::string& path,
                                 const LoadOptions& options) {
  const core::SafetensorsFile file = core::read_safetensors(path);
  const std::vector<Slot> slots = slots_of(module);
  const Prepared prepared =
      prepare(slots, file, options, "load_safetensors", fmt::format("'{}'", path));
  assign_public(slots, prepared);
  return prepared.report;
}

LoadReport load_safetensors_into(nn::Module& module, const std::string& path, bool strict) {
  LoadOptions options;
  options.strict = strict;
  return load_safetensors_into(module, path, options);
}

LoadReport load_pretrained(nn::Module& module,
                           const std::string& path,
                           int owner,
                           Party& party,
                           const PretrainedOptions& options) {
  VEIL_CHECK(owner >= 0 && owner < party.world_size(),
             "[load_pretrained] owner party {} out of range [0, {})", owner, party.world_size());
  const std::vector<Slot> slots = slots_of(module);
  const bool is_owner = party.rank() == owner;
  const auto n_slots = static_cast<int64_t>(slots.size());

  // 1. The owner reads and validates; the outcome is broadcast before any value moves.
  Prepared prepared;
  std::exception_ptr failure;
  int64_t kind = kOther;
  std::string message;
  if (is_owner) {
    try {
      const core::SafetensorsFile file = core::read_safetensors(path);
      prepared = prepare(slots, file, options, "load_pretrained", fmt::format("'{}'", path));
    } catch (const ValueError& e) {
      failure = std::current_exception();
      kind = kValue;
      message = e.what();
    } catch (const IoError& e) {
      failure = std::current_exception();
      kind = kIo;
      message = e.what();
    } catch (const NotImplementedError& e) {
      failure = std::current_exception();
      kind = kNotImplemented;
      message = e.what();
    } catch (const std::exception& e) {
      failure = std::current_exception();
      kind = kOther;
      message = e.what();
    }
    if (failure && message.empty()) {
      message = "unknown error";
    }
  }
  core::Tensor status;
  if (is_owner) {
    status = core::Tensor::zeros({3 + n_slots}, core::DType::kInt64);
    int64_t* p = status.data<int64_t>();
    p[0] = failure ? 0 : 1;
    p[1] = kind;
    p[2] = static_cast<int64_t>(message.size());
    for (int64_t i = 0; !failure && i < n_slots; ++i) {
      p[3 + i] = prepared.rings[static_cast<std::size_t>(i)].defined() ? 1 : 0;
    }
  }
  status = party.comm().broadcast(party.next_tag("load_pretrained"), status, owner, {3 + n_slots},
                                  core::DType::kInt64);
  const int64_t* st = status.data<int64_t>();
  if (st[0] == 0) {
    core::Tensor text;
    if (is_owner) {
      text = core::Tensor::empty({st[2]}, core::DType::kUInt8);
      std::memcpy(text.data<uint8_t>(), message.data(), message.size());
    }
    text = party.comm().broadcast(party.next_tag("load_pretrained"), text, owner, {st[2]},
                                  core::DType::kUInt8);
    if (is_owner) {
      std::rethrow_exception(failure);
    }
    const std::string got(reinterpret_cast<const char*>(text.data<uint8_t>()),
                          static_cast<std::size_t>(text.numel()));
    throw_kind(st[1], fmt::format("[load_pretrained] party {} could not load its weights: {}",
                                  owner, got));
  }

  LoadReport report = is_owner ? prepared.report : LoadReport{};
  if (!is_owner) {
    for (int64_t i = 0; i < n_slots; ++i) {
      const std::string& name = slots[static_cast<std::size_t>(i)].name;
      (st[3 + i] != 0                                ? report.loaded
       : is_excluded(name, options.exclude_prefixes) ? report.excluded
                                                     : report.missing)
          .push_back(name);
    }
  }

  // 2. Values: shared from the owner (PRZS, no communication) or broadcast in one message.
  if (options.secret) {
    for (int64_t i = 0; i < n_slots; ++i) {
      const auto u = static_cast<std::size_t>(i);
      MpcTensor t = slots[u].tensor;
      if (st[3 + i] == 0) {
        t.encrypt(owner);
        continue;
      }
      crypto::AShare s = crypto::share_ring(party, is_owner ? prepared.rings[u] : core::Tensor(),
                                            owner, t.shape(), t.frac_bits());
      t.assign_(MpcTensor::from_secret(std::move(s), party));
    }
    return report;
  }
  std::vector<core::Tensor> parts;
  int64_t total = 0;
  for (int64_t i = 0; i < n_slots; ++i) {
    if (st[3 + i] != 0) {
      const auto u = static_cast<std::size_t>(i);
      total += slots[u].tensor.numel();
      if (is_owner) {
        parts.push_back(prepared.rings[u]);
      }
    }
  }
  if (total > 0) {
    const core::Tensor flat = party.comm().broadcast(
        party.next_tag("load_pretrained"), is_owner ? concat_rings(parts) : core::Tensor(), owner,
        {total}, core::DType::kRing64);
    int64_t at = 0;
    for (int64_t i = 0; i < n_slots; ++i) {
      if (st[3 + i] != 0) {
        MpcTensor t = slots[static_cast<std::size_t>(i)].tensor;
        t.assign_(
            MpcTensor::from_public_ring(slice_ring(flat, at, t.shape()), t.frac_bits(), party));
        at += t.numel();
      }
    }
  }
  return report;
}

void save_revealed_to(const nn::Module& module,
                      int rank,
                      const std::string& path,
                      Party& party,
                      const WeightsSaveOptions& options) {
  VEIL_CHECK(rank >= 0 && rank < party.world_size(),
             "[save_revealed_to] party {} out of range [0, {})", rank, party.world_size());
  check_float_dtype(options.float_dtype, "save_revealed_to");
  const std::vector<Slot> slots = slots_of(module);
  std::vector<core::Tensor> shares;
  for (const Slot& s : slots) {
    if (s.tensor.is_secret()) {
      shares.push_back(s.tensor.ring());
    }
  }
  core::Tensor opened;  // at rank: the secret values' ring encodings, in slot order
  if (!shares.empty()) {
    opened = crypto::reveal_to(party, crypto::AShare{concat_rings(shares), 0}, rank);
  }
  if (party.rank() != rank) {
    return;
  }
  if (opened.defined() && opened.is_cuda()) {
    opened = opened.to(core::Device::cpu());
  }
  std::vector<std::pair<std::string, core::Tensor>> tensors;
  int64_t at = 0;
  for (const Slot& s : slots) {
    core::Tensor ring;
    if (s.tensor.is_secret()) {
      ring = slice_ring(opened, at, s.tensor.shape());
      at += s.tensor.numel();
    } else {
      ring = s.tensor.public_ring();
    }
    tensors.emplace_back(s.name, to_torch_value(s, ring, options.float_dtype));
  }
  core::write_safetensors(path, tensors, with_format(options.metadata));
}

}  // namespace veil::models
