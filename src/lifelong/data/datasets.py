"""Named data: a source's train/test tensors with the data's own name and, where known, class names.

Builders name streams and tasks from a ``Dataset`` (``rotated-`` + its name, split tasks by their
classes), so Fashion-MNIST or a user's CIFAR arrays are never called MNIST digits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import LifelongError
from .sources import from_arrays, load_idx_folder, load_mnist5k

EMBEDDED = ("mnist5k", "embedded")
"""The names of the embedded 5,000 MNIST digits as a ``source`` (``None`` or "" mean it too)."""

KNOWN = {
    "mnist": ("digits", None),
    "fashion-mnist": ("classes", ("top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                                  "sneaker", "bag", "boot")),
    "cifar10": ("classes", ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                            "ship", "truck")),
}
"""Data sets whose classes have a known word or names: name → (what a class is, class names)."""


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors (as ``sources`` returns them) with the data's name.

    ``class_names[c]`` names label ``c`` (``None``: the labels are their own names); ``noun`` is
    what a group of its classes is called in a task's name (MNIST's ``digits01``).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: tuple[str, ...] | None = None
    noun: str = "classes"

    def class_name(self, label: int) -> str:
        names = self.class_names
        return names[label] if names is not None and label < len(names) else str(label)

    def group_name(self, classes: Sequence[int]) -> str:
        """A task's name from its classes: ``digits01``, ``classes10+11``, ``trouser+pullover``."""
        labels = [self.class_name(c) for c in classes]
        text = ("" if all(len(label) == 1 for label in labels) else "+").join(labels)
        return self.noun + text if all(label.isdigit() for label in labels) else text


def named(name: str, split, class_names: Sequence[str] | None = None) -> Dataset:
    """A ``Dataset`` of ``split`` (x_train, y_train, x_test, y_test) called ``name``; a known name
    (``mnist``, ``fashion-mnist``, ``cifar10``) brings its class names unless ``class_names`` is given."""
    if not isinstance(name, str) or not name.strip():
        raise LifelongError(f"a data set's name must be a non-empty text, got {name!r}")
    key = "-".join(name.strip().lower().split())
    noun, known = KNOWN.get(key, ("classes", None))
    names = tuple(str(c) for c in class_names) if class_names is not None else known
    return Dataset(key, *split, class_names=names, noun=noun)


def folder_name(folder: str | Path) -> str:
    """A data folder's name as the data's name: ``…/Fashion-MNIST`` → ``fashion-mnist`` (a
    torchvision-style ``raw`` or ``processed`` sub-folder takes its parent's name)."""
    path = Path(folder).expanduser().resolve()
    if path.name.lower() in ("raw", "processed") and path.parent.name:
        path = path.parent
    return path.name or "data"


def load_dataset(source: str | Path | None = "mnist5k", arrays=None, name: str | None = None,
                 class_names: Sequence[str] | None = None) -> Dataset:
    """The data a builder's ``source``/``arrays``/``name`` options name.

    ``arrays`` (x_train, y_train, x_test, y_test) win over ``source`` and are called ``name``
    (default ``"arrays"``); the embedded digits are ``mnist``; an IDX folder is called by its
    folder's name unless ``name`` is given.
    """
    if arrays is not None:
        if not isinstance(arrays, (tuple, list)) or len(arrays) != 4:
            raise LifelongError("arrays must be a tuple (x_train, y_train, x_test, y_test)")
        return named(name or "arrays", from_arrays(*arrays), class_names)
    if source in (None, "", *EMBEDDED):
        return named(name or "mnist", load_mnist5k(), class_names)
    return named(name or folder_name(source), load_idx_folder(source), class_names)
