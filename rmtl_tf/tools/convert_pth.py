"""Converts a PyTorch checkpoint (`.pth`) to an `.npz` of the same names.

Needs no PyTorch (`rmtl_tf.models.pth_file` reads the file); `.pth` files
import directly too, the `.npz` is for tools that want plain arrays:
`rmtl_tf.import_state_dict(model,
"X.npz")`, `rmtl_tf.assemble_checkpoints(["a.npz", "b.npz"])` or
`train.py --bank=torchvision:X.npz`.

Usage:
  python -m rmtl_tf.tools.convert_pth --input=resnet18-f37072fd.pth \
      --output=resnet18.npz
  # -> resnet18.npz: 122 tensors (conv1.weight, bn1.weight, ...)

The authors' checkpoints (`{"state_dict": ..., "iteration": ...}`) are
unwrapped and a `DataParallel` `module.` prefix dropped; arrays keep their
PyTorch names and layouts.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # pylint: disable=wrong-import-position

from rmtl_tf.cli.errors import run_cli  # pylint: disable=wrong-import-position
from rmtl_tf.models import bank, torch_state  # pylint: disable=wrong-import-position

_INPUT = flags.DEFINE_string("input", None, "PyTorch checkpoint to read.")
_OUTPUT = flags.DEFINE_string("output", None, "The .npz file to write.")


def convert(input_path, output_path):
    """Writes the state dict of `input_path` to `output_path` (`.npz`).

    Returns the number of tensors written.
    """
    if not output_path.endswith(".npz"):
        raise ValueError(f"--output must end in '.npz'. Received: "
                         f"{output_path!r}")
    state_dict = torch_state.load_state_dict(input_path)
    bank.save_bank(output_path, state_dict)
    return len(state_dict)


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {argv[1:]}")
    try:
        count = convert(_INPUT.value, _OUTPUT.value)
    except ImportError as e:  # No PyTorch: one clear line, as user errors.
        raise ValueError(str(e)) from e
    print(f"{_OUTPUT.value}: {count} tensors")


if __name__ == "__main__":
    # Required only when run: importing the module must not constrain
    # other programs' flags.
    flags.mark_flags_as_required(["input", "output"])
    app.run(lambda argv: run_cli(main, argv))
