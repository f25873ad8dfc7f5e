#include "nn/sequential.h"

namespace veil::nn {

MpcTensor SequentialImpl::forward(const MpcTensor& x) {
  MpcTensor y = x;
  for (const Entry& e : entries_) {
    y = e.forward(y);
  }
  return y;
}

std::shared_ptr<Module> SequentialImpl::ptr(std::size_t i) const {
  VEIL_CHECK(i < entries_.size(), "[Sequential] index {} out of range for {} modules", i,
             entries_.size());
  return entries_[i].module;
}

void SequentialImpl::on_child_replaced(const std::string& name,
                                       const std::shared_ptr<Module>& module,
                                       const UnaryForward& forward) {
  VEIL_CHECK(forward != nullptr,
             "[replace_module] Sequential entry '{}' needs a module with forward(const MpcTensor&)",
             name);
  const auto kids = named_children();
  for (std::size_t i = 0; i < kids.size() && i < entries_.size(); ++i) {
    if (kids[i].first == name) {
      entries_[i] = {module, forward};
      return;
    }
  }
}

}  // namespace veil::nn
