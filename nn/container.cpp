#include "nn/container.h"

#include <algorithm>
#include <string>

namespace veil::nn {

// ---- ModuleList ---------------------------------------------------------------------------------

void ModuleListImpl::push_back(std::shared_ptr<Module> module) {
  VEIL_CHECK(module != nullptr, "[ModuleList] expected a module, got an empty holder or pointer");
  register_module(std::to_string(modules_.size()), module);
  modules_.push_back(std::move(module));
}

void ModuleListImpl::extend(const ModuleListImpl& other) {
  VEIL_CHECK(&other != this, "[ModuleList] cannot extend a list with itself");
  for (const auto& m : other) {
    push_back(m);
  }
}

const std::shared_ptr<Module>& ModuleListImpl::operator[](std::size_t i) const {
  VEIL_CHECK(i < modules_.size(), "[ModuleList] index {} out of range for {} modules", i,
             modules_.size());
  return modules_[i];
}

void ModuleListImpl::on_child_replaced(const std::string& name,
                                       const std::shared_ptr<Module>& module,
                                       const UnaryForward& /*forward*/) {
  for (std::size_t i = 0; i < modules_.size(); ++i) {
    if (std::to_string(i) == name) {
      modules_[i] = module;
      return;
    }
  }
}

// ---- ModuleDict ---------------------------------------------------------------------------------

ModuleDictImpl::ModuleDictImpl(const Items& items) {
  update(items);
}

void ModuleDictImpl::insert(std::string key, std::shared_ptr<Module> module) {
  VEIL_CHECK(module != nullptr, "[ModuleDict] expected a module under key '{}', got an empty one",
             key);
  VEIL_CHECK(!contains(key),
             "[ModuleDict] key '{}' is already present (registered modules cannot be replaced)",
             key);
  register_module(key, module);  // checks the name (non-empty, no '.')
  items_.emplace_back(std::move(key), std::move(module));
}

void ModuleDictImpl::update(const Items& items) {
  for (const auto& [key, module] : items) {
    insert(key, module);
  }
}

const std::shared_ptr<Module>& ModuleDictImpl::operator[](const std::string& key) const {
  const auto it = std::find_if(items_.begin(), items_.end(),
                               [&key](const Item& item) { return item.first == key; });
  VEIL_CHECK(it != items_.end(), "[ModuleDict] no module under key '{}'", key);
  return it->second;
}

void ModuleDictImpl::on_child_replaced(const std::string& name,
                                       const std::shared_ptr<Module>& module,
                                       const UnaryForward& /*forward*/) {
  for (Item& item : items_) {
    if (item.first == name) {
      item.second = module;
      return;
    }
  }
}

bool ModuleDictImpl::contains(const std::string& key) const {
  return std::any_of(items_.begin(), items_.end(),
                     [&key](const Item& item) { return item.first == key; });
}

std::vector<std::string> ModuleDictImpl::keys() const {
  std::vector<std::string> out;
  out.reserve(items_.size());
  for (const auto& item : items_) {
    out.push_back(item.first);
  }
  return out;
}

std::vector<std::shared_ptr<Module>> ModuleDictImpl::values() const {
  std::vector<std::shared_ptr<Module>> out;
  out.reserve(items_.size());
  for (const auto& item : items_) {
    out.push_back(item.second);
  }
  return out;
}

}  // namespace veil::nn
