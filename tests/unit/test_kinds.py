"""Every Viya kind irc puts in scope has every facet, or a declared refusal with its reason.

A kind is one class in irc/backends/viya/kinds/ (its facts and facets); the lowering registry
records the kinds its handlers emit. The walk below fails when a kind is put in scope without
its facets: the second test shows it on a kind made for the purpose.
"""
from __future__ import annotations

import numpy as np
import pytest

from irc.backends.viya import schema
from irc.backends.viya.executor import ExecutorOptions
from irc.backends.viya.executor.reader import ViyaLayer
from irc.backends.viya.executor.shapes import output_shape
from irc.backends.viya.kinds.base import Kind, KindRefused
from irc.backends.viya.lowering import catalog  # noqa: F401 - fills LOWERINGS
from irc.backends.viya.lowering.registry import LOWERINGS


def missing_facets(kind: Kind, emitted: set[str]) -> list[str]:
    """The facets an in-scope kind lacks (overridden from Kind, or declared refused)."""
    if kind.scope != schema.IN:
        return [] if kind.why else ["a reason (why) for being out of scope"]
    lacking = [facet for facet in ("normalize", "output_shape", "run")
               if getattr(type(kind), facet) is getattr(Kind, facet)]
    if type(kind).export is Kind.export and not kind.export_refusal:
        lacking.append("export (or export_refusal)")
    if kind.weights and type(kind).weight_shapes is Kind.weight_shapes:
        lacking.append("weight_shapes (it stores weights)")
    if kind.table is None:
        lacking.append("table form (layertype code)")
    elif kind.table.label is not None and not kind.codec and not kind.table_refusal:
        lacking.append("table codec (or table_refusal)")
    if kind.name not in emitted:
        lacking.append("a lowering that emits it (LOWERINGS.register(..., emits=))")
    if kind.act and kind.auto_act is None and kind.name not in ("recurrent", "transconvo"):
        lacking.append("auto_act (what act 'auto' means)")
    return lacking


def test_every_in_scope_kind_has_every_facet():
    missing = {k.name: m for k in schema.KINDS.values()
               if (m := missing_facets(k, LOWERINGS.emitted))}
    assert missing == {}
    assert {"input", "convo", "pool", "fc", "output", "detection"} <= set(schema.kinds())


def test_the_walk_fails_for_a_kind_put_in_scope_without_its_facets():
    class LayerNorm(Kind):   # what moving `layernorm` into scope alone would give
        name = "layernorm"
        weights = ("gamma", "beta")
        act = True

    lacking = missing_facets(LayerNorm(), LOWERINGS.emitted)
    assert {"normalize", "output_shape", "run", "export (or export_refusal)",
            "weight_shapes (it stores weights)", "table form (layertype code)",
            "auto_act (what act 'auto' means)"} <= set(lacking)
    assert any("lowering" in item for item in lacking)


@pytest.mark.parametrize("name", [k for k in schema.kinds(schema.OUT) + schema.kinds(schema.OPEN)])
def test_a_kind_not_computed_is_refused_by_its_reason_not_a_fall_through(name):
    kind = schema.KINDS[name]
    layer = ViyaLayer("l1", name, {"dropout": 0.0}, ["data"])
    with pytest.raises(Exception) as err:
        output_shape(layer, [(3, 8, 8)], ExecutorOptions())
    assert kind.why in str(err.value) and "KeyError" not in repr(err.value)
    with pytest.raises(KindRefused):
        kind.run(layer, [np.zeros((1, 3, 8, 8), np.float32)], ExecutorOptions())
