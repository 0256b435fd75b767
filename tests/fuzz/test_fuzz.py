"""Seeded mutation fuzzing of `irc compile`, one test per mutated input (issue #9).

Each case copies a real seed input, damages it with one or two mutators of its format plug-in
(tests/fuzz/formats/), runs ``irc.cli.main(["compile", ...])`` in-process and checks the
promises listed in tests/fuzz/harness.py. Reproduce one case with its id, e.g.
``pytest tests/fuzz -k onnx-0042``; the same ids give the same inputs for the same
``IRC_FUZZ_SEED``. Longer runs: ``IRC_FUZZ_ITERATIONS=5000 pytest tests/fuzz``.
"""
from __future__ import annotations

import os
import re

import pytest

from tests.fuzz.harness import (HANG, PARTIAL, SILENT, STATS, TRACEBACK, check_output_folder,
                                invoke, leftovers, plan_case, run_case)
from tests.fuzz.plugins import discover

FORMATS = discover()
BASE_SEED = int(os.environ.get("IRC_FUZZ_SEED", "0"))
ITERATIONS = os.environ.get("IRC_FUZZ_ITERATIONS")

# Bugs reported but not fixed yet: {bug id: regex on CaseResult.signature()}, where the
# signature is "<exception line> @ <innermost irc frames>" for a traceback, else the problems.
# A case matching one still runs and counts in the figures ("known" column) but is an expected
# failure. Remove an entry once its bug is fixed: its cases then pass (or fail loudly).
KNOWN_BUGS: dict[str, str] = {
    # Unknown element type codes (TensorProto.data_type / elem_type 0, 99) -> KeyError.
    "B1-element-type": r"^KeyError: .* @ (.*loader\.py:(store_initializer|infer_types)"
                       r"|api\.py:import_model > .*importer\.py:import_onnx > .*importer\.py:run)$",
    # External-data fields not parsed/validated (offset '0x10', '-8'; NUL in location).
    "B2-external-fields": r"^(ValueError: invalid literal for int\(\)|ValueError: embedded null"
                          r"|OverflowError: memory mapped offset).* @ .*loader\.py:"
                          r"(store_initializer|load)$",
    # Declared initializer dims not validated (negative, huge, int64-wrapping products).
    "B3-initializer-dims": r"^(ValueError: array is too big|OverflowError: memory mapped length"
                           r"|ValueError: negative dimensions|ValueError: weight .* declared)"
                           r".* @ .*(loader\.py:load|tensors\.py:load)$",
    # Element count of float_data/int64_data/raw_data not checked against the dims.
    "B4-initializer-data": r"^ValueError: cannot reshape array .* @ "
                           r".*loader\.py:store_initializer$",
    # Declared input sizes not limited: allocations in verify/lowering/passes.
    "B5-huge-inputs": r"^(\S*MemoryError|ValueError: array is too big|ValueError: Value out of "
                      r"range).* @ .*(verify\.py:make_inputs|lower\.py:lower_input|"
                      r"fold_batchnorm\.py:run|loader\.py:infer_types)$",
    # A constant node reading the output of a constant node that failed to fold.
    "B6-fold-chain": r"^KeyError: .* @ .*importer\.py:(fold|<dictcomp>) > ir/graph\.py:const > "
                     r"ir/graph\.py:value$",
    # Missing / empty required node inputs reach handlers and passes.
    "B7-node-inputs": r"^(IndexError: .* @ .*handlers\.py:\w+|networkx\.exception\.NetworkXError:"
                      r" The node .* is not in the digraph\..*)$",
    # Attribute values of the wrong type/length reach handlers and lowering.
    "B8-attributes": r"^((TypeError|ValueError): .* @ .*handlers\.py:\w+"
                     r"|IndexError: .* @ .*padding\.py:choose)$",
    # Non-numeric --offsets/--normstds.
    "B10-cli-floats": r"^ValueError: could not convert string to float: .* @ "
                      r".*cli(/\w+)?\.py:_floats",
    # Invalid UTF-8 in a string field: protobuf (upb) hands out bytes.
    "B11-utf8": r"^(UnicodeDecodeError|TypeError: cannot use a string pattern on a bytes"
                r"|TypeError: '.' not supported between instances of 'bytes' and 'str'"
                r"|TypeError: '.' not supported between instances of 'str' and 'bytes'"
                r"|TypeError: unsupported operand type\(s\) for /: 'PosixPath' and 'bytes'"
                r"|.*Consider using `key=` parameter)",
    # onnxruntime logs the error it also raises: a second message on stderr.
    "B12-ort-log": r"written by native code",
    # Constant input shapes not checked (BatchNormalization statistics of the wrong length).
    "B13-const-shapes": r"^ValueError: operands could not be broadcast .* @ "
                        r".*fold_batchnorm\.py:run$",
    # Non-finite --scale/--offsets/--normstds reach model.sas: casl_value raises ValueError.
    "B14-casl-nonfinite": r"^ValueError: CASL has no constant for .* @ .*casl\.py:",
    # NaN/Inf weights are written without a word (verification passes when the non-finite
    # values happen not to reach an output on its random inputs).
    "B15-nonfinite-weights": r"wrong-but-silent: .*non-finite values",
    # Caffe: zero weights of the prototxt's declared shapes allocated before any size check.
    "C1-caffe-declared-sizes": r"^(\S*MemoryError|ValueError: Maximum allowed dimension exceeded"
                               r"|ValueError: array is too big).* @ .*caffe/converter\.py:"
                               r"(weights|<listcomp>)$",
    # Caffe: stride 0 (and other non-positive geometry) divides by zero.
    "C2-caffe-geometry": r"^ZeroDivisionError: .* @ .*frontends/caffe/",
    # Keras: layer/model names Keras accepts but TensorFlow scopes do not ('x y', 'a.b:c',
    # non-ASCII) make tf2onnx fail; irc refuses a valid model as "unsupported op".
    "K1-keras-scope-names": r"valid inputs refused: .*tf2onnx could not convert the model",
    # Keras: a byte-damaged .h5 makes libhdf5 spin forever in _load_h5 (found by the probe).
    "K3-h5-hang": r"^hangs: HANG \(probe\)",
    # Keras: --input-shape NAME:dims (a dict) iterated as a shape.
    "K2-keras-named-shape": r"^ValueError: invalid literal for int\(\) .* @ "
                            r".*keras/convert\.py:\S+$",
}


def _plans():
    for fmt in FORMATS.values():
        n = int(ITERATIONS) if ITERATIONS else fmt.default_iterations
        for index in range(n):
            yield plan_case(fmt, index, BASE_SEED)


PLANS = list(_plans())


def _known(result) -> str | None:
    signature = result.signature()
    return next((bug for bug, pattern in KNOWN_BUGS.items() if re.search(pattern, signature)),
                None)


@pytest.mark.parametrize("fmt_name,seed_name",
                         [(f, s) for f, fmt in FORMATS.items() for s in fmt.seed_names])
def test_seed_converts(fmt_name, seed_name, fuzz_seeds, tmp_path):
    """Every unmutated seed converts and verifies: mutations start from working inputs."""
    fmt = fuzz_seeds.formats[fmt_name]
    seed = fuzz_seeds.get(fmt_name, seed_name)
    out = tmp_path / "out"
    code, stdout, stderr, tb, _ = invoke(fmt.argv(seed.folder / seed.main, out, seed.extra_args))
    assert tb is None, tb
    assert code == 0, stderr
    assert not leftovers(out)
    assert check_output_folder(out, stdout) == []


@pytest.mark.parametrize("plan", PLANS, ids=[p.case_id for p in PLANS])
def test_fuzz_case(plan, fuzz_seeds, tmp_path):
    fmt = fuzz_seeds.formats[plan.format]
    seed = fuzz_seeds.get(plan.format, plan.seed)
    result = run_case(fmt, plan, seed, tmp_path, BASE_SEED)
    result.known = _known(result) if result.problems else None
    STATS.add(result)
    if result.problems and result.known:
        pytest.xfail(f"known bug: {result.known}")
    assert not result.problems, "\n" + result.report()


def test_figures_have_the_three_zeros():
    """The session's totals (runs last in this module): no tracebacks, no partial outputs, no
    wrong-but-silent outputs, apart from cases marked as known bugs."""
    if not STATS.results:
        pytest.skip("no fuzz case ran in this session (deselected)")
    for category in (TRACEBACK, PARTIAL, SILENT, HANG):
        bad = [r.plan.case_id for r in STATS.results if category in r.problems and not r.known]
        assert bad == [], f"{category}: {bad}"
