#pragma once
// Module: the base of every layer and model, with libtorch's vocabulary — register_parameter /
// register_buffer / register_module, named_parameters() in registration order with dotted names
// ("fc1.weight"), train()/eval(), zero_grad() — plus encrypt(src), which turns every parameter and
// buffer into a secret shared from party src's values.
//
// Modules are held by shared_ptr through a module holder (ModuleHolder<Impl>, declared with
// VEIL_MODULE(Name) like TORCH_MODULE): `Linear fc{nullptr}`, `fc->weight`, `fc(x)`.
// Parameters are MpcTensor handles: the member (linear->weight) and the registry entry share one
// value, so encrypt() and optimizer steps (MpcTensor::assign_) are seen through both.
//
// Every party must build the same modules in the same order (architecture decision D).

#include <concepts>
#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/mpc_tensor.h"
#include "core/error.h"

namespace veil::nn {

/// Base class of layers and models. Not copyable (hold it through a ModuleHolder / shared_ptr).
class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// Registers a parameter under `name` (non-empty, no '.', unique in this module) and sets its
  /// requires_grad. Returns the same handle (assign it to the public field). Throws ValueError for
  /// a bad or duplicate name, an undefined tensor, or a non-leaf tensor.
  MpcTensor register_parameter(std::string name, MpcTensor tensor, bool requires_grad = true);
  /// Registers a buffer: state that is not trained (requires_grad false) but is encrypted and
  /// listed by named_buffers(). Same errors as register_parameter.
  MpcTensor register_buffer(std::string name, MpcTensor tensor);
  /// Registers a submodule given as a module holder (e.g. nn::Linear) and returns the holder.
  /// Throws ValueError for a bad or duplicate name or an empty holder.
  template <class Holder>
  requires requires(const Holder& h) {
    typename Holder::ImplType;
    { h.ptr() } -> std::convertible_to<std::shared_ptr<Module>>;
  }
  Holder register_module(std::string name, Holder holder) {
    add_child(std::move(name), holder.ptr());
    return holder;
  }
  /// Registers a submodule given as a shared_ptr and returns it.
  template <std::derived_from<Module> M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    add_child(std::move(name), module);
    return module;
  }

  /// Parameters of this module then of its children (recursively, in registration order), with
  /// dotted names: {"fc1.weight", "fc1.bias", "fc2.weight", ...}.
  std::vector<std::pair<std::string, MpcTensor>> named_parameters(bool recurse = true) const;
  /// The handles of named_parameters(), in the same order (what optimizers take).
  std::vector<MpcTensor> parameters(bool recurse = true) const;
  /// Buffers, named and ordered like named_parameters().
  std::vector<std::pair<std::string, MpcTensor>> named_buffers(bool recurse = true) const;
  /// The handles of named_buffers().
  std::vector<MpcTensor> buffers(bool recurse = true) const;
  /// Direct submodules in registration order.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  /// Direct submodules in registration order.
  std::vector<std::shared_ptr<Module>> children() const;

  /// Sets training mode on this module and every descendant.
  virtual void train(bool on = true);
  /// train(false).
  void eval() { train(false); }
  /// Whether the module is in training mode (true after construction).
  bool is_training() const { return training_; }

  /// Makes every parameter and buffer (recursively) secret, shared from party `src`'s values
  /// (PRZS: 0 rounds, 0 bytes). Already secret tensors are left unchanged. requires_grad is kept.
  /// Throws ValueError when src is out of range.
  void encrypt(int src = 0);
  /// Clears the gradient of every parameter (recursively).
  void zero_grad();

  /// Parameters then buffers with their dotted names (the handles, not copies; secret ones stay
  /// secret): the names PyTorch's state_dict uses ("fc1.weight", "bn.running_mean").
  std::vector<std::pair<std::string, MpcTensor>> state_dict() const;
  /// Assigns every entry of `state` to the parameter or buffer of the same name (in place, so
  /// optimizers holding the handles see the new values). Throws ValueError naming the tensor for
  /// a missing or unexpected name (when strict) or a shape mismatch.
  void load_state_dict(const std::vector<std::pair<std::string, MpcTensor>>& state,
                       bool strict = true);

 private:
  void check_name(const std::string& name, const char* op) const;
  void add_child(std::string name, std::shared_ptr<Module> module);
  void collect(const std::string& prefix,
               bool recurse,
               bool buffers,
               std::vector<std::pair<std::string, MpcTensor>>& out) const;

  std::vector<std::pair<std::string, MpcTensor>> parameters_;
  std::vector<std::pair<std::string, MpcTensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

/// Shared-ownership holder of a module implementation (libtorch's ModuleHolder): constructing it
/// with arguments constructs Impl; nullptr gives an empty holder; copies share the module.
template <class Impl>
class ModuleHolder {
 public:
  /// The module implementation type.
  using ImplType = Impl;

 private:
  // Arguments that construct Impl, excluding a single holder argument (that is a copy).
  template <class Head, class... Tail>
  static constexpr bool kConstructsImpl =
      std::is_constructible_v<Impl, Head, Tail...> &&
      !(sizeof...(Tail) == 0 && std::is_base_of_v<ModuleHolder, std::decay_t<Head>>);

 public:
  /// Default-constructs the module (only when Impl is default constructible).
  ModuleHolder() requires std::is_default_constructible_v<Impl> : impl_(std::make_shared<Impl>()) {}
  /// An empty holder (`nn::Linear fc{nullptr};`), to be assigned later.
  ModuleHolder(std::nullptr_t) {}  // NOLINT(google-explicit-constructor): libtorch idiom
  /// Constructs Impl from the arguments.
  template <class Head, class... Tail>
  requires kConstructsImpl<Head, Tail...>
  explicit ModuleHolder(Head&& head, Tail&&... tail)
      : impl_(std::make_shared<Impl>(std::forward<Head>(head), std::forward<Tail>(tail)...)) {}
  /// Wraps an existing module.
  ModuleHolder(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}  // NOLINT

  /// Whether the holder holds a module.
  bool is_empty() const { return impl_ == nullptr; }
  explicit operator bool() const { return impl_ != nullptr; }
  /// Access to the module. Throws ValueError for an empty holder.
  Impl* operator->() const { return &checked(); }
  Impl& operator*() const { return checked(); }
  Impl* get() const { return impl_.get(); }
  /// The shared_ptr to the module.
  const std::shared_ptr<Impl>& ptr() const { return impl_; }

  /// Calls Impl::forward with the arguments. Throws ValueError for an empty holder.
  template <class... Args>
  decltype(auto) operator()(Args&&... args) const {
    return checked().forward(std::forward<Args>(args)...);
  }

 private:
  Impl& checked() const {
    VEIL_CHECK(impl_ != nullptr,
               "[ModuleHolder] accessing an empty module holder (constructed "
               "from nullptr and never assigned)");
    return *impl_;
  }

  std::shared_ptr<Impl> impl_;
};

}  // namespace veil::nn

/// Defines the holder `Name` for the module implementation `NameImpl` (like TORCH_MODULE):
/// `struct MlpImpl : veil::nn::Module {...}; VEIL_MODULE(Mlp);` then `Mlp model(784, 128, 10);`.
#define VEIL_MODULE(Name)                                     \
  class Name : public ::veil::nn::ModuleHolder<Name##Impl> {  \
   public:                                                    \
    using ::veil::nn::ModuleHolder<Name##Impl>::ModuleHolder; \
  }
