"""Task streams: sources, transforms and the registered benchmark builders."""

from .benchmarks import make_benchmark, permuted, rotated, split
from .datasets import Dataset, load_dataset
from .sources import from_arrays, load_idx_folder, load_mnist5k, read_idx
from .streams import SCENARIOS, Stream, Task

__all__ = [
    "SCENARIOS", "Dataset", "Stream", "Task", "from_arrays", "load_dataset", "load_idx_folder",
    "load_mnist5k", "make_benchmark", "permuted", "read_idx", "rotated", "split",
]
