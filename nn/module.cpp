#include "nn/module.h"

#include <algorithm>

#include <fmt/format.h>

namespace veil::nn {

void Module::check_name(const std::string& name, const char* op) const {
  VEIL_CHECK(!name.empty() && name.find('.') == std::string::npos,
             "[{}] expected a non-empty name without '.', got '{}'", op, name);
  auto taken = [&name](const auto& list) {
    for (const auto& entry : list) {
      if (entry.first == name) {
        return true;
      }
    }
    return false;
  };
  VEIL_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_),
             "[{}] the name '{}' is already registered in this module", op, name);
}

MpcTensor Module::register_parameter(std::string name, MpcTensor tensor, bool requires_grad) {
  check_name(name, "register_parameter");
  VEIL_CHECK(tensor.defined(), "[register_parameter] parameter '{}' is undefined", name);
  VEIL_CHECK(tensor.is_leaf(), "[register_parameter] parameter '{}' must be a leaf tensor", name);
  tensor.set_requires_grad(requires_grad);
  parameters_.emplace_back(std::move(name), tensor);
  return tensor;
}

MpcTensor Module::register_buffer(std::string name, MpcTensor tensor) {
  check_name(name, "register_buffer");
  VEIL_CHECK(tensor.defined(), "[register_buffer] buffer '{}' is undefined", name);
  VEIL_CHECK(tensor.is_leaf(), "[register_buffer] buffer '{}' must be a leaf tensor", name);
  tensor.set_requires_grad(false);
  buffers_.emplace_back(std::move(name), tensor);
  return tensor;
}

void Module::add_child(std::string name, std::shared_ptr<Module> module) {
  check_name(name, "register_module");
  VEIL_CHECK(module != nullptr, "[register_module] module '{}' is empty", name);
  VEIL_CHECK(module.get() != this, "[register_module] a module cannot contain itself ('{}')", name);
  children_.emplace_back(std::move(name), std::move(module));
}

void Module::collect(const std::string& prefix,
                     bool recurse,
                     bool buffers,
                     std::vector<std::pair<std::string, MpcTensor>>& out) const {
  for (const auto& [name, t] : buffers ? buffers_ : parameters_) {
    out.emplace_back(prefix + name, t);
  }
  if (recurse) {
    for (const auto& [name, child] : children_) {
      child->collect(prefix + name + ".", recurse, buffers, out);
    }
  }
}

std::vector<std::pair<std::string, MpcTensor>> Module::named_parameters(bool recurse) const {
  std::vector<std::pair<std::string, MpcTensor>> out;
  collect("", recurse, false, out);
  return out;
}

std::vector<MpcTensor> Module::parameters(bool recurse) const {
  std::vector<MpcTensor> out;
  for (auto& [name, t] : named_parameters(recurse)) {
    out.push_back(t);
  }
  return out;
}

std::vector<std::pair<std::string, MpcTensor>> Module::named_buffers(bool recurse) const {
  std::vector<std::pair<std::string, MpcTensor>> out;
  collect("", recurse, true, out);
  return out;
}

std::vector<MpcTensor> Module::buffers(bool recurse) const {
  std::vector<MpcTensor> out;
  for (auto& [name, t] : named_buffers(recurse)) {
    out.push_back(t);
  }
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  return children_;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [name, child] : children_) {
    out.push_back(child);
  }
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (const auto& [name, child] : children_) {
    child->train(on);
  }
}

void Module::encrypt(int src) {
  for (MpcTensor& t : parameters()) {
    t.encrypt(src);
  }
  for (MpcTensor& t : buffers()) {
    t.encrypt(src);
  }
}

void Module::zero_grad() {
  for (MpcTensor& t : parameters()) {
    t.zero_grad();
  }
}

std::vector<std::pair<std::string, MpcTensor>> Module::state_dict() const {
  auto out = named_parameters();
  auto bufs = named_buffers();
  out.insert(out.end(), bufs.begin(), bufs.end());
  return out;
}

void Module::load_state_dict(const std::vector<std::pair<std::string, MpcTensor>>& state,
                             bool strict) {
  auto mine = state_dict();
  std::vector<bool> seen(mine.size(), false);
  for (const auto& [name, value] : state) {
    const auto it = std::find_if(mine.begin(), mine.end(),
                                 [&name](const auto& kv) { return kv.first == name; });
    if (it == mine.end()) {
      VEIL_CHECK(!strict, "[load_state_dict] unexpected entry '{}' (not a parameter or buffer)",
                 name);
      continue;
    }
    VEIL_CHECK(value.defined() && value.shape() == it->second.shape(),
               "[load_state_dict] '{}': expected shape {}, got {}", name,
               core::shape_str(it->second.shape()),
               value.defined() ? core::shape_str(value.shape()) : std::string("undefined"));
    it->second.assign_(value);
    seen[static_cast<std::size_t>(it - mine.begin())] = true;
  }
  if (strict) {
    for (std::size_t i = 0; i < mine.size(); ++i) {
      VEIL_CHECK(seen[i], "[load_state_dict] missing entry '{}'", mine[i].first);
    }
  }
}

// ---- PyTorch layouts and fine-tuning ------------------------------------------------------------

core::Tensor Module::to_torch_layout(const std::string& /*name*/, const core::Tensor& value) const {
  return value;
}

core::Tensor Module::from_torch_layout(const std::string& /*name*/,
                                       const core::Tensor& value) const {
  return value;
}

Module& Module::requires_grad_(bool requires_grad) {
  for (MpcTensor& t : parameters()) {
    t.set_requires_grad(requires_grad);
  }
  return *this;
}

std::vector<std::pair<std::string, MpcTensor>> Module::named_trainable_parameters(
    bool recurse) const {
  std::vector<std::pair<std::string, MpcTensor>> out;
  for (auto& [name, t] : named_parameters(recurse)) {
    if (t.requires_grad()) {
      out.emplace_back(name, t);
    }
  }
  return out;
}

std::vector<MpcTensor> Module::trainable_parameters(bool recurse) const {
  std::vector<MpcTensor> out;
  for (auto& [name, t] : named_trainable_parameters(recurse)) {
    out.push_back(t);
  }
  return out;
}

namespace {

std::string child_names(const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& kids) {
  if (kids.empty()) {
    return "it has no submodules";
  }
  std::string out = "its submodules are";
  for (std::size_t i = 0; i < kids.size(); ++i) {
    out += (i == 0 ? " '" : ", '") + kids[i].first + "'";
  }
  return out;
}

}  // namespace

std::shared_ptr<Module> Module::get_submodule(const std::string& target) const {
  VEIL_CHECK(!target.empty(),
             "[get_submodule] expected a dotted path such as 'features.0', got ''");
  std::shared_ptr<Module> current;
  const Module* at = this;
  std::string walked;
  std::size_t start = 0;
  while (start <= target.size()) {
    const std::size_t dot = std::min(target.find('.', start), target.size());
    const std::string part = target.substr(start, dot - start);
    const auto it = std::find_if(at->children_.begin(), at->children_.end(),
                                 [&part](const auto& kv) { return kv.first == part; });
    VEIL_CHECK(it != at->children_.end(), "[get_submodule] no submodule '{}' in {} ({})", part,
               walked.empty() ? std::string("the root module") : "'" + walked + "'",
               child_names(at->children_));
    current = it->second;
    at = current.get();
    walked += (walked.empty() ? "" : ".") + part;
    start = dot + 1;
  }
  return current;
}

void Module::on_child_replaced(const std::string& /*name*/,
                               const std::shared_ptr<Module>& /*module*/,
                               const UnaryForward& /*forward*/) {}

void Module::replace_descendant(const std::string& name,
                                std::shared_ptr<Module> module,
                                const UnaryForward& forward) {
  VEIL_CHECK(!name.empty(), "[replace_module] expected the name of a submodule, got ''");
  VEIL_CHECK(module != nullptr, "[replace_module] the module for '{}' is empty", name);
  const std::size_t dot = name.rfind('.');
  Module* parent = this;
  std::shared_ptr<Module> parent_holder;
  std::string local = name;
  if (dot != std::string::npos) {
    try {
      parent_holder = get_submodule(name.substr(0, dot));
    } catch (const ValueError& e) {
      throw ValueError(fmt::format("[replace_module] cannot replace '{}': {}", name, e.what()));
    }
    parent = parent_holder.get();
    local = name.substr(dot + 1);
  }
  const auto it = std::find_if(parent->children_.begin(), parent->children_.end(),
                               [&local](const auto& kv) { return kv.first == local; });
  VEIL_CHECK(it != parent->children_.end(), "[replace_module] no submodule '{}' to replace ({})",
             name, child_names(parent->children_));
  VEIL_CHECK(module.get() != parent && module.get() != this,
             "[replace_module] a module cannot contain itself ('{}')", name);
  parent->on_child_replaced(local, module, forward);  // may throw: nothing changed yet
  it->second = std::move(module);
}

}  // namespace veil::nn
