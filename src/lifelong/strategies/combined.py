"""Several strategies as one: ``make_strategy("ewc+replay", ewc={"lam": 1000}, replay={...})``.

A combination calls its members' hooks in the order they are named, by these rules:

=============================  =================================================================
``setup`` / ``extend``         every member (each records the stream's facts)
``lend_augmentation``          every member (each augments what it replays)
``train_data``,                from the one member that supplies the training data (overrides
``epoch_repeats``              either: joint, CPG, generative replay); two such members: refused
``before_task``                every member in turn, each given the model the previous returned
``predict`` / ``logits``       the member that routes by task (PNN, PackNet, CPG), else the model;
                               a routing member combines with no other (its parameter isolation
                               is the protection, and the others would read the shared network);
                               a member whose ``predict`` is a classifier on the shared network
                               (``predict_routes_by_task = False``: iCaRL's nearest mean, BiC's bias
                               correction) predicts for the combination; two such members: refused
``loss``                       the one member that scores the batch (overrides ``loss``: replay,
                               generative replay), else cross-entropy; two such members: refused
``extra_loss``                 summed over the members (LwF's distillation)
``penalty``                    summed (``Penalty.total``); the penalties' gradients are added
                               after every member's ``read_gradient`` saw the loss's own
``after_forward``              every member (memories filled with the same batch and outputs)
``after_backward``             every member in order, after all penalty gradients are in: gradient
                               edits (projections, masks) act on the total gradient
``after_step``, ``after_task``  every member in order (``after_task``'s ``train`` is the loop's,
                               through the whole combination's hooks)
``artifacts``                  every member's files
``restore_model``              every member in turn
state                          each member's learned state under its name (``ewc/omega_``);
                               ``memory_bytes`` is the sum of the members'
hyper-parameters               ``{member: its hyper-parameters}``
=============================  =================================================================

A member given twice is refused too. The combination's name is its members' names joined by
``+``; its run, checkpoint and saved learner work as any strategy's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.augment import Augment
from ..data.streams import Stream, Task
from ..errors import LifelongError
from .base import SETUP_ATTRS, Batch, Penalty, Strategy, TrainFunction

ROLES = {
    "supply the training data": ("train_data", "epoch_repeats"),
    "score the batch (a loss of their own)": ("loss",),
    "classify at test time (a predict of their own)": ("predict",),
}


def overrides(member: Strategy, *hooks: str) -> bool:
    """Whether ``member``'s class replaces any of ``hooks`` of ``Strategy``."""
    return any(getattr(type(member), hook) is not getattr(Strategy, hook) for hook in hooks)


def routes_by_task(member: Strategy) -> bool:
    """Whether ``member`` picks weights by task (its own ``predict``, unless the class says
    ``predict_routes_by_task = False``: a classifier on the shared network, as iCaRL's)."""
    return member.needs_task_identity or (
        overrides(member, "predict") and getattr(member, "predict_routes_by_task", True))


def check_members(members: list[Strategy]) -> None:
    """One line naming the conflict when these members cannot work together."""
    names = [m.name for m in members]
    if len(members) < 2:
        raise LifelongError(f"a combination needs two or more strategies joined by '+', got {names}")
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice:
        raise LifelongError(f"{twice!r} appears twice in {'+'.join(names)}; name each strategy once")
    router = next((m for m in members if routes_by_task(m)), None)
    if router is not None:
        other = next(m for m in members if m is not router)
        raise LifelongError(
            f"{router.name} routes each task to its own weights and combines with no other strategy "
            f"({other.name} would train and read the shared network); use {router.name} alone")
    for role, hooks in ROLES.items():
        owners = [m.name for m in members if overrides(m, *hooks)]
        if len(owners) > 1:
            raise LifelongError(f"{owners[0]} and {owners[1]} each {role}; a combination takes one "
                                "such strategy")


class Combined(Strategy):
    """Members' hooks called in order (see the module docstring)."""

    def __init__(self, members: list[Strategy]) -> None:
        check_members(members)
        self.members = list(members)
        self.needs_task_identity = any(m.needs_task_identity for m in self.members)
        self._data = next((m for m in self.members if overrides(m, *ROLES["supply the training data"])),
                          self.members[0])
        self._scorer = next((m for m in self.members if overrides(m, "loss")), self.members[0])
        self._predictor = next((m for m in self.members if overrides(m, "predict")), None)

    @property
    def name(self) -> str:
        return "+".join(m.name for m in self.members)

    @property
    def tasks_learned_(self) -> int:  # type: ignore[override]
        return self.members[0].tasks_learned_

    @tasks_learned_.setter
    def tasks_learned_(self, value: int) -> None:
        for member in self.members:
            member.tasks_learned_ = value

    # ----------------------------------------------------------------- setup
    def setup(self, stream: Stream, config: Any) -> None:
        for member in self.members:
            member.setup(stream, config)
        super().setup(stream, config)

    def extend(self, stream: Stream, config: Any) -> None:
        for member in self.members:
            member.extend(stream, config)
        self.record_stream(stream, config)

    def restore_setup(self, facts: dict[str, Any]) -> None:
        for member in self.members:
            member.restore_setup(facts)
        super().restore_setup(facts)

    # ----------------------------------------------------------------- hooks
    def lend_augmentation(self, augment: Augment | None) -> None:
        for member in self.members:
            member.lend_augmentation(augment)
        super().lend_augmentation(augment)

    def train_data(self, task: Task) -> Batch:
        return self._data.train_data(task)

    def epoch_repeats(self, task: Task) -> int:
        return self._data.epoch_repeats(task)

    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        for member in self.members:
            model = member.before_task(model, task)
        return model

    def predict(self, model: nn.Module, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        return model(x) if self._predictor is None else self._predictor.predict(model, x, task_ids)

    def loss(self, model: nn.Module, batch: Batch, outputs: torch.Tensor, task: Task) -> torch.Tensor:
        return self._scorer.loss(model, batch, outputs, task)

    def extra_loss(self, model: nn.Module, batch: Batch, outputs: torch.Tensor,
                   task: Task) -> torch.Tensor | float:
        total: torch.Tensor | float = 0.0
        for member in self.members:
            total = total + member.extra_loss(model, batch, outputs, task)
        return total

    def penalty(self, model: nn.Module) -> torch.Tensor | float | Penalty:
        return Penalty.total([member.penalty(model) for member in self.members])

    def after_forward(self, model: nn.Module, batch: Batch, outputs: torch.Tensor, task: Task) -> None:
        for member in self.members:
            member.after_forward(model, batch, outputs, task)

    def read_gradient(self, model: nn.Module) -> None:
        for member in self.members:
            member.read_gradient(model)

    def after_backward(self, model: nn.Module) -> None:
        for member in self.members:
            member.after_backward(model)

    def after_step(self, model: nn.Module) -> None:
        for member in self.members:
            member.after_step(model)

    def after_task(self, model: nn.Module, task: Task, train: TrainFunction | None = None) -> None:
        for member in self.members:
            member.after_task(model, task, train)

    def artifacts(self, model: nn.Module, task: Task) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        for member in self.members:
            files.update({(f"{member.name}-{k}" if k in files else k): v
                          for k, v in member.artifacts(model, task).items()})
        return files

    def restore_model(self, model: nn.Module) -> nn.Module:
        for member in self.members:
            model = member.restore_model(model)
        return model

    # ----------------------------------------------------------------- state
    def hyperparameters(self) -> dict[str, Any]:
        return {m.name: m.hyperparameters() for m in self.members}

    def learned_state(self) -> dict[str, Any]:
        return {f"{m.name}/{k}": v for m in self.members for k, v in m.learned_state().items()}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], structure: dict[str, Any]) -> None:
        parts: dict[str, dict[str, Any]] = {m.name: {} for m in self.members}
        for key, value in structure.items():
            member, _, attribute = key.partition("/")
            if member not in parts or attribute in SETUP_ATTRS:
                raise ValueError(f"{key!r} is not the state of a member of {self.name}")
            parts[member][attribute] = value
        for member in self.members:
            member.load_state_dict(tensors, parts[member.name])

    def memory_bytes(self) -> int:
        return sum(m.memory_bytes() for m in self.members)


def member_names(name: str) -> list[str]:
    """The members of a combination's name ``a+b``, or a one-line error for an empty member or
    white space (``ewc + si`` would otherwise be a second spelling of ``ewc+si``)."""
    names = name.split("+")
    if any(not part or part != part.strip() for part in names):
        raise LifelongError(f"{name!r} has an empty member or spaces; join two or more strategy names "
                            "with '+' and no spaces, e.g. ewc+replay")
    return names


def member_options(names: list[str], options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Options per member from ``{member: {key: value}}`` and/or ``{"member.key": value}``."""
    per: dict[str, dict[str, Any]] = {name: {} for name in names}
    for key, value in options.items():
        member, dot, option = str(key).partition(".")
        if member not in per:
            raise LifelongError(
                f"{'+'.join(names)} has no member {member!r}; give options per member, e.g. "
                f"{names[0]}={{...}} in Python or --param {names[0]}.KEY=VALUE")
        if dot:
            per[member][option] = value
        elif isinstance(value, dict):
            per[member].update(value)
        else:
            raise LifelongError(f"options of member {member!r} must be a table of key = value pairs, "
                                f"got {value!r}")
    return per
