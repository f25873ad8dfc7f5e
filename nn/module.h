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
#include <functional>
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

  // ---- PyTorch layouts and fine-tuning (models/weights.h reads and writes PyTorch files) --------

  /// Converts the value of this module's own parameter or buffer `name` (its local name, e.g.
  /// "weight", not "fc.weight") from veil's layout to PyTorch's. `value` is a plaintext tensor
  /// (float64 or int64) of the registered shape; the result may be a view of it. The default is
  /// the identity; LinearImpl transposes its weight ([in, out] -> [out, in]). Override it in a
  /// module whose parameters are stored differently from its PyTorch counterpart.
  virtual core::Tensor to_torch_layout(const std::string& name, const core::Tensor& value) const;
  /// The inverse of to_torch_layout: a tensor in PyTorch's layout (any dtype) -> veil's layout.
  /// Shapes are not checked here (models::load_safetensors_into checks them first).
  virtual core::Tensor from_torch_layout(const std::string& name, const core::Tensor& value) const;

  /// Freezes (false) or unfreezes (true) every parameter of this module and of its descendants:
  /// sets requires_grad on each, public or secret. Buffers are untouched. Gradients already
  /// accumulated are kept (PyTorch's semantics; call zero_grad() to drop them). A frozen public
  /// layer applied to a secret input costs only public·secret products (no Beaver triple) and
  /// its backward computes no weight gradient. Returns *this. No communication.
  Module& requires_grad_(bool requires_grad = true);
  /// named_parameters() restricted to those that require grad (in the same order).
  std::vector<std::pair<std::string, MpcTensor>> named_trainable_parameters(
      bool recurse = true) const;
  /// The handles of named_trainable_parameters(): what to give an optimizer when fine-tuning.
  std::vector<MpcTensor> trainable_parameters(bool recurse = true) const;

  /// The descendant at the dotted path `target` ("features.0"; "" is this module). Throws
  /// ValueError "[get_submodule] ..." naming the first unknown component and listing the
  /// children available there.
  std::shared_ptr<Module> get_submodule(const std::string& target) const;

  /// Replaces the registered submodule at the dotted path `name` (e.g. "fc", "classifier.2") by
  /// `holder`, at the same position in the registration order, so named_parameters() keeps its
  /// order and the new module's parameters get the old dotted prefix ("fc.weight"). Containers
  /// follow: a Sequential then runs the new module at that position (it must have
  /// forward(const MpcTensor&)), ModuleList / ModuleDict return it. A model that also keeps the
  /// child in a member assigns the result: `fc = replace_module("fc", nn::Linear(512, 10));`.
  /// Throws ValueError "[replace_module] ..." for an unknown name (listing the children), an
  /// empty holder, or a module that would contain itself; the module is unchanged then.
  template <class Holder>
  requires requires(const Holder& h) {
    typename Holder::ImplType;
    { h.ptr() } -> std::convertible_to<std::shared_ptr<Module>>;
  }
  Holder replace_module(const std::string& name, Holder holder) {
    replace_descendant(name, holder.ptr(), unary_forward_of(holder.ptr()));
    return holder;
  }
  /// Same for a module given as a shared_ptr.
  template <std::derived_from<Module> M>
  std::shared_ptr<M> replace_module(const std::string& name, std::shared_ptr<M> module) {
    replace_descendant(name, module, unary_forward_of(module));
    return module;
  }

  /// A module's forward as a function of one MpcTensor (empty when it has no such forward).
  using UnaryForward = std::function<MpcTensor(const MpcTensor&)>;

 protected:
  /// Called by replace_module on the parent before its child `name` is swapped for `module`
  /// (`forward`: the new module's unary forward, or empty). Containers that keep their own list
  /// of children (Sequential, ModuleList, ModuleDict) override it to stay in step; throwing
  /// leaves everything unchanged. The default does nothing.
  virtual void on_child_replaced(const std::string& name,
                                 const std::shared_ptr<Module>& module,
                                 const UnaryForward& forward);

 private:
  template <class M>
  static UnaryForward unary_forward_of(const std::shared_ptr<M>& module) {
    if constexpr (requires(M & m, const MpcTensor& x) {
                    { m.forward(x) } -> std::convertible_to<MpcTensor>;
                  }) {
      if (module == nullptr) {
        return {};
      }
      return [module](const MpcTensor& x) {
        return MpcTensor(module->forward(x));
      };
    } else {
      return {};
    }
  }
  void replace_descendant(const std::string& name,
                          std::shared_ptr<Module> module,
                          const UnaryForward& forward);

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
