"""irc.limits: declared sizes refused before anything allocates them."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

from irc import limits
from irc.errors import InvalidModel, IrcError
from irc.limits import (ResourceLimitExceeded, check_activation_budget, check_graph_size,
                        check_tensor_bytes, graph_depth)

GIB = 1 << 30
REAL_PHYSICAL_RAM = limits.physical_ram


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("IRC_MAX_TENSOR_BYTES", "IRC_MAX_ACTIVATION_BYTES", "IRC_MAX_NODES",
                "IRC_MAX_GRAPH_DEPTH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(limits, "physical_ram", lambda: 16 * GIB)


# ---- one tensor ---------------------------------------------------------------------------


def test_size_is_returned_exactly():
    assert check_tensor_bytes((2, 3, 4), np.float32) == 96
    assert check_tensor_bytes((2, 3, 4), "float64") == 192
    assert check_tensor_bytes((5,), TensorProto.INT64) == 40  # ONNX element type codes
    assert check_tensor_bytes((), np.float32) == 4  # a scalar


def test_default_limit_is_half_the_physical_ram():
    assert limits.max_tensor_bytes() == 8 * GIB
    check_tensor_bytes((2 * GIB,), np.float32)  # exactly 8 GiB: allowed
    with pytest.raises(ResourceLimitExceeded):
        check_tensor_bytes((2 * GIB + 1,), np.float32)


def test_physical_ram_comes_from_sysconf(monkeypatch):
    assert REAL_PHYSICAL_RAM() > 64 << 20  # any machine running the tests has more
    monkeypatch.setattr(limits.os, "sysconf", lambda name: -1)
    assert REAL_PHYSICAL_RAM() == 8 * GIB  # the platform cannot say: a fixed fallback


def test_huge_tensor_is_refused_with_file_node_and_hint():
    with pytest.raises(ResourceLimitExceeded) as info:
        check_tensor_bytes((10 ** 12, 10 ** 12), np.float32, "initializer 'w'",
                           file="m.onnx", node="conv1")
    err = info.value
    assert isinstance(err, IrcError) and err.exit_code == 2 and err.kind == "resource limit"
    text = str(err)
    assert text.startswith("m.onnx: node 'conv1': initializer 'w' of shape "
                           "1000000000000x1000000000000")
    assert "IRC_MAX_TENSOR_BYTES" in text and "TiB" in text


def test_int64_overflow_is_not_fooled():
    """numpy's int64 product of these dims wraps around to 4; the true size is enormous."""
    dims = (2 ** 62 + 1, 4)
    assert int(np.prod(dims, dtype=np.int64)) == 4
    with pytest.raises(ResourceLimitExceeded):
        check_tensor_bytes(dims, np.float32)


@pytest.mark.parametrize("dims", [(-5, 3), (3, 0), (0,), (2, -1, 4)])
def test_negative_or_zero_dims_are_invalid_models(dims):
    with pytest.raises(InvalidModel) as info:
        check_tensor_bytes(dims, np.float32, "input 'x'", file="m.onnx")
    assert "input 'x'" in str(info.value) and "m.onnx" in str(info.value)
    assert not isinstance(info.value, ResourceLimitExceeded)


def test_empty_tensors_when_allowed():
    assert check_tensor_bytes((0, 3), np.float32, allow_empty=True) == 0
    with pytest.raises(InvalidModel):
        check_tensor_bytes((-1, 3), np.float32, allow_empty=True)


@pytest.mark.parametrize("dim", [None, "N", 2.5, True])
def test_non_integer_dims_are_invalid(dim):
    with pytest.raises(InvalidModel):
        check_tensor_bytes((1, dim), np.float32)


def test_numpy_integer_dims_are_fine():
    assert check_tensor_bytes((np.int64(2), np.int32(3)), np.float32) == 24


def test_unknown_element_types_are_invalid_models():
    with pytest.raises(InvalidModel):
        check_tensor_bytes((1,), 999)
    with pytest.raises(InvalidModel):
        check_tensor_bytes((1,), "no-such-type")


@pytest.mark.parametrize("value,expected", [("1000", 1000), ("4K", 4096), ("2G", 2 * GIB),
                                            ("2GB", 2 * GIB), ("1_000", 1000), ("3m", 3 << 20)])
def test_env_override(monkeypatch, value, expected):
    monkeypatch.setenv("IRC_MAX_TENSOR_BYTES", value)
    assert limits.max_tensor_bytes() == expected


def test_env_override_applies_to_checks(monkeypatch):
    monkeypatch.setenv("IRC_MAX_TENSOR_BYTES", "1K")
    check_tensor_bytes((256,), np.float32)
    with pytest.raises(ResourceLimitExceeded, match="1.0 KiB"):
        check_tensor_bytes((257,), np.float32)
    assert check_tensor_bytes((257,), np.float32, limit=2048) == 1028  # explicit limit wins


@pytest.mark.parametrize("value", ["lots", "-5", "0", "1.5G", "G"])
def test_bad_env_values_are_irc_errors(monkeypatch, value):
    monkeypatch.setenv("IRC_MAX_TENSOR_BYTES", value)
    with pytest.raises(ResourceLimitExceeded, match="IRC_MAX_TENSOR_BYTES"):
        check_tensor_bytes((1,), np.float32)


def test_long_shapes_are_abbreviated_in_messages():
    with pytest.raises(ResourceLimitExceeded) as info:
        check_tensor_bytes([2] * 100, np.float32)
    assert "..." in str(info.value) and len(str(info.value)) < 600


# ---- activations --------------------------------------------------------------------------


def test_activation_budget_sums_all_layers_times_batch():
    shapes = {"conv1": (16, 32, 32), "pool": (16, 16, 16), "fc": (10,)}
    per_example = 4 * (16 * 32 * 32 + 16 * 16 * 16 + 10)
    assert check_activation_budget(shapes, 2) == 2 * per_example
    assert check_activation_budget(list(shapes.values()), 3) == 3 * per_example


def test_activation_budget_names_the_largest_layer():
    shapes = {"small": (10,), "big": (512, 1024, 1024)}
    with pytest.raises(ResourceLimitExceeded) as info:
        check_activation_budget(shapes, 2, file="out/model.json", limit=GIB)
    text = str(info.value)
    assert "'big'" in text and "batch 2" in text and "--batch 1" in text
    assert text.startswith("out/model.json: ")


def test_activation_budget_default_and_env(monkeypatch):
    shapes = {"x": (GIB,)}  # 4 GiB per example
    check_activation_budget(shapes, 2)  # 8 GiB = half of the (stubbed) 16 GiB
    with pytest.raises(ResourceLimitExceeded):
        check_activation_budget(shapes, 3)
    monkeypatch.setenv("IRC_MAX_ACTIVATION_BYTES", "64G")
    check_activation_budget(shapes, 3)


@pytest.mark.parametrize("batch", [0, -1, 1.5, None, True])
def test_activation_budget_rejects_bad_batches(batch):
    with pytest.raises(InvalidModel):
        check_activation_budget({"x": (1,)}, batch)


def test_activation_budget_rejects_bad_dims():
    with pytest.raises(InvalidModel, match="'conv'"):
        check_activation_budget({"conv": (3, -1, 4)}, 1)


# ---- graphs -------------------------------------------------------------------------------


def test_graph_depth_of_chains_and_diamonds():
    assert graph_depth([]) == 0
    chain = [(["x"], ["a"]), (["a"], ["b"]), (["b"], ["c"])]
    assert graph_depth(chain) == 3
    diamond = [(["x"], ["a"]), (["a"], ["b"]), (["a"], ["c"]), (["c"], ["d"]),
               (["b", "d", ""], ["y"])]
    assert graph_depth(diamond) == 4  # x -> a -> c -> d -> y
    assert graph_depth([(["w1", "w2"], ["y"])]) == 1  # constants only


def test_graph_depth_of_a_100k_chain_needs_no_recursion():
    n = 100_000
    chain = [([f"v{i}"], [f"v{i + 1}"]) for i in range(n)]
    assert graph_depth(chain) == n


def test_graph_size_limits(monkeypatch):
    check_graph_size(100_000, 10_000)
    with pytest.raises(ResourceLimitExceeded, match="100,001 nodes"):
        check_graph_size(100_001, 10)
    with pytest.raises(ResourceLimitExceeded, match="IRC_MAX_GRAPH_DEPTH"):
        check_graph_size(20_000, 10_001, file="m.onnx")
    check_graph_size(10, None)  # depth not computed: only the node count is checked
    monkeypatch.setenv("IRC_MAX_NODES", "5")
    with pytest.raises(ResourceLimitExceeded, match="IRC_MAX_NODES"):
        check_graph_size(6, 1)
    assert check_graph_size(6, 1, limit_nodes=6) is None


# ---- through the CLI: one message, exit 2 -------------------------------------------------


def test_cli_reports_a_limit_as_one_message(monkeypatch, tmp_path, capsys):
    import irc.api
    from irc.cli import main

    def refuse(*args, **kwargs):
        check_tensor_bytes((10 ** 12,), np.float32, "input 'x'", file="m.onnx")

    monkeypatch.setattr(irc.api, "compile", refuse)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    assert main(["compile", str(model), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("irc: resource limit: m.onnx: input 'x' of shape 1000000000000")
    assert "Traceback" not in err and err.count("irc: ") == 1
    assert not (tmp_path / "out").exists()
