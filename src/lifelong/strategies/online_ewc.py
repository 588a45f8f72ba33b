"""Online EWC: one running Fisher and one anchor.

Schwarz et al., "Progress & Compress: A scalable framework for continual learning", ICML 2018,
the online-EWC penalty of its compress phase: after task t, F* ← γ F* + F_t (one running
Fisher), with the penalty ½ ‖θ − θ*_{t}‖²_{γF*} to the latest weights only. Here the
penalty is λ Σ F* (θ − θ*)² with merge rule "decay"; the Fisher is EWC's estimator (true
Fisher, per-example, vectorised: see ``ewc``).

Hyper-parameters: lam (λ), gamma (γ ∈ (0, 1], default 1.0 — γ < 1 forgets old tasks' Fisher
geometrically), and EWC's fisher / per_sample / samples / batch_size.
"""

from __future__ import annotations

from ..registry import STRATEGIES
from .ewc import EWC


@STRATEGIES.register("online-ewc", "online EWC: one running Fisher F <- gamma F + F_t (Schwarz 2018)")
class OnlineEWC(EWC):
    """EWC with one decayed running Fisher and the latest weights as the only anchor."""

    search_space = {"lam": (1e2, 1e3, 1e4, 1e5), "gamma": (0.9, 1.0)}

    default_merge = "decay"

    def __init__(self, lam: float = 1000.0, gamma: float = 1.0, fisher: str = "true",
                 per_sample: bool = True, samples: int | None = None, batch_size: int = 128,
                 merge: str | None = None) -> None:
        super().__init__(lam, fisher, per_sample, samples, batch_size, merge, gamma)
