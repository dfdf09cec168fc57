"""MATLAB / GNU Octave ``int32`` arithmetic, vectorised with numpy.

The official WIDER FACE ground truth stores face boxes as **int32**.  MATLAB
arithmetic that mixes an integer class with ``double`` returns the integer
class, so every step of ``boxoverlap.m`` that touches a ground-truth box is
rounded.  The rules reproduced here (MATLAB and Octave agree on them):

* ``double -> int32``: round to the nearest integer, halves **away from zero**
  (``2.5 -> 3``, ``-2.5 -> -3``; numpy's ``round`` would give ``2`` and
  ``-2``), saturate at ``intmin('int32') = -2^31`` / ``intmax = 2^31 - 1``,
  ``NaN -> 0`` (:func:`to_int32`);
* ``int32 op double`` and ``int32 op int32`` for ``+ - .*``: the exact result
  (computed in double in MATLAB; exact here in int64, which holds every
  product of two int32 values) rounded and saturated to int32
  (:func:`add`, :func:`sub`, :func:`mul`, :func:`add_double`);
* ``int32 ./ int32``: the quotient rounded to nearest, halves away from zero
  (``1/2 -> 1``, ``-3/2 -> -2``), computed exactly with integer remainders;
  ``x/0`` is ``intmax`` for ``x > 0``, ``intmin`` for ``x < 0``, ``0`` for
  ``0/0`` (:func:`divide`);
* ``max(int32, double)`` / ``min(int32, double)``: the double is converted to
  int32 first (Octave's rule; MATLAB compares first and converts the result,
  which gives the same value because rounding is monotone).

Values are carried as ``int64`` numpy arrays holding int32 values.
"""
from __future__ import annotations

import numpy as np

__all__ = ["INT32_MAX", "INT32_MIN", "add", "add_double", "divide", "mul", "saturate", "sub", "to_int32"]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def saturate(x: np.ndarray) -> np.ndarray:
    """Clip int64 values to the int32 range (MATLAB's saturating integer overflow)."""
    x = np.asarray(x, dtype=np.int64)
    if x.size and (x.min() < INT32_MIN or x.max() > INT32_MAX):
        return np.clip(x, INT32_MIN, INT32_MAX)
    return x


def to_int32(x) -> np.ndarray:
    """MATLAB ``int32(x)`` of doubles: round half away from zero, saturate, NaN -> 0 (as int64 values)."""
    x = np.asarray(x, dtype=np.float64)
    r = np.rint(x)  # halves to even ...
    with np.errstate(invalid="ignore"):
        tie = np.abs(x - r) == 0.5
    if tie.any():  # ... so move the halves away from zero (x +- 0.5 is exact at a half)
        r = np.where(tie, x + np.copysign(0.5, x), r)
    if r.size and not (np.all(r >= INT32_MIN) and np.all(r <= INT32_MAX)):  # also False for NaN
        r = np.clip(np.where(np.isnan(r), 0.0, r), INT32_MIN, INT32_MAX)
    return r.astype(np.int64)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``int32 + int32``."""
    return saturate(np.asarray(a, np.int64) + np.asarray(b, np.int64))


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``int32 - int32``."""
    return saturate(np.asarray(a, np.int64) - np.asarray(b, np.int64))


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``int32 .* int32`` (exact in int64, then saturated)."""
    return saturate(np.asarray(a, np.int64) * np.asarray(b, np.int64))


def add_double(a: np.ndarray, d) -> np.ndarray:
    """``int32 + double``: the sum computed in double, then converted with :func:`to_int32`."""
    return to_int32(np.asarray(a, np.int64).astype(np.float64) + np.asarray(d, dtype=np.float64))


def divide(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``int32 ./ int32``: exact quotient rounded half away from zero; saturating division by zero."""
    p = np.asarray(p, np.int64)
    q = np.asarray(q, np.int64)
    p, q = np.broadcast_arrays(p, q)
    if p.size and p.min() >= 0 and q.min() > 0:  # the usual case (overlaps): no signs, no zero
        z = p // q
        return saturate(z + (2 * (p - z * q) >= q))
    ap, aq = np.abs(p), np.abs(q)
    safe = np.where(aq == 0, 1, aq)
    z = ap // safe
    rem = ap - z * safe
    z = z + (2 * rem >= safe)
    z = np.where((p < 0) != (q < 0), -z, z)
    by_zero = np.where(p > 0, INT32_MAX, np.where(p < 0, INT32_MIN, 0))
    return saturate(np.where(aq == 0, by_zero, z))
