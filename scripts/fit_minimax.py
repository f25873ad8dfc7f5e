#!/usr/bin/env python3
"""Minimax polynomial coefficients for the approximations in crypto/protocols/approx.cpp.

Runs the Remez exchange on a dense grid and prints the coefficients in the monomial basis of
t in [-1, 1], with the maximum error, the Chebyshev interpolant's error for comparison and the
sum of |c_k| (which bounds the error added by encoding the coefficients in fixed point).

  python3 scripts/fit_minimax.py sigmoid --clamp 12 --degree 12

sigmoid: g(t) = sigmoid((t + 1) * clamp / 2), i.e. sigmoid(z) for z = clamp (t + 1) / 2 in
[0, clamp]. Needs numpy only.
"""
import argparse

import numpy as np
from numpy.polynomial import chebyshev as cheb
from numpy.polynomial import polynomial as poly


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
    parser.add_argument("function", choices=["sigmoid"])
    parser.add_argument("--clamp", type=float, default=12.0)
    parser.add_argument("--degree", type=int, default=12)
    args = parser.parse_args()

    def f(t):
        return 1.0 / (1.0 + np.exp(-(t + 1.0) * args.clamp / 2.0))

    coeffs, err = remez(f, args.degree)
    grid = np.linspace(-1.0, 1.0, 100001)
    interp = cheb.cheb2poly(cheb.chebinterpolate(f, args.degree))
    interp_err = float(np.max(np.abs(poly.polyval(grid, interp) - f(grid))))
    print(f"minimax error {err:.3e} (Chebyshev interpolant {interp_err:.3e}); "
          f"beyond the clamp {np.exp(-args.clamp):.1e}; sum |c_k| {np.sum(np.abs(coeffs)):.3f}")
    print(", ".join(repr(float(c)) for c in coeffs))


if __name__ == "__main__":
    main()
