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

}  // namespace veil::nn
