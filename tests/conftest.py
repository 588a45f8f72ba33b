"""Tiny synthetic streams so every test runs in seconds."""

from __future__ import annotations

import pytest
import torch

from lifelong.data import rotated, split


def blobs(n_per_class: int = 40, classes: int = 4, side: int = 6, seed: int = 0):
    """Separable synthetic 'images': each class lights up its own block of pixels, plus noise."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for c in range(classes):
        x = 0.15 * torch.rand(n_per_class, 1, side, side, generator=g)
        row = (c * side) // classes
        x[:, 0, row : row + max(1, side // classes), :] += 0.8
        xs.append(x.clamp(0, 1))
        ys.append(torch.full((n_per_class,), c, dtype=torch.long))
    x, y = torch.cat(xs), torch.cat(ys)
    return x, y


def tiny_arrays(seed: int = 0):
    xtr, ytr = blobs(40, seed=seed)
    xte, yte = blobs(10, seed=seed + 100)
    return xtr, ytr, xte, yte


@pytest.fixture
def tiny_domain_stream():
    """3 rotated tasks over 4 classes (domain-incremental)."""
    return rotated(angles=(0, 45, 90), arrays=tiny_arrays())


@pytest.fixture
def tiny_task_stream():
    """2 tasks of 2 classes each, task identity known (task-incremental)."""
    return split(classes_per_task=2, arrays=tiny_arrays(), scenario="task")


@pytest.fixture
def tiny_class_stream():
    """2 tasks of 2 classes each, one head, no task identity (class-incremental)."""
    return split(classes_per_task=2, arrays=tiny_arrays(), scenario="class")
