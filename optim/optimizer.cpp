#include "optim/optimizer.h"

#include "core/error.h"

namespace veil::optim {

Optimizer::Optimizer(std::vector<MpcTensor> params) : params_(std::move(params)) {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    VEIL_CHECK(params_[i].defined(), "[Optimizer] parameter {} is undefined", i);
  }
}

void Optimizer::zero_grad() {
  for (MpcTensor& p : params_) {
    p.zero_grad();
  }
}

}  // namespace veil::optim
