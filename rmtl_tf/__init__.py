"""rmtl_tf: reparameterized convolutions for incremental multi-task learning.

Keras 3 / TensorFlow implementation of Kanakis et al., "Reparameterizing
Convolutions for Incremental Multi-Task Learning without Task Interference",
ECCV 2020.
"""

from rmtl_tf._startup import cli_environment as _cli_environment
from rmtl_tf._startup import quiet_tensorflow_import as _quiet

_cli_environment()  # A command-line tool: oneDNN on x86 by default.

with _quiet():  # A command-line tool: TensorFlow's C++ notices hidden.
    # pylint: disable=wrong-import-position
    from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
    from rmtl_tf.layers.resize_like import ResizeLike
    from rmtl_tf.models.checkpoint_assembly import assemble_checkpoints
    from rmtl_tf.models.multitask_model import (MultiTaskModel, add_task,
                                                build_model, predictions)
    from rmtl_tf.models.reparameterize import (ReparameterizedModel,
                                               reparameterize)
    from rmtl_tf.models.weight_import import (export_state_dict,
                                              import_state_dict)
    from rmtl_tf.tasks.registry import TASKS, TaskSpec, get_task

from rmtl_tf._version import __version__  # pylint: disable=wrong-import-position

__all__ = [
    "ReparamConv2D", "ResizeLike", "MultiTaskModel", "build_model",
    "add_task", "predictions", "TASKS", "TaskSpec", "get_task",
    "import_state_dict", "export_state_dict", "assemble_checkpoints",
    "reparameterize", "ReparameterizedModel",
]
