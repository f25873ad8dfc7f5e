// Differentiable elementary functions (autograd/elementary.h): each forward with its backward rule
// next to it (g is the gradient of the output, same shape as x). Backward rules run with grad
// mode off, so the ops they call (mul, neg, ...) are not recorded.

#include "autograd/elementary.h"

#include <cmath>
#include <cstdlib>
#include <functional>
#include <numbers>
#include <utility>
#include <vector>

#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/elementwise.h"
#include "core/error.h"
#include "core/ops.h"
#include "crypto/fixed_point.h"
#include "crypto/protocols/approx.h"
#include "crypto/protocols/nonlinear.h"
#include "crypto/protocols/range.h"
#include "crypto/protocols/trig.h"

namespace veil {

namespace {

using autograd::record;
using Grads = std::vector<MpcTensor>;
using Needs = std::vector<bool>;

Party& party_of(const MpcTensor& x, const char* op) {
  VEIL_CHECK(x.defined(), "[{}] expected a defined operand, got an undefined MpcTensor", op);
  return x.party();
}

// A secret operand must carry the party's frac_bits (the protocols assume it).
void check_secret_frac(const MpcTensor& x, const char* op) {
  if (x.is_secret()) {
    VEIL_CHECK(x.frac_bits() == x.party().frac_bits(),
               "[{}] expected a secret operand with frac_bits {}, got frac_bits {}", op,
               x.party().frac_bits(), x.frac_bits());
  }
}

MpcTensor secret(Party& p, crypto::AShare s) {
  return MpcTensor::from_secret(std::move(s), p);
}

// A public value decoded to float64.
core::Tensor decode(const MpcTensor& x) {
  return crypto::FixedPointEncoder(x.frac_bits()).decode(x.public_ring()).contiguous();
}

// Public path: f elementwise on the decoded value, encoded with the party's frac_bits. `valid`
// checks the domain; the message names the op and the domain, never a value.
MpcTensor public_map(const MpcTensor& x,
                     const char* op,
                     const std::function<double(double)>& f,
                     const std::function<bool(double)>& valid,
                     const char* domain) {
  Party& p = x.party();
  const core::Tensor v = decode(x);
  const double* pv = v.data<double>();
  for (int64_t i = 0; i < v.numel(); ++i) {
    VEIL_CHECK(valid(pv[i]), "[{}] expected public inputs {}, element {} is not", op, domain, i);
  }
  const core::Tensor out = core::map<double, double>(v, [&f](double a) { return f(a); });
  return MpcTensor::from_public_ring(p.encoder().encode(out, op), p.frac_bits(), p);
}

bool any_value(double) {
  return true;
}

// 1/x for x > 0 (log's backward): the positive grid (half the comparisons of the signed one).
MpcTensor positive_inverse(const MpcTensor& x) {
  Party& p = x.party();
  if (x.is_secret()) {
    const double lo = std::ldexp(1.0, -p.frac_bits());
    return secret(p, crypto::reciprocal(p, x.ashare(), std::make_pair(lo, std::ldexp(1.0, 24))));
  }
  return public_map(
      x, "log", [](double a) { return 1.0 / a; }, [](double a) { return a > 0; }, "> 0");
}

}  // namespace

MpcTensor exp(const MpcTensor& x) {
  // x: S -> e^x: S
  constexpr const char* kOp = "exp";
  Party& p = party_of(x, kOp);
  check_secret_frac(x, kOp);
  const MpcTensor out = x.is_secret()
                            ? secret(p, crypto::exp(p, x.ashare()))
                            : public_map(
                                  x, kOp, [](double a) { return std::exp(a); }, any_value, "");
  return record(kOp, out, {x}, [e = out.detach()](const MpcTensor& g, const Needs&) {
    return Grads{mul(g, e)};  // dx = g e^x
  });
}

MpcTensor log(const MpcTensor& x) {
  // x: S -> log x: S
  constexpr const char* kOp = "log";
  Party& p = party_of(x, kOp);
  check_secret_frac(x, kOp);
  const MpcTensor out = x.is_secret() ? secret(p, crypto::log(p, x.ashare()))
                                      : public_map(
                                            x, kOp, [](double a) { return std::log(a); },
                                            [](double a) { return a > 0; }, "> 0");
  return record(kOp, out, {x}, [xd = x.detach()](const MpcTensor& g, const Needs&) {
    return Grads{mul(g, positive_inverse(xd))};  // dx = g / x
  });
}

MpcTensor reciprocal(const MpcTensor& x) {
  // x: S -> 1/x: S
  constexpr const char* kOp = "reciprocal";
  Party& p = party_of(x, kOp);
  check_secret_frac(x, kOp);
  const MpcTensor out = x.is_secret() ? secret(p, crypto::reciprocal(p, x.ashare()))
                                      : public_map(
                                            x, kOp, [](double a) { return 1.0 / a; },
                                            [](double a) { return a != 0; }, "!= 0");
  return record(kOp, out, {x}, [y = out.detach()](const MpcTensor& g, const Needs&) {
    return Grads{neg(mul(mul(g, y), y))};  // dx = -g y^2
  });
}

MpcTensor div(const MpcTensor& x, const MpcTensor& y) {
  // x: Sx, y: Sy -> x / y: broadcast(Sx, Sy), recorded as mul(x, reciprocal(y))
  constexpr const char* kOp = "div";
  Party& p = party_of(x, kOp);
  VEIL_CHECK(&party_of(y, kOp) == &p, "[div] the operands belong to different parties");
  (void)core::broadcast_shapes(x.shape(), y.shape(), kOp);
  check_secret_frac(x, kOp);
  check_secret_frac(y, kOp);
  if (y.is_public()) {
    const core::Tensor v = decode(y);
    const double* pv = v.data<double>();
    for (int64_t i = 0; i < v.numel(); ++i) {
      VEIL_CHECK(pv[i] != 0, "[div] expected a public divisor without zeros, element {} is 0", i);
    }
  }
  return mul(x, reciprocal(y));
}

MpcTensor sqrt(const MpcTensor& x) {
  // x: S -> sqrt x: S; 1/sqrt x saved for the backward (free with a secret x)
  constexpr const char* kOp = "sqrt";
  Party& p = party_of(x, kOp);
  check_secret_frac(x, kOp);
  MpcTensor out;
  MpcTensor inv;  // secret: 1/sqrt(x) from the same normalization; public: computed in backward
  if (x.is_secret()) {
    const crypto::SqrtResult r = crypto::sqrt_and_inv_sqrt(p, x.ashare());
    out = secret(p, r.sqrt);
    inv = secret(p, r.inv_sqrt);
  } else {
    out = public_map(
        x, kOp, [](double a) { return std::sqrt(a); }, [](double a) { return a >= 0; }, ">= 0");
  }
  return record(kOp, out, {x}, [inv, xd = x.detach()](const MpcTensor& g, const Needs&) {
    // dx = g / (2 sqrt x)
    const MpcTensor r = inv.defined() ? inv
                                      : public_map(
                                            xd, "sqrt", [](double a) { return 1.0 / std::sqrt(a); },
                                            [](double a) { return a > 0; }, "> 0 for the gradient");
    return Grads{mul(g, mul(r, 0.5))};
  });
}

MpcTensor rsqrt(const MpcTensor& x) {
  // x: S -> 1/sqrt x: S
  constexpr const char* kOp = "rsqrt";
  Party& p = party_of(x, kOp);
  check_secret_frac(x, kOp);
  const MpcTensor out = x.is_secret() ? secret(p, crypto::inv_sqrt(p, x.ashare()))
                                      : public_map(
                                            x, kOp, [](double a) { return 1.0 / std::sqrt(a); },
                                            [](double a) { return a > 0; }, "> 0");
  return record(kOp, out, {x}, [y = out.detach()](const MpcTensor& g, const Needs&) {
    return Grads{mul(mul(g, mul(mul(y, y), y)), -0.5)};  // dx = -g y^3 / 2
  });
}

MpcTensor pow(const MpcTensor& x, int k) {
  // x: S -> x^k: S
  constexpr const char* kOp = "pow";
  Party& p = party_of(x, kOp);
  VEIL_CHECK(std::abs(k) <= 64, "[pow] expected |k| <= 64, got k = {}", k);
  check_secret_frac(x, kOp);
  MpcTensor out;
  MpcTensor inv;  // k < 0, secret: the 1/x the forward used
  if (x.is_secret()) {
    if (k >= 0) {
      out = secret(p, crypto::pow(p, x.ashare(), k));
    } else {
      inv = secret(p, crypto::reciprocal(p, x.ashare()));
      out = secret(p, crypto::pow(p, inv.ashare(), -k));
    }
  } else {
    out = public_map(
        x, kOp, [k](double a) { return std::pow(a, k); },
        [k](double a) { return k >= 0 || a != 0; }, "!= 0 for a negative exponent");
  }
  return record(kOp, out, {x},
                [k, inv, xd = x.detach(), y = out.detach()](const MpcTensor& g, const Needs&) {
                  // dx = g k x^(k-1)
                  if (k == 0) {
                    return Grads{MpcTensor::zeros(xd.shape(), xd.party())};
                  }
                  if (k == 1) {
                    return Grads{g};
                  }
                  MpcTensor d;  // x^(k-1)
                  if (xd.is_public()) {
                    d = public_map(
                        xd, "pow", [k](double a) { return std::pow(a, k - 1); }, any_value, "");
                  } else if (k > 1) {
                    d = secret(xd.party(), crypto::pow(xd.party(), xd.ashare(), k - 1));
                  } else {
                    d = mul(y, inv);  // x^k / x
                  }
                  return Grads{mul(mul(g, d), static_cast<double>(k))};
                });
}

namespace {
// sin and cos of x together: secret by crypto::sincos, public in float64.
std::pair<MpcTensor, MpcTensor> sin_cos(const MpcTensor& x, const char* op) {
  Party& p = party_of(x, op);
  check_secret_frac(x, op);
  if (x.is_secret()) {
    const crypto::SinCos sc = crypto::sincos(p, x.ashare());
    return {secret(p, sc.sin), secret(p, sc.cos)};
  }
  return {public_map(
              x, op, [](double a) { return std::sin(a); }, any_value, ""),
          public_map(
              x, op, [](double a) { return std::cos(a); }, any_value, "")};
}
}  // namespace

MpcTensor cos(const MpcTensor& x) {
  // x: S -> cos x: S; sin x saved
  auto [s, c] = sin_cos(x, "cos");
  return record("cos", c, {x}, [s = s](const MpcTensor& g, const Needs&) {
    return Grads{neg(mul(g, s))};  // dx = -g sin x
  });
}

MpcTensor sin(const MpcTensor& x) {
  // x: S -> sin x: S; cos x saved
  auto [s, c] = sin_cos(x, "sin");
  return record("sin", s, {x}, [c = c](const MpcTensor& g, const Needs&) {
    return Grads{mul(g, c)};  // dx = g cos x
  });
}

MpcTensor erf(const MpcTensor& x) {
  // x: S -> erf x: S; e^(-x^2) saved (secret: e^(-min(|x|, 4)^2) from the forward)
  constexpr const char* kOp = "erf";
  Party& p = party_of(x, kOp);
  check_secret_frac(x, kOp);
  MpcTensor out;
  MpcTensor gauss;
  if (x.is_secret()) {
    const crypto::ErfResult r = crypto::erf_with_gaussian(p, x.ashare());
    out = secret(p, r.value);
    gauss = secret(p, r.gaussian);
  } else {
    out = public_map(
        x, kOp, [](double a) { return std::erf(a); }, any_value, "");
    gauss = public_map(
        x, kOp, [](double a) { return std::exp(-a * a); }, any_value, "");
  }
  return record(kOp, out, {x}, [gauss](const MpcTensor& g, const Needs&) {
    return Grads{
        mul(g, mul(gauss, 2.0 / std::sqrt(std::numbers::pi)))};  // dx = g 2/sqrt(pi) e^-x^2
  });
}

}  // namespace veil
