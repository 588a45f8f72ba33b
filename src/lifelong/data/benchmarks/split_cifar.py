"""``split-cifar10`` and ``split-cifar100``: the field's standard image streams since GEM (2017).

CIFAR-10 in 5 tasks of 2 classes; CIFAR-100 in 10 tasks of 10 classes (``classes_per_task=5``:
20 tasks of 5), in label order, task- or class-incremental. There are no embedded CIFAR images:
``source`` (``--data``) is the folder of the binary release (``data/cifar.py``) or an ``.npz``
file, or ``arrays`` are given. The images are normalised per channel with the training set's
mean and deviation and the training batches are augmented (random crop with 4 pixels of padding,
horizontal flip) unless the run says ``--no-augment`` or the options ``normalize=false``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import LifelongError
from ...registry import BENCHMARKS
from ..cifar import WHERE
from ..datasets import Dataset, load_dataset
from ..streams import Stream
from .common import check_scenario, check_seed
from .split_mnist import split_stream


def cifar_data(benchmark: str, kind: str, source, arrays, dataset, class_names, layout, labels="fine"
               ) -> Dataset:
    """The CIFAR data a ``split-cifar*`` builder was given; one line when none or another was."""
    if arrays is None and source in (None, "", "mnist5k", "embedded"):
        raise LifelongError(f"{benchmark} needs the {kind.upper().replace('CIFAR', 'CIFAR-')} images, and "
                            f"none are embedded: {WHERE} with --data FOLDER")
    arrays_given = arrays is not None or str(source).lower().endswith(".npz")  # named as asked
    data = load_dataset(source, arrays, dataset or (kind if arrays_given else None), class_names,
                        layout, labels)
    if not arrays_given and dataset is None and data.name not in (kind, f"{kind}-coarse"):
        raise LifelongError(f"{benchmark} needs {kind} but {source} holds {data.name}; use the matching "
                            "benchmark (split-cifar10, split-cifar100, or split-mnist for any other images)")
    return data


@BENCHMARKS.register("split-cifar10", "CIFAR-10 (--data: binary release), 5 tasks of 2 classes; "
                     "normalised, augmented")
def split_cifar10(
    classes_per_task: int = 2,
    source: str | None = None,
    arrays=None,
    scenario: str = "task",
    seed: int = 0,
    dataset: str | None = None,
    class_names: Sequence[str] | None = None,
    layout: str | None = None,
    normalize: bool | None = None,
) -> Stream:
    """CIFAR-10's 10 classes in tasks of ``classes_per_task`` (airplane+automobile, …); the other
    options are ``split-mnist``'s."""
    check_scenario(scenario, ("task", "class"), "split-cifar10")
    check_seed(seed)
    data = cifar_data("split-cifar10", "cifar10", source, arrays, dataset, class_names, layout)
    return split_stream(data, classes_per_task, scenario, normalize)


@BENCHMARKS.register("split-cifar100", "CIFAR-100 (--data: binary release), 10 tasks of 10 classes "
                     "(classes_per_task=5: 20 of 5); normalised, augmented")
def split_cifar100(
    classes_per_task: int = 10,
    source: str | None = None,
    arrays=None,
    scenario: str = "task",
    seed: int = 0,
    dataset: str | None = None,
    class_names: Sequence[str] | None = None,
    layout: str | None = None,
    normalize: bool | None = None,
    labels: str = "fine",
) -> Stream:
    """CIFAR-100's 100 classes in tasks of ``classes_per_task`` (``classes0-9``, …); ``labels``
    picks the release's ``fine`` (100) or ``coarse`` (20 super-classes) labels."""
    check_scenario(scenario, ("task", "class"), "split-cifar100")
    check_seed(seed)
    data = cifar_data("split-cifar100", "cifar100", source, arrays, dataset, class_names, layout, labels)
    return split_stream(data, classes_per_task, scenario, normalize)
