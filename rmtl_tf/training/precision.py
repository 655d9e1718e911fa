"""Mixed precision: the Keras dtype policies a training run may use, and
the float32 model that evaluation and export get afterwards."""

from rmtl_tf.models import multitask_model

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def check_precision(name):
    """Raises `ValueError` naming `name` unless it is a known dtype policy."""
    if name not in PRECISIONS:
        raise ValueError(f"Unknown --mixed_precision={name!r}. Expected one "
                         f"of {PRECISIONS}.")
    return name


def cpu_flags(path="/proc/cpuinfo"):
    """The instruction-set flags of this machine's CPU (Linux), else
    an empty set."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bfloat16_hint(precision, flags=None, accelerator=False):
    """What the bfloat16 choice means on this CPU, or None: on a CPU that
    computes bfloat16 natively (AMX or AVX512-BF16) running float32, what
    `--mixed_precision=mixed_bfloat16` would save; on an x86 CPU without
    it running `mixed_bfloat16` (no GPU: `accelerator` False), that the run
    is emulated and much slower."""
    flags = cpu_flags() if flags is None else flags
    native = sorted(flags & {"amx_bf16", "avx512_bf16"})
    if (precision == "mixed_bfloat16" and not native and "sse2" in flags
            and not accelerator):
        return ("This CPU has no native bfloat16 (no amx_bf16 or "
                "avx512_bf16): --mixed_precision=mixed_bfloat16 is emulated "
                "here, and a training step was 14x slower than in float32 "
                "at 512x512 (8x on the demo model) on an AMD EPYC with AVX2 "
                "(docs/training.md). Use --mixed_precision=float32 on this "
                "machine.")
    if precision != "float32" or not native:
        return None
    return (f"This CPU computes bfloat16 natively ({', '.join(native)}): "
            "--mixed_precision=mixed_bfloat16 trained ResNet-18 RCM at "
            "256x320 in 2.0 s per step against 3.0 s in float32 on an Intel "
            "Xeon with AMX, the loss curve within 1%, and no metric moved "
            "beyond the seed-to-seed spread on the synthetic benchmark "
            "(experiments/precision_synthetic.sh; variables and the saved "
            "model stay float32).")


def float32_copy(model, force=False):
    """`model` rebuilt with float32 layers under the current strategy (none
    outside a scope), with its weights; `model` itself when its layers
    already compute in float32, unless `force`."""
    if not force and all(
            layer.dtype_policy.name == "float32"
            for layer in model._flatten_layers()):  # pylint: disable=protected-access
        return model
    return multitask_model.with_dtype_policy(model, "float32")
