#pragma once
// Sequential: a chain of modules, each taking and returning one MpcTensor. Type-erased: any module
// holder whose Impl has `MpcTensor forward(const MpcTensor&)` can be pushed. Children are named
// "0", "1", ... (or a given name), so parameters read "0.weight", "2.bias", ...

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/mpc_tensor.h"
#include "nn/module.h"

namespace veil::nn {

/// A module holder whose module maps one MpcTensor to one MpcTensor.
template <class H>
concept UnaryModuleHolder = requires(const std::decay_t<H>& h, const MpcTensor& x) {
  typename std::decay_t<H>::ImplType;
  { h.ptr() } -> std::convertible_to<std::shared_ptr<Module>>;
  { h->forward(x) } -> std::convertible_to<MpcTensor>;
};

/// Applies its modules in order.
class SequentialImpl : public Module {
 public:
  /// An empty chain (forward returns its input).
  SequentialImpl() = default;
  /// The given modules, in order: Sequential(Linear(784, 128), ReLU(), Linear(128, 10)).
  template <class... Holders>
  requires(sizeof...(Holders) > 0 &&
           (UnaryModuleHolder<Holders> && ...)) explicit SequentialImpl(Holders&&... holders) {
    (push_back(std::forward<Holders>(holders)), ...);
  }

  /// Appends a module named after its position ("0", "1", ...). Throws ValueError for an empty
  /// holder.
  template <UnaryModuleHolder Holder>
  void push_back(Holder holder) {
    push_back(std::to_string(entries_.size()), std::move(holder));
  }
  /// Appends a module under `name`. Throws ValueError for a bad or duplicate name or an empty
  /// holder.
  template <UnaryModuleHolder Holder>
  void push_back(std::string name, Holder holder) {
    auto impl = holder.ptr();
    register_module(std::move(name), holder);
    entries_.push_back({impl, [impl](const MpcTensor& x) {
                          return MpcTensor(impl->forward(x));
                        }});
  }

  /// x -> m_k(... m_1(m_0(x))).
  MpcTensor forward(const MpcTensor& x);
  /// Number of modules.
  std::size_t size() const { return entries_.size(); }
  /// The i-th module. Throws ValueError when i >= size().
  std::shared_ptr<Module> ptr(std::size_t i) const;

 protected:
  /// Keeps forward() in step with Module::replace_module: the replaced position runs the new
  /// module. Throws ValueError when it has no forward(const MpcTensor&).
  void on_child_replaced(const std::string& name,
                         const std::shared_ptr<Module>& module,
                         const UnaryForward& forward) override;

 private:
  struct Entry {
    std::shared_ptr<Module> module;
    std::function<MpcTensor(const MpcTensor&)> forward;
  };
  std::vector<Entry> entries_;
};

VEIL_MODULE(Sequential);

}  // namespace veil::nn
