"""Mean and 95% confidence interval over seeds, and the paired t-test (Student's t), without SciPy
at run time."""

from __future__ import annotations

import math
from collections.abc import Sequence

# t_{0.975, df} for df = 1..30 (two-sided 95%), from the standard tables.
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
         2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
         2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
         2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)
_Z975 = 1.959964


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom.

    Exact table for df ≤ 30; beyond, the Cornish–Fisher expansion around the normal quantile
    (error < 1e-4 for df > 30).
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% CI) = (x̄, t_{0.975,n−1} · s/√n); half-width 0 for n = 1."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = math.fsum(values) / n
    if n == 1:
        return mean, 0.0
    s = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t_quantile_975(n - 1) * s / math.sqrt(n)


def t_cdf(t: float, df: int) -> float:
    """P(T ≤ t) for Student's t with integer ``df`` ≥ 1, exactly (Abramowitz & Stegun 26.7.3–4).

    With θ = atan(t/√df), A = P(|T| < |t|) is, for odd df,
    (2/π)(θ + sin θ (cos θ + (2/3) cos³θ + … + (2·4…(df−3))/(1·3…(df−2)) cos^{df−2}θ)),
    and for even df, sin θ (1 + (1/2) cos²θ + … + (1·3…(df−3))/(2·4…(df−2)) cos^{df−2}θ);
    the CDF is (1 + A)/2 for t ≥ 0 and (1 − A)/2 below."""
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"degrees of freedom must be an integer >= 1, got {df!r}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    theta = math.atan(abs(t) / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:
        term, total = math.cos(theta), 0.0
        for k in range(1, (df - 1) // 2 + 1):  # cos θ, (2/3) cos³θ, (2·4)/(3·5) cos⁵θ, …
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
        area = 2 / math.pi * (theta + s * total) if df > 1 else 2 / math.pi * theta
    else:
        term, total = 1.0, 0.0
        for k in range(1, df // 2 + 1):  # 1, (1/2) cos²θ, (1·3)/(2·4) cos⁴θ, …
            total += term
            term *= c2 * (2 * k - 1) / (2 * k)
        area = s * total
    return 0.5 + area / 2 if t >= 0 else 0.5 - area / 2


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Two-sided paired t-test of a − b over pairs (seeds): (mean difference, half-width of its 95%
    CI, p-value). t = d̄ / (s_d/√n) with n − 1 degrees of freedom; needs n ≥ 2 pairs. Identical
    differences (s_d = 0): p = 1 when they are all 0, else 0."""
    if len(a) != len(b):
        raise ValueError(f"a paired test needs as many values on each side, got {len(a)} and {len(b)}")
    if len(a) < 2:
        raise ValueError("a paired test needs at least 2 pairs")
    d = [x - y for x, y in zip(a, b)]
    mean, half = mean_ci(d)
    n = len(d)
    s = math.sqrt(math.fsum((v - mean) ** 2 for v in d) / (n - 1))
    if s == 0 or s < 1e-12 * max(1.0, abs(mean)):
        return mean, half, 1.0 if mean == 0 else 0.0
    t = mean / (s / math.sqrt(n))
    return mean, half, min(1.0, 2 * t_cdf(-abs(t), n - 1))
