#!/usr/bin/env python3
"""Minimax polynomial coefficients for the approximations in crypto/protocols/approx.cpp.

Runs the Remez exchange on a dense grid and prints the coefficients in the monomial basis of
t in [-1, 1], with the maximum error, the Chebyshev interpolant's error for comparison and the
sum of |c_k| (which bounds the error added by encoding the coefficients in fixed point).

  python3 scripts/fit_minimax.py sigmoid --clamp 12 --degree 12
  python3 scripts/fit_minimax.py erf --clamp 4 --degree 10
  python3 scripts/fit_minimax.py gauss --clamp 4 --degree 12
  python3 scripts/fit_minimax.py gelu_tail --clamp 5 --degree 12
  python3 scripts/fit_minimax.py gelu_tail_slope --clamp 5 --degree 12

Each function F(z) is fitted on z in [0, clamp] as a polynomial in t = 2 z / clamp - 1:
sigmoid(z), erf(z), e^(-z^2), h(z) = z Phi(-z) (gelu(x) = relu(x) - h(|x|)) and
h'(z) = Phi(-z) - z phi(z). Needs numpy only.
"""
import argparse
import math

import numpy as np
from numpy.polynomial import chebyshev as cheb
from numpy.polynomial import polynomial as poly


_erf = np.vectorize(math.erf)


def _phi_upper(z):  # Phi(-z)
    return 0.5 * (1.0 - _erf(z / math.sqrt(2.0)))


def _density(z):  # phi(z)
    return np.exp(-z * z / 2.0) / math.sqrt(2.0 * math.pi)


FUNCTIONS = {
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "erf": _erf,
    "gauss": lambda z: np.exp(-z * z),
    "gelu_tail": lambda z: z * _phi_upper(z),
    "gelu_tail_slope": lambda z: _phi_upper(z) - z * _density(z),
}


def remez(f, degree, grid_points=200001, iterations=40):
    """Best uniform approximation of f on [-1, 1] by a polynomial of the given degree."""
    grid = np.linspace(-1.0, 1.0, grid_points)
    # start from the Chebyshev extrema
    ref = np.cos(np.pi * np.arange(degree + 2) / (degree + 1))[::-1]
    coeffs = None
    err = None
    for _ in range(iterations):
        system = np.hstack([np.vander(ref, degree + 1, increasing=True),
                            ((-1.0) ** np.arange(degree + 2))[:, None]])
        coeffs = np.linalg.solve(system, f(ref))[:-1]
        err = poly.polyval(grid, coeffs) - f(grid)
        # one extremum of |err| per run of equal sign
        extrema = []
        start = 0
        sign = np.sign(err)
        for i in range(1, grid_points + 1):
            if i == grid_points or sign[i] != sign[start]:
                run = np.arange(start, i)
                extrema.append(run[np.argmax(np.abs(err[run]))])
                start = i
        extrema = np.array(extrema)
        while len(extrema) > degree + 2:
            extrema = extrema[1:] if abs(err[extrema[0]]) < abs(err[extrema[-1]]) else extrema[:-1]
        if len(extrema) < degree + 2:
            break
        ref = grid[extrema]
    return coeffs, float(np.max(np.abs(err)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("function", choices=sorted(FUNCTIONS))
    parser.add_argument("--clamp", type=float, default=12.0)
    parser.add_argument("--degree", type=int, default=12)
    args = parser.parse_args()

    def f(t):
        return FUNCTIONS[args.function]((t + 1.0) * args.clamp / 2.0)

    coeffs, err = remez(f, args.degree)
    grid = np.linspace(-1.0, 1.0, 100001)
    interp = cheb.cheb2poly(cheb.chebinterpolate(f, args.degree))
    interp_err = float(np.max(np.abs(poly.polyval(grid, interp) - f(grid))))
    print(f"minimax error {err:.3e} (Chebyshev interpolant {interp_err:.3e}); "
          f"F(clamp) = {float(FUNCTIONS[args.function](np.array(args.clamp))):.3e}; "
          f"sum |c_k| {np.sum(np.abs(coeffs)):.3f}")
    print(", ".join(repr(float(c)) for c in coeffs))


if __name__ == "__main__":
    main()
