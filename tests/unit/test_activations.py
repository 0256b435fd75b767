"""The activation table (irc/ir/activations.py) agrees with the stages that read it."""
from __future__ import annotations

import numpy as np
import pytest

from irc.backends.viya import schema
from irc.backends.viya.executor.kernels import activate
from irc.frontends.onnx.catalog import onnx_ops
from irc.ir import ops
from irc.ir.activations import ACTIVATIONS, ACTIVATION_OPS, viya_computes


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_each_activation_reaches_every_stage(name):
    act = ACTIVATIONS[name]
    # the Viya act string exists and the executor computes it
    assert act.viya in schema.ACTIVATIONS
    x = np.linspace(-3, 3, 13, dtype=np.float32).reshape(1, -1)
    out = activate(x, act.viya)
    assert out.shape == x.shape and np.isfinite(out).all()
    if act.non_negative:
        assert (out >= 0).all()
    if act.onnx_op in ACTIVATION_OPS:
        assert act.onnx_op in ops.SCHEMAS   # the IR has the op
        assert act.onnx_op in onnx_ops()    # the ONNX frontend imports it
        has_alpha = "alpha" in ops.SCHEMAS[act.onnx_op].attrs
        assert has_alpha == (act.alpha is not None)


def test_viya_fixed_alpha_is_compared_exactly_in_float32():
    assert viya_computes("leaky", 0.1) and viya_computes("leaky", np.float32(0.1))
    assert not viya_computes("leaky", 0.2) and not viya_computes("leaky", 0.100001)
    assert viya_computes("elu", 1.0) and not viya_computes("elu", 0.5)
    assert viya_computes("relu", None)
