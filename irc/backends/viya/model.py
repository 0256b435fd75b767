"""The compiled Viya model: ordered layers with options, sources and lazily computed weights.

A :class:`ViyaModel` is what lowering produces and what every writer reads. Weights are
callables: a weight is computed (transposed, eps added, ...) only when a writer asks for it,
one layer at a time, so a big model is never held twice in memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from irc.backends.viya import schema
from irc.ir.weight_expr import BLOCK_BYTES, WeightExpr, as_expr, leaf_handles
from irc.version import __version__


@dataclass
class LazyWeight:
    """A layer's weight as written: ``compute()`` gives it whole; when ``expr`` is known
    (a stored weight or a transform of one) writers stream it block by block instead."""

    shape: tuple[int, ...]
    compute: Callable[[], np.ndarray]
    expr: WeightExpr | None = None

    @classmethod
    def of(cls, data) -> "LazyWeight":
        """A weight streamed from a WeightHandle or WeightExpr."""
        expr = as_expr(data)
        return cls(tuple(expr.shape), expr.numpy, expr)

    def array(self) -> np.ndarray:
        data = np.asarray(self.compute(), dtype=np.float32)  # always float32 (trap 35)
        if data.shape != self.shape:
            raise AssertionError(f"weight computed as {data.shape}, declared {self.shape}")
        return data

    def blocks(self, max_bytes: int = BLOCK_BYTES):
        """(index, float32 values) covering the weight, one bounded block at a time."""
        if self.expr is None:
            yield tuple(slice(0, d) for d in self.shape), self.array()
            return
        if tuple(self.expr.shape) != self.shape:
            raise AssertionError(f"weight described as {self.expr.shape}, declared {self.shape}")
        yield from self.expr.astype(np.float32).blocks(max_bytes)  # float32 (trap 35)


@dataclass
class LoweredLayer:
    """One Viya layer as lowering produced it: the addLayer payload, its sources, lazily
    computed weights and provenance (the executor's reader has its own ``ViyaLayer``: a
    layer as read back from the written files)."""

    name: str
    kind: str  # addLayer type, a key of schema.KINDS
    options: dict  # the addLayer `layer` payload without `type`
    sources: list[str] = field(default_factory=list)
    weights: dict[str, LazyWeight] = field(default_factory=dict)
    source_nodes: tuple[str, ...] = ()  # provenance: source graph nodes
    out_shape: tuple[int, ...] = ()  # (C, H, W), (n,), or (T, n) per time step
    passes: tuple[str, ...] = ()  # provenance: passes that created or rewrote it
    tensor: str = ""  # the source-graph tensor this layer's output equals (for `irc diff`)

    def weight_names(self) -> list[str]:
        return [w for w in schema.weight_order(self.kind) if w in self.weights]  # §5.3 order

    def layer_payload(self) -> dict:
        return {"type": self.kind, **self.options}


@dataclass
class ViyaModel:
    name: str
    layers: list[LoweredLayer]
    model_type: str = "CNN"
    outputs: dict[str, str] = field(default_factory=dict)  # source output -> viya layer
    inputs: dict[str, str] = field(default_factory=dict)  # source input -> viya layer
    input_info: dict = field(default_factory=dict)
    source: str = ""
    notes: list[str] = field(default_factory=list)  # open points this model relies on
    has_weights: bool = True  # False: structure only (e.g. a Caffe net without .caffemodel)
    # what irc.compile read (irc.frontends.source.Source, with its options): what verify() and
    # the check set run
    origin: object = field(default=None, repr=False, compare=False)

    @property
    def weights_file(self) -> str:
        return f"{self.name}_weights.kerasmodel.h5"

    def layer(self, name: str) -> LoweredLayer:
        return next(layer for layer in self.layers if layer.name == name)

    def weighted_layers(self) -> list[LoweredLayer]:
        return [layer for layer in self.layers if layer.weights]

    def weight_bytes(self) -> int:
        return sum(4 * int(np.prod(w.shape)) for layer in self.layers for w in layer.weights.values())

    def release_source_pages(self) -> int:
        """Once the weights file is written: drop the memory-mapped source pages the writer
        touched from this process's resident set (WeightStore.release_pages); returns bytes."""
        stores = {id(h.store): h.store for layer in self.layers for w in layer.weights.values()
                  if w.expr is not None for h in leaf_handles(w.expr)}
        return sum(store.release_pages() for store in stores.values())

    # ---- artifacts ------------------------------------------------------------------------
    def payloads(self) -> dict:
        """model.json content: the exact keyword arguments of each CAS action."""
        from irc.backends.viya.payloads import build_payloads

        return build_payloads(self, __version__)

    def to_frame(self):
        """The materialised model table as a pandas DataFrame (five columns)."""
        from irc.backends.viya.table import table_frame

        return table_frame(self)

    def save(self, outdir, force: bool = False, progress=None, check=None) -> Path:
        """Write the four artifacts into ``outdir`` atomically (``check(tmp)`` runs first)."""
        from irc.backends.viya.writer import save_model

        return save_model(self, Path(outdir), force=force, progress=progress, check=check)

    def deploy(self, conn, folder=None, **options):
        """Deliver the model to a CAS server through a swat connection ``conn``.

        ``folder``: an output folder of this model (default: saved to a temporary one first).
        ``options`` as :func:`irc.backends.viya.deploy.deploy` (caslib, server_path, labels,
        upload_weights, use_table, replace, save).
        """
        import tempfile

        from irc.backends.viya.deploy import deploy

        if folder is not None:
            return deploy(Path(folder), conn, **options)
        with tempfile.TemporaryDirectory() as tmp:
            return deploy(self.save(Path(tmp) / self.name), conn, **options)

    def summary(self):
        """The layers as a pandas DataFrame, for every model (unlike :meth:`to_frame`): name,
        kind, act, sources, output shape, weight count and the source nodes each came from."""
        from irc.backends.viya.summary import summary_frame

        return summary_frame(self)

    def summary_text(self) -> str:
        """The summary as text, one line per layer (`irc inspect --stage viya`)."""
        from irc.backends.viya.summary import summary_text

        return summary_text(self)

    def verify(self, folder=None, inputs=None, rtol: float = 1e-4, atol: float = 1e-5,
               seed: int = 0, batch: int = 2, options=None):
        """Proof: the source framework's run vs the written files re-run by the reference
        executor (:func:`irc.verify.verify`); a :class:`~irc.verify.VerifyResult`, never
        raising on a mismatch (check ``.ok``). ``folder``: an output folder this model was
        saved to (default: saved to a temporary folder first)."""
        import tempfile

        from irc.errors import VerificationFailed
        from irc.verify import verify

        if self.origin is None:
            raise VerificationFailed("this model does not know its source (it was not made "
                                     "by irc.compile)", hint="irc.verify.verify(source, folder)")
        if not self.has_weights:
            raise VerificationFailed("a structure-only model (no weights) cannot be verified",
                                     file=self.source, hint="give the weights (Caffe: weights=)")
        kwargs = dict(inputs=inputs, rtol=rtol, atol=atol, seed=seed, batch=batch,
                      options=options)
        if folder is not None:
            return verify(self.origin, folder, **kwargs)
        with tempfile.TemporaryDirectory() as tmp:
            return verify(self.origin, self.save(Path(tmp) / self.name), **kwargs)

    def __repr__(self) -> str:
        return f"<ViyaModel {self.name!r}: {len(self.layers)} layers>"

    def _repr_html_(self) -> str:
        """Jupyter's view: the summary table and, where Graphviz is installed, the graph."""
        from irc.backends.viya.summary import model_html

        return model_html(self)
