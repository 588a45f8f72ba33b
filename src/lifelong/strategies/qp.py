"""A small exact solver for GEM's dual quadratic program (no ``quadprog`` dependency).

GEM (Lopez-Paz & Ranzato 2017, eq. 10–11) projects the gradient by solving, over one variable
per past task,

    min_v  ½ vᵀ P v + qᵀ v    subject to  v ≥ lower,        P = G Gᵀ,  q = G g,

and then uses g̃ = Gᵀ v* + g. The problem is tiny (T ≤ a few dozen variables), so we solve it
exactly with the Lawson–Hanson active-set method written for a quadratic objective (the same
method as NNLS, with ``P`` and ``q`` in place of ``AᵀA`` and ``−Aᵀb``). The bound ``v ≥ lower``
is handled by the change of variables ``v = u + lower``, ``u ≥ 0``.
"""

from __future__ import annotations

import torch


def solve_nonneg_qp(
    P: torch.Tensor,
    q: torch.Tensor,
    lower: float = 0.0,
    tol: float = 1e-10,
    max_iter: int | None = None,
) -> torch.Tensor:
    """Exact minimiser of ``½ vᵀPv + qᵀv`` subject to ``v ≥ lower`` (``P`` symmetric PD).

    Computed in float64 on the CPU; the result has ``q``'s dtype and device.
    """
    P64 = P.detach().to("cpu", torch.float64)
    q64 = q.detach().to("cpu", torch.float64)
    n = q64.shape[0]
    if P64.shape != (n, n):
        raise ValueError(f"P must be ({n}, {n}), got {tuple(P64.shape)}")
    if lower:
        q64 = q64 + P64 @ torch.full((n,), float(lower), dtype=torch.float64)
    u = _active_set(P64, q64, tol, max_iter or 10 * n + 10)
    return (u + lower).to(q.dtype).to(q.device)


def _active_set(P: torch.Tensor, q: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
    """Lawson–Hanson: grow the free set with the most violated variable, keep iterates feasible."""
    n = q.shape[0]
    v = torch.zeros(n, dtype=torch.float64)
    free = torch.zeros(n, dtype=torch.bool)
    scale = tol * max(1.0, float(q.abs().max()) if n else 1.0)
    for _ in range(max_iter):
        w = -(P @ v + q)  # minus the gradient: positive where increasing v lowers the objective
        candidates = torch.where(~free, w, torch.full_like(w, -torch.inf))
        if n == 0 or float(candidates.max()) <= scale:
            break
        free[int(candidates.argmax())] = True
        for _ in range(max_iter):
            s = torch.zeros(n, dtype=torch.float64)
            idx = free.nonzero().squeeze(1)
            s[idx] = _solve(P[idx][:, idx], -q[idx])
            if bool((s[idx] > 0).all()):
                v = s
                break
            blocking = free & (s <= 0)
            ratios = v[blocking] / (v[blocking] - s[blocking])
            alpha = float(ratios.min()) if ratios.numel() else 0.0
            v = v + alpha * (s - v)
            free &= v > tol
            v = torch.where(free, v, torch.zeros_like(v))
    return v


def _solve(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``A⁻¹b``; least squares when ``A`` is singular (e.g. two identical past gradients)."""
    solution, info = torch.linalg.solve_ex(A, b)
    if int(info) == 0 and bool(torch.isfinite(solution).all()):
        return solution
    return torch.linalg.lstsq(A, b.unsqueeze(1), driver="gelsd").solution.squeeze(1)
