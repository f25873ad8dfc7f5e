#pragma once
// A forward + backward check for the shape, reduction and activation ops: the op runs under MPC
// for 2 and 3 parties with public, secret and mixed (first input secret, others public) inputs;
// loss = sum(op(x) * R) for a random R (secret when the inputs are secret) is backpropagated.
// The revealed output is compared with a float64 reference and the revealed gradients with the
// analytic float64 gradient of sum(ref(x) * R): given by the case, or, for affine ops, read off
// the reference exactly column by column (J e_k = ref(x + e_k) - ref(x)). Inputs are quantised
// to the fixed-point grid, so tolerances are pure truncation/approximation errors. Optionally the
// public forward is compared bit for bit with a fixed-point emulation of the algorithm.

#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/autograd/autograd_test_util.h"

namespace veil::tensorops_test {

using agtest::kUlp;
using agtest::Tensor;
using agtest::Vis;
using MV = std::vector<MpcTensor>;
using TV = std::vector<Tensor>;

struct OpCase {
  OpCase(std::string name_,
         TV inputs_,
         std::vector<bool> wants_,
         std::function<MpcTensor(const MV&)> op_,
         std::function<Tensor(const TV&)> ref_,
         double out_tol_,
         double grad_tol_,
         std::function<TV(const TV&, const Tensor&)> grad_ref_ = {})
      : name(std::move(name_)),
        inputs(std::move(inputs_)),
        wants(std::move(wants_)),
        op(std::move(op_)),
        ref(std::move(ref_)),
        out_tol(out_tol_),
        grad_tol(grad_tol_),
        grad_ref(std::move(grad_ref_)) {}

  std::string name;
  TV inputs;                // float64, on the fixed-point grid
  std::vector<bool> wants;  // which inputs require grad
  std::function<MpcTensor(const MV&)> op;
  std::function<Tensor(const TV&)> ref;  // float64 reference of op
  double out_tol = 0;
  double grad_tol = 0;
  // Analytic gradients of sum(ref(x) * r) with respect to every input; empty: the op is affine
  // and the gradient is read off the reference.
  std::function<TV(const TV&, const Tensor&)> grad_ref;
  // Tolerances for secret inputs (approximations), when different (< 0: same as above).
  double secret_out_tol = -1;
  double secret_grad_tol = -1;
  // Bit-exact fixed-point emulation of the public forward (decoded to float64), when given.
  std::function<Tensor(const TV&)> emulate;
};

inline Tensor q_uniform(const core::Shape& s, double lo, double hi, uint64_t seed) {
  return agtest::quantize(testing::uniform(s, lo, hi, seed));
}

/// Gradient of sum(ref(x) * r) for an affine ref, column by column.
inline TV affine_grads(const std::function<Tensor(const TV&)>& ref, const TV& xs, const Tensor& r) {
  const Tensor base = ref(xs);
  TV grads;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    Tensor g = Tensor::zeros(xs[i].shape(), core::DType::kFloat64);
    double* pg = g.data<double>();
    for (int64_t k = 0; k < g.numel(); ++k) {
      TV moved;
      for (const Tensor& x : xs) {
        moved.push_back(x.contiguous().clone());
      }
      moved[i].data<double>()[k] += 1.0;
      pg[k] = agtest::dot(core::sub(ref(moved), base), r);
    }
    grads.push_back(g);
  }
  return grads;
}

inline void check_case(const OpCase& c, int n, Vis vis) {
  INFO(c.name << ", " << n << " parties, " << agtest::vis_name(vis) << " inputs");
  const Tensor ref_out = c.ref(c.inputs);
  const Tensor r = q_uniform(ref_out.shape(), -1, 1, 99);
  const bool secret = vis != Vis::kPublic;
  // WHEN the op and loss = sum(op(x) * R) run under MPC and backward() is called
  const auto got = agtest::run(n, [&](Party& p) {
    MV xs;
    for (std::size_t i = 0; i < c.inputs.size(); ++i) {
      MpcTensor x = agtest::place(c.inputs[i], vis, i, p);
      x.set_requires_grad(c.wants[i]);
      xs.push_back(x);
    }
    const MpcTensor out = c.op(xs);
    const MpcTensor rw = vis == Vis::kSecret
                             ? MpcTensor::share(p.rank() == 0 ? r : Tensor(), 0, r.shape(), p)
                             : MpcTensor::from_public(r, p);
    sum(out * rw).backward();
    TV res{out.reveal()};
    std::vector<double> flags{out.is_secret() ? 1.0 : 0.0};
    for (std::size_t i = 0; i < xs.size(); ++i) {
      if (c.wants[i]) {
        res.push_back(xs[i].grad().reveal());
        flags.push_back(xs[i].grad().is_secret() ? 1.0 : 0.0);
      } else {
        flags.push_back(xs[i].grad().defined() ? 2.0 : 0.0);
      }
    }
    res.push_back(Tensor::from_vector(flags, {static_cast<int64_t>(flags.size())}));
    return res;
  });
  // THEN the forward matches the float64 reference (and, public, the fixed-point emulation)
  const double out_tol = secret && c.secret_out_tol >= 0 ? c.secret_out_tol : c.out_tol;
  const double grad_tol = secret && c.secret_grad_tol >= 0 ? c.secret_grad_tol : c.grad_tol;
  REQUIRE(got[0].shape() == ref_out.shape());
  CHECK(testing::max_abs_diff(got[0], ref_out) <= out_tol);
  if (!secret && c.emulate) {
    CHECK(testing::max_abs_diff(got[0], c.emulate(c.inputs)) == 0.0);
  }
  const std::vector<double> flags = got.back().to_vector<double>();
  CHECK(flags[0] == (secret ? 1.0 : 0.0));
  // AND the gradients match the analytic gradients of sum(ref(x) * R)
  const TV want = c.grad_ref ? c.grad_ref(c.inputs, r) : affine_grads(c.ref, c.inputs, r);
  std::size_t k = 1;
  for (std::size_t i = 0; i < c.inputs.size(); ++i) {
    INFO("input " << i);
    if (!c.wants[i]) {
      CHECK(flags[i + 1] == 0.0);
      continue;
    }
    REQUIRE(got[k].shape() == c.inputs[i].shape());
    CHECK(testing::max_abs_diff(got[k], want[i]) <= grad_tol);
    if (vis != Vis::kMixed) {
      CHECK(flags[i + 1] == (secret ? 1.0 : 0.0));
    }
    ++k;
  }
}

inline void check_all(const OpCase& c) {
  for (int n : {2, 3}) {
    for (Vis vis : {Vis::kPublic, Vis::kSecret, Vis::kMixed}) {
      check_case(c, n, vis);
    }
  }
}

/// The message of the exception fn throws inside an n-party run: "ValueError: ..." for a
/// ValueError, "other: ..." for another exception, "no exception" when none.
inline std::string error_of(const std::function<void(Party&)>& fn, int n = 2) {
  try {
    crypto::launch(testing::test_options(n), fn);
  } catch (const ValueError& e) {
    return std::string("ValueError: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("other: ") + e.what();
  }
  return "no exception";
}

// ---- fixed-point emulation (f = 16, floor truncation as the public ring path) ------------------

inline int64_t enc(double v) {
  const double s = std::ldexp(v, 16);
  return static_cast<int64_t>(s < 0 ? -std::floor(-s + 0.5) : std::floor(s + 0.5));
}
inline double dec(int64_t v) {
  return std::ldexp(static_cast<double>(v), -16);
}
/// floor(a b / 2^16) on the encodings (an arithmetic shift of the exact product; the test values
/// keep |a b| far below 2^63).
inline int64_t fmul(int64_t a, int64_t b) {
  return (a * b) >> 16;
}

}  // namespace veil::tensorops_test
