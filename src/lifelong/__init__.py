"""lifelong: lifelong (continual) learning on PyTorch — retention, transfer and expansion.

Build a stream, pick a model and a strategy, run, read the metrics::

    import lifelong as ll
    stream = ll.make_benchmark("rotated-mnist")
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes)
    model, result = ll.fit(stream, model, ll.make_strategy("naive"), ll.preset("homework"))
    print(result.metrics)

Choose hyper-parameters on validation data (never the test set) with ``ll.tune``; its
``best.json`` goes to ``lifelong run/compare --hparams`` (docs/tuning.md).
"""

from .api import build, fit, run
from .config import PRESETS, RunConfig, TrainConfig, preset
from .data import Stream, Task, make_benchmark
from .errors import LifelongError
from .learner import load_learner, save_learner
from .metrics import (
    all_metrics,
    average_accuracy,
    backward_transfer,
    forgetting,
    forward_transfer,
    learning_accuracy,
)
from .models import make_model
from .results import RunResult, load_result, save_result
from .strategies import Strategy, make_strategy
from .tuning import TuneResult, Tuning, tune

__version__ = "0.1.0"

__all__ = [
    "PRESETS", "LifelongError", "RunConfig", "RunResult", "Stream", "Strategy", "Task",
    "TrainConfig", "all_metrics", "average_accuracy", "backward_transfer", "build", "fit",
    "forgetting", "forward_transfer", "learning_accuracy", "load_learner", "load_result",
    "make_benchmark", "make_model", "make_strategy", "preset", "run", "save_learner", "save_result",
    "TuneResult", "Tuning", "tune",
]
