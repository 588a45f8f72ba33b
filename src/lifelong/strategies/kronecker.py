"""Kronecker-factored quadratic terms s·tr(ΔW̃ᵀ G ΔW̃ A) of a linear layer, in the form a step uses.

``kfac`` (``strategies/kfac.py``) keeps, per linear layer, factors A (in+1 square) and G (out square)
and an anchor W̃* = [W* b*]; each training step needs the value of the penalty and its gradient

    value = s · tr(ΔW̃ᵀ G ΔW̃ A) = s · (vec ΔW̃)ᵀ (A ⊗ G) vec ΔW̃,   gradient 2 s · G ΔW̃ A,   ΔW̃ = W̃ − W̃*.

``DenseTerm``: exactly that, two products of the full matrices per step (out²·in + out·in²
multiply-adds; ~24 ms for a 1024 × 785 layer on one CPU thread).

``EigenTerm``: the same quadratic in the factors' eigenbases, A = U diag(α) Uᵀ, G = V diag(γ) Vᵀ:

    value = s Σ_ij γ_i α_j C_ij²,   C = Vᵀ ΔW̃ U,   gradient 2 s · V (γαᵀ ∘ C) Uᵀ

with the eigen-directions whose eigenvalue is below ``tol`` × the factor's largest dropped (U and V
keep r_A and r_G columns). Every dropped pair has γ_i α_j < tol · γ_max α_max, so the truncated
matrix K_r satisfies 0 ⪯ A ⊗ G − K_r ⪯ tol · λ_max(A ⊗ G) · I: the value is exact up to
s · tol · λ_max · ‖ΔW̃‖²_F and the gradient up to 2 s · tol · λ_max · ‖ΔW̃‖_F (tested). A step then
costs about 2 · out · in · min(r_A, r_G) multiply-adds (ΔW̃ projected on the smaller basis first).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Gradient = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
"""(L, R, r): the weight gradient is L @ R and the bias gradient L @ r."""


@dataclass
class DenseTerm:
    """s · tr(ΔW̃ᵀ G ΔW̃ A) with the full factors (``scaled_g`` = s · G)."""

    scaled_g: torch.Tensor
    a: torch.Tensor
    anchor: torch.Tensor

    def evaluate(self, augmented_weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(value, ∂value/∂W̃ / 2) at W̃ = ``augmented_weight``."""
        d = augmented_weight - self.anchor
        gda = self.scaled_g @ d @ self.a
        return (d * gda).sum(), gda


@dataclass
class EigenTerm:
    """s · Σ γ_i α_j (Vᵀ ΔW̃ U)²_ij over the kept eigen-directions (see the module's docstring)."""

    v: torch.Tensor          # out × r_G: G's kept eigenvectors
    u_w: torch.Tensor        # in × r_A: A's kept eigenvectors, the rows of W's columns
    u_b: torch.Tensor        # r_A: their row of the bias column
    weights: torch.Tensor    # r_G × r_A: s · γ_i α_j
    projected: torch.Tensor  # W* projected once: Vᵀ W* (left_first) or W* U_w
    anchor_b: torch.Tensor   # b*
    left_first: bool         # project W on V first: the cheaper order when r_G is small

    @classmethod
    def build(cls, a: torch.Tensor, g: torch.Tensor, anchor: torch.Tensor, scale: float, tol: float,
              left_first: bool | None = None) -> EigenTerm | None:
        """The term of factors ``a``, ``g`` around ``anchor`` (W̃*), eigen-directions below
        ``tol`` × the largest eigenvalue of their factor dropped; None if a factor is zero.
        ``left_first`` None: the order with fewer multiply-adds per step."""
        alpha, u = torch.linalg.eigh(a)
        gamma, v = torch.linalg.eigh(g)
        if alpha[-1] <= 0 or gamma[-1] <= 0:
            return None
        keep_a, keep_g = alpha >= tol * alpha[-1], gamma >= tol * gamma[-1]
        u, v = u[:, keep_a], v[:, keep_g].contiguous()
        weights = scale * gamma[keep_g, None] * alpha[None, keep_a]
        u_w, anchor_w = u[:-1].contiguous(), anchor[:, :-1].contiguous()
        (out, r_g), (inputs, r_a) = v.shape, u_w.shape
        if left_first is None:
            left_first = r_g * inputs * (out + r_a) < out * r_a * (inputs + r_g)  # multiply-adds per step
        projected = v.T @ anchor_w if left_first else anchor_w @ u_w  # as ``evaluate`` projects W
        return cls(v, u_w, u[-1].contiguous(), weights, projected, anchor[:, -1].contiguous(), left_first)

    def evaluate(self, weight: torch.Tensor, bias: torch.Tensor | None,
                 grad_scale: float) -> tuple[torch.Tensor, Gradient]:
        """(value, ``grad_scale`` / 2 × its gradient as a ``Gradient``) at W = ``weight``, b = ``bias``.
        W* enters projected (Vᵀ ΔW = Vᵀ W − Vᵀ W*, likewise ΔW U_w): the same product of the same
        shapes as W's, so the value is exactly 0 at the anchor, with no pass over ΔW per step."""
        db = None if bias is None else bias - self.anchor_b
        if self.left_first:                          # C = (Vᵀ W − Vᵀ W*) U_w + (Vᵀ Δb) u_bᵀ
            z = self.v.T @ weight
            c = z.sub_(self.projected) @ self.u_w
            if db is not None:
                c.addr_(self.v.T @ db, self.u_b)
        else:                                        # C = Vᵀ (W U_w − W* U_w + Δb u_bᵀ)
            y = (weight @ self.u_w).sub_(self.projected)
            if db is not None:
                y.addr_(db, self.u_b)
            c = self.v.T @ y
        sc = self.weights * c
        value = (sc * c).sum()
        sc.mul_(grad_scale)
        if self.left_first:                          # V · ((γαᵀ ∘ C) Uᵀ)
            return value, (self.v, sc @ self.u_w.T, sc @ self.u_b)
        return value, (self.v @ sc, self.u_w.T, self.u_b)  # (V (γαᵀ ∘ C)) · Uᵀ
