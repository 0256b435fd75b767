"""Every activation irc converts, one row each: the table every other activation list comes from.

A row names the activation as the IR's fused ``activation`` attribute holds it, the ONNX op that
computes it (and that op's default ``alpha``), the Viya ``act`` string, the one alpha Viya
computes where Viya fixes it (viya-semantics §3: leaky's slope is 0.1, elu's alpha 1; any other
value is rewritten exactly or refused before lowering), the Keras activation functions that are
it, and the properties passes and frontends test (never negative, allowed as a recurrent cell's
activation, held by a carrier op).

Readers derive from :data:`ACTIVATIONS`: the IR op set (ops.py), the ONNX importer, the 1-D lift,
the passes (fusion, non-negativity), lowering and the Viya exporter, the Keras frontends, the
ONNX writer and the graph printer. Adding an activation Viya already computes (its act string in
the Viya schema and the executor) is one row here.

This module imports nothing from irc, so any layer (the executor included) may read it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Activation:
    name: str                        # IR name (the fused ``activation`` attribute)
    onnx_op: str                     # the ONNX op computing it
    viya: str                        # the Viya act string
    alpha: float | None = None       # ONNX's default alpha; None: the op takes no alpha
    viya_alpha: float | None = None  # the only alpha Viya computes (None: Viya has no alpha)
    keras: tuple[str, ...] = ()      # Keras activation functions that are exactly this one
    non_negative: bool = False       # the output is never negative
    cell: bool = False               # a recurrent layer's cell activation may be this
    carried: bool = True             # a carrier op (Conv, Gemm, ...) may hold it as `activation`


# softmax is carried only by Viya's output layer (lowering reads the Softmax op), never fused.
ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (
    Activation("identity", "Identity", "identity", keras=("linear",)),
    Activation("relu", "Relu", "relu", keras=("relu",), non_negative=True, cell=True),
    Activation("sigmoid", "Sigmoid", "sigmoid", keras=("sigmoid",), non_negative=True,
               cell=True),
    Activation("tanh", "Tanh", "tanh", keras=("tanh",), cell=True),
    Activation("softplus", "Softplus", "softplus", keras=("softplus",), non_negative=True),
    Activation("elu", "Elu", "elu", alpha=1.0, viya_alpha=1.0, keras=("elu",)),
    # Keras's leaky_relu function has slope 0.2, not Viya's 0.1: the Keras frontend emits it.
    Activation("leaky", "LeakyRelu", "leaky", alpha=0.01, viya_alpha=0.1),
    Activation("softmax", "Softmax", "softmax", keras=("softmax",), carried=False),
)}

# ---- derived lists ---------------------------------------------------------------------------
# ONNX op type -> IR name, for the activation ops a carrier op can absorb (identity aside).
ACTIVATION_OPS = {a.onnx_op: a.name for a in ACTIVATIONS.values()
                  if a.carried and a.name != "identity"}
# values the ``activation`` attribute may hold
FUSED_NAMES = frozenset(a.name for a in ACTIVATIONS.values() if a.carried)
BY_OP = {a.onnx_op: a for a in ACTIVATIONS.values()}
# activations whose ONNX op takes an alpha, and the alpha Viya fixes for them
TAKES_ALPHA = frozenset(a.name for a in ACTIVATIONS.values() if a.alpha is not None)
VIYA_FIXED_ALPHA = {a.name: a.viya_alpha for a in ACTIVATIONS.values()
                    if a.viya_alpha is not None}
NON_NEGATIVE = frozenset(a.name for a in ACTIVATIONS.values() if a.non_negative)
NON_NEGATIVE_OPS = tuple(a.onnx_op for a in ACTIVATIONS.values() if a.non_negative)
# recurrent cell activations by name (as Keras and Viya write them) and by ONNX op name
CELL_ACTS = tuple(a.name for a in ACTIVATIONS.values() if a.cell)
CELL_OPS = {a.onnx_op: a.name for a in ACTIVATIONS.values() if a.cell}
# Keras activation function -> the activation
KERAS = {k: a for a in ACTIVATIONS.values() for k in a.keras}


def viya_computes(name: str, alpha: float | None) -> bool:
    """Whether Viya's act ``name`` computes the ONNX op with ``alpha`` (None: the default), the
    alphas compared in float32, the precision Viya computes in."""
    fixed = VIYA_FIXED_ALPHA.get(name)
    return fixed is None or alpha is None or np.float32(alpha) == np.float32(fixed)


def default_alpha(name: str) -> float:
    """The alpha the ONNX op of ``name`` uses when none is given (0.0 for ops without one)."""
    found = ACTIVATIONS[name].alpha
    return 0.0 if found is None else found
