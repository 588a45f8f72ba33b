"""Rotate, permute and split image tensors with torch itself (no torchvision), once per task."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def rotate(x: torch.Tensor, degrees: float, chunk: int = 8192, mode: str = "bilinear") -> torch.Tensor:
    """Rotate a batch of images ``(n, c, h, w)`` counter-clockwise about their centre.

    Bilinear interpolation (``mode="nearest"``: nearest neighbour, PIL's default), zeros outside
    the image (MNIST's black background).
    """
    if degrees % 360 == 0:
        return x.clone()
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    # affine_grid maps output to input coordinates (x right, y down): the inverse rotation,
    # which turns the displayed image counter-clockwise as torchvision's rotate does
    mat = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype)
    out = torch.empty_like(x)
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk]
        grid = F.affine_grid(mat.expand(part.shape[0], 2, 3), list(part.shape), align_corners=False)
        out[start : start + chunk] = F.grid_sample(
            part, grid, mode=mode, padding_mode="zeros", align_corners=False
        )
    return out


def pixel_permutation(num_pixels: int, seed: int) -> torch.Tensor:
    """A fixed random permutation of ``num_pixels`` positions, from its own seeded generator."""
    return torch.randperm(num_pixels, generator=torch.Generator().manual_seed(seed))


def permute(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Shuffle the pixels of every image by ``perm`` (the same for all images)."""
    flat = x.reshape(x.shape[0], -1)
    return flat[:, perm].reshape(x.shape)


def class_subset(x: torch.Tensor, y: torch.Tensor, classes) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples whose label is in ``classes``."""
    keep = torch.isin(y, torch.as_tensor(list(classes), dtype=y.dtype))
    return x[keep], y[keep]


def random_subset(
    x: torch.Tensor, y: torch.Tensor, n: int | None, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` examples drawn without replacement (all of them when ``n`` is None)."""
    if n is None or n >= x.shape[0]:
        return x, y
    idx = torch.randperm(x.shape[0], generator=generator)[:n].sort().values
    return x[idx], y[idx]
