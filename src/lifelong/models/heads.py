"""Multi-head output for task-incremental streams.

A multi-head network gives each task its own output units. With a shared output layer whose
rows are partitioned by task, that is exactly *masking* the logits of the other tasks' classes:
the rows are disjoint, so each task trains and reads only its own head. Any user ``nn.Module``
with one output per class therefore becomes multi-head without changes.
"""

from __future__ import annotations

import torch


def mask_logits(
    logits: torch.Tensor, task_ids: torch.Tensor, class_mask: torch.Tensor | None
) -> torch.Tensor:
    """Set the logits outside each example's task classes to a large negative value.

    ``class_mask`` is the stream's (T, C) boolean matrix (``None``: no masking).
    """
    if class_mask is None:
        return logits
    allowed = class_mask.to(logits.device)[task_ids]
    return logits.masked_fill(~allowed, torch.finfo(logits.dtype).min / 2)
