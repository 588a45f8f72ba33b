"""Plain fine-tuning: the lower reference."""

from ..registry import STRATEGIES
from .base import Strategy


@STRATEGIES.register("naive", "plain fine-tuning on each task in turn (the lower reference)")
class Naive(Strategy):
    """Fine-tune on each new task with nothing to protect the old ones (the 'baseline')."""

