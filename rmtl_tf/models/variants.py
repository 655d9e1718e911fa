"""The paper's variants by name, and the architectures they build.

| variant | backbone | trained per task |
|---|---|---|
| `conv` | one ordinary network per task | everything (single-task baseline) |
| `shared` | one trainable backbone for all tasks | backbone (shared) + head |
| `ra_series` | frozen bank + series residual adapters | adapters, BN, shortcuts, head |
| `ra_parallel` | frozen bank + parallel residual adapters | adapters, BN, shortcuts, head |
| `rc` | frozen bank + modulators (identity init) | modulators, BN, shortcuts, head |
| `rc_nff` | `rc` with weight-normalized modulators | same |
| `rc_ri` | `rc`, response-initialized bank/modulators | same |
| `rc_ri_nff` | both (the paper's best) | same |
"""

import dataclasses

# How the backbone is shared among tasks: a model's `architecture` (its
# config key). The variants add NFF and response initialization on top.
ARCHITECTURES = ("rc", "ra_series", "ra_parallel", "conv", "shared")
# Architectures whose backbone convs are one frozen bank with per-task parts.
BANK_ARCHITECTURES = ("rc", "ra_series", "ra_parallel")
# The single-path network that pretrains the bank: ordinary convs and
# BatchNorm without a task suffix. A `LayerFactory` architecture only.
PLAIN = "plain"
# Architectures whose backbone is one path for all tasks.
SHARED_BACKBONE = ("shared", PLAIN)
# The residual adapters' `AdapterConv2D` mode, by architecture.
_ADAPTER_MODES = {"ra_series": "series", "ra_parallel": "parallel"}


def adapter_mode(architecture):
    """`AdapterConv2D`'s mode ("series" or "parallel") of a residual-adapter
    architecture."""
    return _ADAPTER_MODES[architecture]


@dataclasses.dataclass(frozen=True)
class Variant:
    """How a named variant builds and initializes its model."""

    name: str
    architecture: str  # One of `ARCHITECTURES`.
    nff: bool = False
    response_init: bool = False


VARIANTS = {v.name: v for v in (
    Variant("conv", "conv"),
    Variant("shared", "shared"),
    Variant("ra_series", "ra_series"),
    Variant("ra_parallel", "ra_parallel"),
    Variant("rc", "rc"),
    Variant("rc_nff", "rc", nff=True),
    Variant("rc_ri", "rc", response_init=True),
    Variant("rc_ri_nff", "rc", nff=True, response_init=True),
)}


def get_variant(name):
    """The `Variant` called `name`, with a clear error when unknown."""
    if name not in VARIANTS:
        raise ValueError(f"Unknown variant {name!r}. Expected one of "
                         f"{list(VARIANTS)}.")
    return VARIANTS[name]
