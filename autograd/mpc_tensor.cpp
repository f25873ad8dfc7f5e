#include "autograd/mpc_tensor.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/error.h"
#include "crypto/fixed_point.h"
#include "crypto/protocols/arithmetic.h"

namespace veil {

struct MpcTensor::Impl {
  Party* party = nullptr;
  bool secret = false;
  core::Tensor value;  // ring64: the public encoding or this party's share
  int frac_bits = 0;
  bool requires_grad = false;
  MpcTensor grad;
  std::shared_ptr<autograd::Node> grad_fn;
  std::function<crypto::AShare()> deferred;  // set until a deferred value is computed
};

namespace {

void check_ring(const core::Tensor& t, const char* op) {
  VEIL_CHECK(t.defined() && t.dtype() == core::DType::kRing64,
             "[{}] expected a ring64 tensor, got {}", op,
             t.defined() ? t.str() : std::string("an undefined tensor"));
}

}  // namespace

namespace {
// Accessors that never need a deferred value.
bool metadata_only(std::string_view op) {
  static constexpr std::string_view kOps[] = {"is_secret", "shape",         "numel",
                                              "dim",       "size",          "frac_bits",
                                              "party",     "requires_grad", "set_requires_grad",
                                              "grad",      "set_grad",      "zero_grad",
                                              "grad_fn",   "set_grad_fn",   "is_leaf"};
  return std::find(std::begin(kOps), std::end(kOps), op) != std::end(kOps);
}
}  // namespace

MpcTensor::Impl& MpcTensor::impl(const char* op) const {
  VEIL_CHECK(impl_ != nullptr, "[{}] the MpcTensor is undefined", op);
  if (impl_->deferred && !metadata_only(op)) {
    auto compute = std::move(impl_->deferred);
    impl_->deferred = nullptr;
    crypto::AShare s = compute();
    VEIL_INTERNAL_ASSERT(s.data.shape() == impl_->value.shape() && s.frac_bits == impl_->frac_bits,
                         "deferred value of shape {} does not match {}",
                         core::shape_str(s.data.shape()), core::shape_str(impl_->value.shape()));
    impl_->value = std::move(s.data);
  }
  return *impl_;
}

MpcTensor MpcTensor::deferred_secret(const core::Shape& shape,
                                     int frac_bits,
                                     Party& party,
                                     std::function<crypto::AShare()> compute) {
  MpcTensor out;
  out.impl_ = std::make_shared<Impl>();
  out.impl_->party = &party;
  out.impl_->secret = true;
  out.impl_->value = core::Tensor::zeros(shape, core::DType::kRing64);  // shape only
  out.impl_->frac_bits = frac_bits;
  out.impl_->deferred = std::move(compute);
  return out;
}

// ---- factories ----------------------------------------------------------------------------------

MpcTensor MpcTensor::from_public(const core::Tensor& values, Party& party) {
  VEIL_CHECK(values.defined(), "[from_public] expected a defined float tensor");
  return from_public_ring(party.encoder().encode(values, "from_public"), party.frac_bits(), party);
}

MpcTensor MpcTensor::from_public_ring(const core::Tensor& ring, int frac_bits, Party& party) {
  check_ring(ring, "from_public_ring");
  VEIL_CHECK(frac_bits >= 0 && frac_bits < 63, "[from_public_ring] frac_bits {} out of range",
             frac_bits);
  MpcTensor out;
  out.impl_ = std::make_shared<Impl>();
  out.impl_->party = &party;
  out.impl_->secret = false;
  out.impl_->value = ring;
  out.impl_->frac_bits = frac_bits;
  return out;
}

MpcTensor MpcTensor::from_secret(crypto::AShare share, Party& party) {
  check_ring(share.data, "from_secret");
  MpcTensor out;
  out.impl_ = std::make_shared<Impl>();
  out.impl_->party = &party;
  out.impl_->secret = true;
  out.impl_->value = std::move(share.data);
  out.impl_->frac_bits = share.frac_bits;
  return out;
}

MpcTensor MpcTensor::share(const core::Tensor& x, int src, const core::Shape& shape, Party& party) {
  return from_secret(crypto::share(party, x, src, shape), party);
}

MpcTensor MpcTensor::zeros(const core::Shape& shape, Party& party) {
  return from_public_ring(core::Tensor::zeros(shape, core::DType::kRing64), party.frac_bits(),
                          party);
}

// ---- value --------------------------------------------------------------------------------------

bool MpcTensor::is_secret() const {
  return impl("is_secret").secret;
}
const core::Shape& MpcTensor::shape() const {
  return impl("shape").value.shape();
}
int64_t MpcTensor::numel() const {
  return impl("numel").value.numel();
}
int64_t MpcTensor::dim() const {
  return impl("dim").value.dim();
}
int64_t MpcTensor::size(int64_t d) const {
  return impl("size").value.size(d);
}
int MpcTensor::frac_bits() const {
  return impl("frac_bits").frac_bits;
}
Party& MpcTensor::party() const {
  return *impl("party").party;
}

crypto::AShare MpcTensor::ashare() const {
  const Impl& i = impl("ashare");
  VEIL_CHECK(i.secret, "[ashare] expected a secret tensor, got a public one {}", str());
  return {i.value, i.frac_bits};
}

const core::Tensor& MpcTensor::public_ring() const {
  const Impl& i = impl("public_ring");
  VEIL_CHECK(!i.secret, "[public_ring] expected a public tensor, got a secret one {}", str());
  return i.value;
}

const core::Tensor& MpcTensor::ring() const {
  return impl("ring").value;
}

core::Tensor MpcTensor::reveal() const {
  const Impl& i = impl("reveal");
  if (!i.secret) {
    return crypto::FixedPointEncoder(i.frac_bits).decode(i.value);
  }
  return crypto::reveal_float(*i.party, {i.value, i.frac_bits});
}

core::Tensor MpcTensor::reveal_to(int rank) const {
  const Impl& i = impl("reveal_to");
  VEIL_CHECK(rank >= 0 && rank < i.party->world_size(), "[reveal_to] party {} out of range [0, {})",
             rank, i.party->world_size());
  const crypto::FixedPointEncoder enc(i.frac_bits);
  if (!i.secret) {
    return i.party->rank() == rank ? enc.decode(i.value) : core::Tensor();
  }
  core::Tensor opened = crypto::reveal_to(*i.party, {i.value, i.frac_bits}, rank);
  return opened.defined() ? enc.decode(opened) : core::Tensor();
}

void MpcTensor::encrypt(int src) {
  Impl& i = impl("encrypt");
  VEIL_CHECK(i.grad_fn == nullptr, "[encrypt] expected a leaf tensor, got the output of '{}'",
             i.grad_fn ? i.grad_fn->name : std::string());
  VEIL_CHECK(src >= 0 && src < i.party->world_size(),
             "[encrypt] source party {} out of range [0, {})", src, i.party->world_size());
  if (i.secret) {
    return;
  }
  crypto::AShare s = crypto::share_ring(*i.party, i.party->rank() == src ? i.value : core::Tensor(),
                                        src, i.value.shape(), i.frac_bits);
  i.value = std::move(s.data);
  i.secret = true;
}

MpcTensor MpcTensor::detach() const {
  const Impl& i = impl("detach");
  MpcTensor out;
  out.impl_ = std::make_shared<Impl>();
  out.impl_->party = i.party;
  out.impl_->secret = i.secret;
  out.impl_->value = i.value;
  out.impl_->frac_bits = i.frac_bits;
  return out;
}

void MpcTensor::assign_(const MpcTensor& value) {
  Impl& i = impl("assign_");
  const Impl& v = value.impl("assign_");
  VEIL_CHECK(i.grad_fn == nullptr, "[assign_] expected a leaf tensor, got the output of '{}'",
             i.grad_fn ? i.grad_fn->name : std::string());
  VEIL_CHECK(v.party == i.party, "[assign_] the value belongs to another party");
  // Replace (never mutate) the ring tensor: graphs that saved the old value keep it.
  i.secret = v.secret;
  i.value = v.value;
  i.frac_bits = v.frac_bits;
}

// ---- autograd -----------------------------------------------------------------------------------

bool MpcTensor::requires_grad() const {
  return impl("requires_grad").requires_grad;
}

MpcTensor& MpcTensor::set_requires_grad(bool requires_grad) {
  Impl& i = impl("set_requires_grad");
  VEIL_CHECK(i.grad_fn == nullptr,
             "[set_requires_grad] can only be set on leaf tensors, got the output of '{}'",
             i.grad_fn ? i.grad_fn->name : std::string());
  i.requires_grad = requires_grad;
  return *this;
}

bool MpcTensor::is_leaf() const {
  return impl("is_leaf").grad_fn == nullptr;
}

MpcTensor MpcTensor::grad() const {
  return impl("grad").grad;
}

void MpcTensor::set_grad(const MpcTensor& grad) {
  Impl& i = impl("set_grad");
  if (grad.defined()) {
    VEIL_CHECK(grad.shape() == i.value.shape(),
               "[set_grad] expected a gradient of shape {}, got {}",
               core::shape_str(i.value.shape()), core::shape_str(grad.shape()));
    VEIL_CHECK(&grad.party() == i.party, "[set_grad] the gradient belongs to another party");
  }
  i.grad = grad;
}

void MpcTensor::zero_grad() {
  impl("zero_grad").grad = MpcTensor();
}

const std::shared_ptr<autograd::Node>& MpcTensor::grad_fn() const {
  return impl("grad_fn").grad_fn;
}

void MpcTensor::set_grad_fn(std::shared_ptr<autograd::Node> node) {
  Impl& i = impl("set_grad_fn");
  i.grad_fn = std::move(node);
  i.requires_grad = i.grad_fn != nullptr || i.requires_grad;
}

void MpcTensor::backward(const MpcTensor& grad, bool retain_graph) const {
  autograd::run_backward(*this, grad, retain_graph);
}

// ---- convenience --------------------------------------------------------------------------------

MpcTensor MpcTensor::reshape(const core::Shape& shape) const {
  return veil::reshape(*this, shape);
}
MpcTensor MpcTensor::t() const {
  return veil::transpose(*this);
}
MpcTensor MpcTensor::sum() const {
  return veil::sum(*this);
}
MpcTensor MpcTensor::sum(int64_t dim, bool keepdim) const {
  return veil::sum(*this, dim, keepdim);
}
MpcTensor MpcTensor::mean() const {
  return veil::mean(*this);
}

std::string MpcTensor::str() const {
  if (!impl_) {
    return "MpcTensor(undefined)";
  }
  return fmt::format("MpcTensor({}, {}, frac {})", impl_->secret ? "secret" : "public",
                     core::shape_str(impl_->value.shape()), impl_->frac_bits);
}

}  // namespace veil
