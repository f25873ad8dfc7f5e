#pragma once
// Module containers without a forward (libtorch's ModuleList and ModuleDict): they register their
// modules as children so that parameters, buffers, train()/eval(), encrypt() and state_dict()
// reach them, with PyTorch's names: a ModuleList registered as "layers" in a model gives
// "layers.0.weight", "layers.1.bias", ...; a ModuleDict gives "heads.<key>.weight".

#include <concepts>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "nn/module.h"

namespace veil::nn {

/// A module holder (nn::Linear, nn::BatchNorm2d, a VEIL_MODULE holder, ...).
template <class H>
concept ModuleHolderType = requires(const std::decay_t<H>& h) {
  typename std::decay_t<H>::ImplType;
  { h.ptr() } -> std::convertible_to<std::shared_ptr<Module>>;
};

/// A module holder or a shared_ptr to a Module subclass.
template <class M>
concept ModuleLike = ModuleHolderType<M> || requires(const std::decay_t<M>& m) {
  { m } -> std::convertible_to<std::shared_ptr<Module>>;
};

/// An ordered list of modules; children are named "0", "1", ... in insertion order.
class ModuleListImpl : public Module {
 public:
  using Entries = std::vector<std::shared_ptr<Module>>;
  using ConstIterator = Entries::const_iterator;

  /// An empty list.
  ModuleListImpl() = default;
  /// The given modules (holders or shared_ptrs), in order: ModuleList(Linear(4, 8), ReLU()).
  template <ModuleLike... Modules>
  requires(sizeof...(Modules) > 0) explicit ModuleListImpl(Modules&&... modules) {
    (push_back(std::forward<Modules>(modules)), ...);
  }

  /// Appends a module as child "<size()>". Throws ValueError for an empty holder or pointer.
  void push_back(std::shared_ptr<Module> module);
  /// Appends a module given as a holder (e.g. nn::Linear).
  template <ModuleHolderType Holder>
  void push_back(const Holder& holder) {
    push_back(std::shared_ptr<Module>(holder.ptr()));
  }
  /// Appends a module given as a shared_ptr to a Module subclass.
  template <std::derived_from<Module> M>
  void push_back(const std::shared_ptr<M>& module) {
    push_back(std::static_pointer_cast<Module>(module));
  }
  /// Appends every module of `other` (the same module objects, shared).
  void extend(const ModuleListImpl& other);

  /// The i-th module. Throws ValueError "[ModuleList] index ... out of range".
  const std::shared_ptr<Module>& operator[](std::size_t i) const;
  /// Same as operator[].
  std::shared_ptr<Module> ptr(std::size_t i) const { return (*this)[i]; }
  /// The i-th module as T (e.g. LinearImpl). Throws ValueError for a bad index or another type.
  template <std::derived_from<Module> T>
  std::shared_ptr<T> ptr(std::size_t i) const {
    auto typed = std::dynamic_pointer_cast<T>((*this)[i]);
    VEIL_CHECK(typed != nullptr, "[ModuleList] module {} is not of the requested type", i);
    return typed;
  }
  /// *ptr<T>(i).
  template <std::derived_from<Module> T>
  T& at(std::size_t i) const {
    return *ptr<T>(i);
  }

  /// Number of modules.
  std::size_t size() const { return modules_.size(); }
  /// size() == 0.
  bool is_empty() const { return modules_.empty(); }
  /// Iteration over the modules in order.
  ConstIterator begin() const { return modules_.begin(); }
  ConstIterator end() const { return modules_.end(); }

 protected:
  /// Keeps operator[] in step with Module::replace_module("<i>", ...).
  void on_child_replaced(const std::string& name,
                         const std::shared_ptr<Module>& module,
                         const UnaryForward& forward) override;

 private:
  Entries modules_;
};
VEIL_MODULE(ModuleList);

/// Modules by string key, in insertion order; children are named by their key.
class ModuleDictImpl : public Module {
 public:
  using Item = std::pair<std::string, std::shared_ptr<Module>>;
  using Items = std::vector<Item>;
  using ConstIterator = Items::const_iterator;

  /// An empty dictionary.
  ModuleDictImpl() = default;
  /// The given (key, module) pairs, in order. Throws as insert().
  explicit ModuleDictImpl(const Items& items);

  /// Adds `module` under `key` (non-empty, without '.', not yet present: a registered child
  /// cannot be replaced). Throws ValueError for a bad or duplicate key or an empty module.
  void insert(std::string key, std::shared_ptr<Module> module);
  /// Same for a module holder.
  template <ModuleHolderType Holder>
  void insert(std::string key, const Holder& holder) {
    insert(std::move(key), std::shared_ptr<Module>(holder.ptr()));
  }
  /// Same for a shared_ptr to a Module subclass.
  template <std::derived_from<Module> M>
  void insert(std::string key, const std::shared_ptr<M>& module) {
    insert(std::move(key), std::static_pointer_cast<Module>(module));
  }
  /// insert() of every pair, in order.
  void update(const Items& items);

  /// The module under `key`. Throws ValueError "[ModuleDict] no module under key '...'".
  const std::shared_ptr<Module>& operator[](const std::string& key) const;
  /// The module under `key` as T. Throws ValueError for a missing key or another type.
  template <std::derived_from<Module> T>
  std::shared_ptr<T> ptr(const std::string& key) const {
    auto typed = std::dynamic_pointer_cast<T>((*this)[key]);
    VEIL_CHECK(typed != nullptr, "[ModuleDict] module '{}' is not of the requested type", key);
    return typed;
  }
  /// *ptr<T>(key).
  template <std::derived_from<Module> T>
  T& at(const std::string& key) const {
    return *ptr<T>(key);
  }
  /// Whether a module is stored under `key`.
  bool contains(const std::string& key) const;

  /// Number of modules.
  std::size_t size() const { return items_.size(); }
  /// size() == 0.
  bool is_empty() const { return items_.empty(); }
  /// Keys in insertion order.
  std::vector<std::string> keys() const;
  /// Modules in insertion order.
  std::vector<std::shared_ptr<Module>> values() const;
  /// (key, module) pairs in insertion order.
  const Items& items() const { return items_; }
  /// Iteration over (key, module) pairs in insertion order.
  ConstIterator begin() const { return items_.begin(); }
  ConstIterator end() const { return items_.end(); }

 protected:
  /// Keeps operator[] in step with Module::replace_module("<key>", ...).
  void on_child_replaced(const std::string& name,
                         const std::shared_ptr<Module>& module,
                         const UnaryForward& forward) override;

 private:
  Items items_;
};
VEIL_MODULE(ModuleDict);

}  // namespace veil::nn
