"""hsikit.tasks: one LightningModule per task on a small :class:`BaseTask`.

>>> from hsikit.tasks import ClassificationTask, get_task
>>> task = ClassificationTask(model="spectral_mlp", model_args={"in_bands": 200, "num_classes": 16})
"""

from hsikit.tasks.base import BaseTask
from hsikit.tasks.classification import ClassificationTask
from hsikit.tasks.registry import get_task, list_tasks, register_task

__all__ = ["BaseTask", "ClassificationTask", "get_task", "list_tasks", "register_task"]
