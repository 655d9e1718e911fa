"""The validated settings of one export (`export.py`)."""

import dataclasses
from typing import Optional, Tuple

from rmtl_tf.export import export_lib
from rmtl_tf.export.quantize import DEFAULT_CALIBRATION_EXAMPLES


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What `export.py` exports, and how; checked on creation as far as it
    can be without the model (the model name, the version, the
    quantizations; `export_lib.export` checks the tasks to fold).

    `quantize_modes`: extra quantized TFLite files ("dynamic", "float16",
    "int8"). int8 calibrates on `calibration_examples` training images of
    the model's dataset (from `calibration_data_dir` if given, else where
    it was trained). The other fields are `export_lib.export`'s arguments.
    """

    model_dir: str
    export_dir: str
    model_name: str = "rmtl"
    version: Optional[int] = None
    tflite: bool = True
    quantize_modes: Tuple[str, ...] = ()
    calibration_examples: int = DEFAULT_CALIBRATION_EXAMPLES
    calibration_data_dir: Optional[str] = None
    fold_tasks: Tuple[str, ...] = ()
    dynamic_image_size: bool = False
    task_packs: bool = False
    fold_modulators: bool = False
    overwrite: bool = False
    precision: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "quantize_modes", tuple(self.quantize_modes))
        object.__setattr__(self, "fold_tasks", tuple(self.fold_tasks))
        export_lib.check_arguments(None, self.model_name, self.version,
                                   self.quantize_modes, fold_tasks=())

    def export_kwargs(self):
        """`export_lib.export`'s keyword arguments (all but the model and
        the calibration images)."""
        return dict(
            export_dir=self.export_dir, model_name=self.model_name,
            version=self.version, tflite=self.tflite,
            fold_modulators=self.fold_modulators,
            quantize_modes=list(self.quantize_modes),
            fold_tasks=list(self.fold_tasks),
            dynamic_image_size=self.dynamic_image_size,
            task_packs=self.task_packs, overwrite=self.overwrite,
            precision=self.precision)
