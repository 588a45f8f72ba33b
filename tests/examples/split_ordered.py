"""split_ordered.py: the classes of any data, k per task, in an order you choose."""

from lifelong.data import Stream, Task, load_dataset
from lifelong.data.transforms import class_subset
from lifelong.registry import BENCHMARKS


@BENCHMARKS.register("split-ordered", "the data's classes k per task, in a given order")
def split_ordered(order, per_task=2, source="mnist5k", arrays=None, dataset=None,
                  class_names=None, scenario="task"):
    """Task t holds the classes order[t*k:(t+1)*k]; named by the data, e.g. cat+dog."""
    data = load_dataset(source, arrays, dataset, class_names)  # tensors + name + class names
    tasks = []
    for t in range(len(order) // per_task):
        classes = tuple(order[t * per_task:(t + 1) * per_task])
        x, y = class_subset(data.x_train, data.y_train, classes)
        x_test, y_test = class_subset(data.x_test, data.y_test, classes)
        tasks.append(Task(t, data.group_name(classes), x, y, x_test, y_test, classes))
    num_classes = int(data.y_train.max()) + 1
    return Stream(f"ordered-{data.name}", tasks, scenario, tuple(data.x_train.shape[1:]), num_classes)


if __name__ == "__main__":
    import numpy as np

    import lifelong as ll

    rng = np.random.default_rng(0)
    x, y = rng.random((80, 3, 8, 8), dtype=np.float32), np.repeat(np.arange(4), 20)
    stream = ll.make_benchmark("split-ordered", order=[3, 1, 0, 2], arrays=(x, y, x, y),
                               dataset="shapes", class_names=["circle", "square", "star", "cross"])
    print(stream.name, [task.name for task in stream])  # ordered-shapes ['cross+square', 'circle+star']
