"""Kronecker-factored Laplace penalty: EWC without the diagonal (``kfac``).

Ritter, Botev & Barber, "Online Structured Laplace Approximations for Overcoming Catastrophic
Forgetting", NeurIPS 2018 (§3, Eq. 7): the quadratic penalty of EWC with each linear layer's block
of the Fisher approximated by a Kronecker product (K-FAC; Martens & Grosse, ICML 2015, §3):

    F_layer ≈ A ⊗ G,   A = E[ã ãᵀ],   G = E[g gᵀ]

with ã the layer's input with a 1 appended (the bias is one more input column of W̃ = [W b]) and
g = ∂ log p(ŷ ∣ x)/∂s the gradient of the log-likelihood with respect to the layer's output s.
Then (vec ΔW̃)ᵀ (A ⊗ G) vec ΔW̃ = tr(ΔW̃ᵀ G ΔW̃ A), and the penalty after tasks 1..t is

    λ Σ_tasks Σ_layers tr(ΔW̃_kᵀ G_k ΔW̃_k A_k),   ΔW̃_k = W̃ − W̃*_k

one term per task with its own anchor W̃*_k (``form="per_task"``, the default: the sum of
Kronecker products is kept exact, not merged into one product), gradient 2λ Σ_k G_k ΔW̃_k A_k.
Where EWC keeps only the diagonal of the per-example Fisher, this keeps the correlations between a
layer's weights; it costs two matrix products per layer, task and training step, so it grows with
the tasks learned.

``form="merged"``: one (A, G, anchor) per layer, whatever the number of tasks. The paper's online
Laplace recursion (§2–3) adds each task's curvature to the running precision and re-anchors at
the new mode: Λ_t = Λ_{t−1} + H_t, μ_t = the weights after task t. With H_k ≈ A_k ⊗ G_k per layer,
Λ_T = Σ_k A_k ⊗ G_k is a sum of Kronecker products, not one; the merged form replaces it by

    Σ_k A_k ⊗ G_k ≈ (1/T)(Σ_k A_k) ⊗ (Σ_k G_k) = T · Ā ⊗ Ḡ,   Ā, Ḡ the running means of the tasks' factors

(our deviation from the exact sum), so the penalty is λ T tr(ΔW̃ᵀ Ḡ ΔW̃ Ā), ΔW̃ = W̃ − W̃*_T. The
scale is right: for T equal factors it is Σ_k A ⊗ G exactly, and it is T times the K-FAC
approximation of the Fisher of the T tasks' data pooled, each task weighted equally (A and G taken
independent across tasks, as K-FAC takes them within one); the error is
Σ_k A_k ⊗ G_k − T Ā ⊗ Ḡ = (1/2T) Σ_jk (A_j − A_k) ⊗ (G_j − G_k).
The state holds Ā, Ḡ, the latest anchor and the count T per layer. Each step works in the factors'
eigenbases with the eigen-directions below ``tol`` × their factor's largest eigenvalue dropped
(``kronecker.EigenTerm``: the dropped part of T Ā ⊗ Ḡ is below tol × its largest eigenvalue in every
direction, so value and gradient are exact up to that bound; tol = 0: exact products).

Hyper-parameters:
  lam      λ ≥ 0 (default from the search on rotated MNIST's validation split, docs/regularisation.md)
  fisher   "true" (default): ŷ sampled from the model (the Fisher); "empirical": the data's labels
  samples  examples of the task for A and G (None: all), a seeded subset
  form     "per_task" (default) or "merged" (above)
  tol      relative eigenvalue threshold in [0, 1) (None: 0 per task, ``MERGED_TOL`` merged)

Every trainable parameter must belong to an ``nn.Linear`` layer (MLPs); other layers (a CNN's
convolutions) need their own factors and are refused — use ``ewc`` there. Factors use the
task-masked logits, so multi-head streams work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_count, check_number
from ..data.streams import Task
from ..errors import LifelongError
from ..models.modes import eval_mode
from ..registry import STRATEGIES
from .base import Penalty, Strategy, TrainFunction
from .gradient_stats import outside_linear
from .importance import estimation_sample, trainable
from .kronecker import DenseTerm, EigenTerm

FISHER_KINDS = ("true", "empirical")
FORMS = ("per_task", "merged")
MERGED_TOL = 3e-4
"""``tol`` of the merged form unless given (docs/regularisation.md: its time and ACC)."""
CHUNK = 500
Factors = dict[str, torch.Tensor]
"""Linear layer's module name → a tensor (A, G or an anchor W̃*)."""


def linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """The model's Linear layers that have trainable weights, by module name; refuses a model with
    trainable parameters anywhere else."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.weight.requires_grad}
    name = outside_linear(layers, trainable(model))
    if name is not None:
        raise LifelongError(f"kfac factors the Fisher of nn.Linear layers only, but the trainable "
                            f"parameter {name!r} belongs to another layer; use ewc for this model")
    return layers


def add_product(param: torch.Tensor | None, left: torch.Tensor, right: torch.Tensor) -> None:
    """``param.grad`` += left @ right, as a new tensor (``Penalty``: a held ``.grad`` stays valid)."""
    if param is None or not param.requires_grad:
        return
    if param.grad is None:
        param.grad = left @ right
    else:
        param.grad = (torch.addmm if right.dim() == 2 else torch.addmv)(param.grad, left, right)


def augmented(layer: nn.Linear) -> torch.Tensor:
    """W̃ = [W b] (out × in+1); a layer without bias gets a zero column."""
    bias = layer.bias if layer.bias is not None else torch.zeros_like(layer.weight[:, 0])
    return torch.cat([layer.weight, bias[:, None]], 1)


@STRATEGIES.register("kfac", "EWC with a Kronecker-factored Fisher per linear layer (Ritter 2018)")
class KroneckerLaplace(Strategy):
    """λ Σ_layers tr(ΔW̃ᵀ G ΔW̃ A): one (A, G, anchor) per task and linear layer (``per_task``),
    or one per layer, merged across tasks (``merged``)."""

    search_space = {"lam": (1.0, 10.0, 100.0, 1000.0)}


    def __init__(self, lam: float = 10.0, fisher: str = "true", samples: int | None = None,
                 form: str = "per_task", tol: float | None = None) -> None:
        self.lam = check_number("lam", lam)
        self.fisher = check_choice("fisher", fisher, FISHER_KINDS)
        self.samples = check_count("samples", samples, allow_none=True)
        self.form = check_choice("form", form, FORMS)
        self.tol = None if tol is None else check_number("tol", tol, high=1.0, high_inclusive=False)
        self.input_factors_: list[dict[str, torch.Tensor]] = []   # A_k per task and layer (merged: Ā)
        self.output_factors_: list[dict[str, torch.Tensor]] = []  # G_k (merged: Ḡ)
        self.anchors_: list[dict[str, torch.Tensor]] = []         # W̃*_k (merged: the latest)
        self.merged_tasks_: dict[str, int] = {}                   # merged: T, the tasks in Ā and Ḡ
        self._terms: tuple[tuple, dict[str, list]] | None = None  # the state above, as the step uses it
        self._layers: tuple[nn.Module, dict[str, nn.Linear]] | None = None  # the model being trained

    @property
    def threshold(self) -> float:
        """``tol``, or the form's default: 0 (exact products) per task, ``MERGED_TOL`` merged."""
        return self.tol if self.tol is not None else (MERGED_TOL if self.form == "merged" else 0.0)

    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        self.layers(model)  # refuse a model it cannot factor before training it
        return model

    def layers(self, model: nn.Module) -> dict[str, nn.Linear]:
        """``linear_layers(model)``, found once per task rather than once per step."""
        if self._layers is None or self._layers[0] is not model:
            self._layers = (model, linear_layers(model))
        return self._layers[1]

    def terms(self) -> dict[str, list[DenseTerm | EigenTerm]]:
        """Each layer's Kronecker terms: one per task (``per_task``) or one (``merged``, scaled by
        T), in the eigenbases where ``threshold`` > 0; rebuilt whenever the learned state is
        replaced (after a task, on loading)."""
        state = (self.input_factors_, self.output_factors_, self.anchors_, self.merged_tasks_)
        if self._terms is None or any(a is not b for a, b in zip(self._terms[0], state)):
            terms: dict[str, list[DenseTerm | EigenTerm]] = {}
            for a, g, anchor in zip(*state[:3]):
                for name, w in anchor.items():
                    scale = self.merged_tasks_[name] if self.form == "merged" else 1
                    if self.threshold == 0:
                        term = DenseTerm(g[name] if scale == 1 else scale * g[name], a[name], w)
                    else:
                        term = EigenTerm.build(a[name], g[name], w, scale, self.threshold)
                    if term is not None:
                        terms.setdefault(name, []).append(term)
            self._terms = (state, terms)
        return self._terms[1]

    # ------------------------------------------------------------ penalty
    def penalty(self, model: nn.Module) -> Penalty | float:
        """The value λ Σ tr(ΔW̃ᵀ G ΔW̃ A) and its gradient 2λ Σ G ΔW̃ A, which the loop adds after
        backward (``Penalty``)."""
        terms = self.terms()
        if not terms:
            return 0.0
        layers = self.layers(model)
        values, dense, eigen = [], {}, {}
        with torch.no_grad():
            for name, layer in layers.items():
                for term in terms.get(name, ()):  # none: a layer grown after the tasks learned
                    if isinstance(term, DenseTerm):
                        value, gda = term.evaluate(augmented(layer))
                        dense[name] = gda if name not in dense else dense[name] + gda
                    else:
                        value, grad = term.evaluate(layer.weight, layer.bias, 2 * self.lam)
                        eigen.setdefault(name, []).append(grad)
                    values.append(value)
            for grad in dense.values():
                grad.mul_(2 * self.lam)
        if not values:
            return 0.0
        total = values[0]
        for value in values[1:]:
            total = total + value

        def write() -> None:
            for name, grad in dense.items():
                layer = layers[name]
                for param, part in ((layer.weight, grad[:, :-1]), (layer.bias, grad[:, -1])):
                    if param is None or not param.requires_grad:
                        continue
                    param.grad = part.contiguous() if param.grad is None else param.grad + part
            for name, grads in eigen.items():
                layer = layers[name]
                for left, right, right_b in grads:
                    add_product(layer.weight, left, right)
                    add_product(layer.bias, left, right_b)

        return Penalty(self.lam * total, write)

    # ------------------------------------------------------------ factors
    def after_task(self, model: nn.Module, task: Task, train: TrainFunction | None = None) -> None:
        """Per task: append the task's (A, G) and anchor. Merged: fold them into the running means
        (Ā ← Ā + (A − Ā)/T after the T-th task, likewise Ḡ) and move the anchor to the weights."""
        a, g = self.factors(model, task)
        anchor = {n: augmented(m).detach().clone() for n, m in linear_layers(model).items() if n in a}
        self._layers = None  # the model is not held between tasks
        if self.form == "per_task":
            self.input_factors_ = [*self.input_factors_, a]
            self.output_factors_ = [*self.output_factors_, g]
            self.anchors_ = [*self.anchors_, anchor]
            return
        means_a, means_g = (self.input_factors_ or [{}])[0], (self.output_factors_ or [{}])[0]
        counts = dict(self.merged_tasks_)
        for name in a:
            counts[name] = count = counts.get(name, 0) + 1
            if name in means_a:
                a[name] = means_a[name] + (a[name] - means_a[name]) / count
                g[name] = means_g[name] + (g[name] - means_g[name]) / count
        anchors = (self.anchors_ or [{}])[0]
        self.input_factors_ = [{**means_a, **a}]
        self.output_factors_ = [{**means_g, **g}]
        self.anchors_ = [{**anchors, **anchor}]
        self.merged_tasks_ = counts

    def factors(self, model: nn.Module, task: Task) -> tuple[Factors, Factors]:
        """(A, G) of every linear layer: means over the task's examples of ã ãᵀ and g gᵀ, with g
        each example's own output gradient (the examples' log-likelihoods are summed)."""
        layers = linear_layers(model)
        x, y, t = estimation_sample(self, task, self.samples)
        sums_a = {n: 0.0 for n in layers}
        sums_g = {n: 0.0 for n in layers}
        seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        gen = torch.Generator().manual_seed(self.seed_ * 104729 + task.id)

        def record(name: str):
            def hook(module, inputs, output):
                if name in seen or inputs[0].dim() != 2:
                    raise LifelongError(f"kfac needs each linear layer applied once to (batch, features) "
                                        f"inputs, but {name!r} is not; use ewc for this model")
                seen[name] = (inputs[0].detach(), output)
            return hook

        handles = [m.register_forward_hook(record(n)) for n, m in layers.items()]
        try:
            with eval_mode(model):
                for start in range(0, x.shape[0], CHUNK):
                    xb, tb = x[start:start + CHUNK], t[start:start + CHUNK]
                    seen.clear()
                    log_p = F.log_softmax(self.logits(model, xb, tb), 1)
                    if self.fisher == "true":
                        probs = log_p.detach().exp().cpu()
                        yb = torch.multinomial(probs, 1, generator=gen).squeeze(1).to(xb.device)
                    else:
                        yb = y[start:start + CHUNK]
                    used = [n for n in layers if n in seen]
                    outs = torch.autograd.grad(log_p.gather(1, yb[:, None]).sum(), [seen[n][1] for n in used],
                                               allow_unused=True)
                    for name, out_grad in zip(used, outs):
                        inputs = seen[name][0]
                        ones = torch.ones(inputs.shape[0], 1, dtype=inputs.dtype, device=inputs.device)
                        inputs = torch.cat([inputs, ones], 1)
                        out_grad = torch.zeros_like(seen[name][1]) if out_grad is None else out_grad
                        sums_a[name] = sums_a[name] + inputs.T @ inputs
                        sums_g[name] = sums_g[name] + out_grad.T @ out_grad
        finally:
            for handle in handles:
                handle.remove()
        n = x.shape[0]
        return ({k: v / n for k, v in sums_a.items() if torch.is_tensor(v)},
                {k: v / n for k, v in sums_g.items() if torch.is_tensor(v)})
