"""How the Viya → ONNX export resolves the open points of Viya's semantics.

The scoring semantics follow the reference executor exactly (its :class:`ExecutorOptions`,
docs/viya-semantics.md §16); the export adds the points that only matter when reading
weights back from a server-written weights TABLE (viya-target.md §7.2) or generating them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from irc.backends.viya.executor.options import ExecutorOptions

# How the fc/output kernel is laid out in a weights table (viya-target.md §7.2, unverified):
#   in_major  - DLPy's ONNX exporter reads the n·in values as an (in, n) array (default);
#   out_major - the values are an (n, in) array, as in the HDF5 file.
FC_WEIGHT_ORDERS = ("in_major", "out_major")
_EXECUTOR_FIELDS = {f.name for f in fields(ExecutorOptions)}


@dataclass(frozen=True)
class ExportOptions:
    """``executor``: the semantics (pool_auto_pad, pool_explicit_rounding, maxpool_pad,
    avgpool_divisor, bn_extra_eps, elu_alpha, dropout_scoring, ...). ``fc_weight_order``: the
    weights-table fc kernel order. ``seed``: for ``generate_weights``."""

    executor: ExecutorOptions = field(default_factory=ExecutorOptions)
    fc_weight_order: str = "in_major"
    seed: int = 0

    def __post_init__(self):
        if self.fc_weight_order not in FC_WEIGHT_ORDERS:
            raise ValueError(f"ExportOptions.fc_weight_order={self.fc_weight_order!r} is not "
                             f"allowed; choose one of {', '.join(map(repr, FC_WEIGHT_ORDERS))}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"ExportOptions.seed={self.seed!r} must be an int")

    @classmethod
    def make(cls, options=None) -> "ExportOptions":
        """From None, an ExportOptions, an ExecutorOptions, or a flat dict mixing both kinds of
        key (``{"pool_auto_pad": "split_tf", "fc_weight_order": "out_major"}``)."""
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        if isinstance(options, ExecutorOptions):
            return cls(executor=options)
        if not isinstance(options, dict):
            raise TypeError(f"options must be a dict or ExportOptions, not "
                            f"{type(options).__name__}")
        options = {k: _from_text(k, v) for k, v in options.items()}
        own = {k: v for k, v in options.items() if k in ("fc_weight_order", "seed")}
        executor = {k: v for k, v in options.items() if k in _EXECUTOR_FIELDS}
        unknown = sorted(set(options) - set(own) - set(executor))
        if unknown:
            raise ValueError(f"unknown export option(s) {unknown}; known: "
                             f"{sorted(_EXECUTOR_FIELDS | {'fc_weight_order', 'seed'})}")
        return cls(executor=replace(ExecutorOptions(), **executor), **own)

    def as_dict(self) -> dict:
        return {**self.executor.as_dict(), "fc_weight_order": self.fc_weight_order,
                "seed": self.seed}


def _from_text(key: str, value):
    """CLI values arrive as text: numbers for the numeric options (``--option
    bn_extra_eps=1e-3``, ``seed=3``); everything else is checked by the dataclasses."""
    if not isinstance(value, str):
        return value
    try:
        if key == "seed":
            return int(value)
        if key in ("bn_extra_eps", "elu_alpha"):
            return float(value)
    except ValueError:
        raise ValueError(f"export option {key}={value!r} must be a number") from None
    return value
