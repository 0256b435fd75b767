"""Run one fuzz case through the real CLI, in-process, and check what irc promises.

For every input: the exit code is 0, 1 or 2; on 1 and 2 stderr holds exactly one ``irc: ...``
message and no traceback; no exception escapes ``irc.cli.main``; on a non-zero exit neither
the output folder nor a ``.OUT.irc-*`` temporary folder exists; on exit 0 the folder holds
model.json, name_map.json and the weights file, verification passed, and every Viya name is a
unique, non-empty ``[a-z0-9_]+`` and the same in model.json, model_table.csv and the HDF5 file.
"""
from __future__ import annotations

import contextlib
import csv
import faulthandler
import io
import json
import os
import random
import re
import resource
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter

import numpy as np
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz.plugins import (BYTE_MUTATORS, FuzzFormat, Mutation, NotApplicable, Seed,
                                copy_seed)

NAME = re.compile(r"[a-z0-9_]+")
# Problem categories; the first three are the figures the suite must keep at zero.
TRACEBACK, PARTIAL, SILENT = "tracebacks", "partial outputs", "wrong-but-silent"
BAD_EXIT, BAD_MESSAGE, REFUSED = "bad exit codes", "bad messages", "valid inputs refused"
HANG = "hangs"  # found by a format's hang probe before irc runs in-process
CATEGORIES = (TRACEBACK, PARTIAL, SILENT, HANG, BAD_EXIT, BAD_MESSAGE, REFUSED)
# Address-space head room for one case: enough for any real small model, far below the RAM
# a declared-huge tensor would take, so a missing limit shows as MemoryError, not an OOM kill.
GUARD_BYTES = int(os.environ.get("IRC_FUZZ_GUARD_BYTES", 6 << 30))
# No file a case writes may exceed this (seeds are kilobytes; a runaway write must not fill
# the disk).
FILE_BYTES = 256 << 20
# A case running longer than this is a hang (seen: a corrupt .h5 spinning inside libhdf5, where
# no signal reaches Python): faulthandler dumps every thread's stack and ends the process, so
# the session fails with the culprit's stack instead of hanging (`pytest -v` names the case).
CASE_TIMEOUT = float(os.environ.get("IRC_FUZZ_CASE_TIMEOUT", 120))
WATCHDOG_FILE = None  # set by conftest.py: the real stderr, past pytest's capture


# ---- planning: which seed and mutators case N uses (known at collection time) ---------------


@dataclass(frozen=True)
class Plan:
    format: str
    index: int
    seed: str
    mutators: tuple[str, ...]

    @property
    def case_id(self) -> str:
        return f"{self.format}-{self.index:04d}-{'+'.join(self.mutators)}@{self.seed}"


def plan_case(fmt: FuzzFormat, index: int, base_seed: int) -> Plan:
    """Round-robin over mutators and seeds (every pair is covered in the first M*S cases);
    every other sweep stacks a second, randomly chosen mutator."""
    names = list(fmt.mutators)
    m, s = len(names), len(fmt.seed_names)
    first = names[index % m]
    seed = fmt.seed_names[(index // m) % s]
    chosen = [first]
    if (index // (m * s)) % 2 == 1:
        rng = random.Random(f"plan/{base_seed}/{fmt.name}/{index}")
        chosen.append(rng.choice(names))
    return Plan(fmt.name, index, seed, tuple(chosen))


def case_rng(plan: Plan, base_seed: int) -> random.Random:
    return random.Random(f"{base_seed}/{plan.case_id}")


# ---- results ------------------------------------------------------------------------------


@dataclass
class CaseResult:
    plan: Plan
    applied: list[str]
    description: str
    argv: list[str]
    exit_code: int | None
    stdout: str
    stderr: str
    traceback: str | None
    seconds: float
    must_convert: bool
    warnings: list[str] = field(default_factory=list)
    unverified: bool = False
    problems: dict[str, str] = field(default_factory=dict)
    known: str | None = None  # a reported bug this case is marked with

    def signature(self) -> str:
        """'<exception> @ <innermost irc frames>' for a traceback, else the problem kinds."""
        if self.traceback:
            lines = self.traceback.strip().splitlines()
            frames = re.findall(r'File "[^"]*/irc/([^"]+)", line \d+, in (\S+)', self.traceback)
            where = " > ".join(f"{path}:{fn}" for path, fn in frames[-3:])
            return f"{lines[-1]} @ {where}"
        return "; ".join(f"{k}: {v}" for k, v in self.problems.items())

    def report(self) -> str:
        lines = [f"case {self.plan.case_id}: {self.description}",
                 f"  argv: irc {' '.join(self.argv)}",
                 f"  exit code: {self.exit_code}"]
        for category, text in self.problems.items():
            lines.append(f"  {category.upper()}: {text}")
        if self.traceback:
            lines.append("  traceback:\n" + _indent(self.traceback))
        if self.stderr.strip():
            lines.append("  stderr:\n" + _indent(self.stderr[-3000:]))
        return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())


class Stats:
    """Every case's result, for the figures table printed at the end of the session."""

    def __init__(self):
        self.results: list[CaseResult] = []
        self.seed_checks: list[tuple[str, str, bool]] = []

    def add(self, result: CaseResult) -> None:
        self.results.append(result)

    def table(self) -> str:
        if not self.results:
            return ""
        formats = sorted({r.plan.format for r in self.results})
        head = (f"{'format':<8} {'inputs':>6} {'exit 0':>6} {'exit 1':>6} {'exit 2':>6} "
                f"{'other':>5} {'tracebacks':>10} {'partial':>7} {'silent':>7} "
                f"{'hangs':>5} {'bad msg':>7} {'refused':>7} {'seconds':>8}")
        lines = ["irc fuzz figures: problem columns are new/known (known = matches a reported "
                 "bug in KNOWN_BUGS); tracebacks, partial outputs and wrong-but-silent outputs "
                 "must have 0 new", head, "-" * len(head)]
        for fmt in formats + ["all"]:
            rs = [r for r in self.results if fmt == "all" or r.plan.format == fmt]
            codes = Counter(r.exit_code for r in rs)
            new = Counter(c for r in rs if not r.known for c in r.problems)
            known = Counter(c for r in rs if r.known for c in r.problems)
            other = sum(v for k, v in codes.items() if k not in (0, 1, 2))

            def cell(category, width):
                return f"{new[category]}/{known[category]}".rjust(width)
            lines.append(
                f"{fmt:<8} {len(rs):>6} {codes[0]:>6} {codes[1]:>6} {codes[2]:>6} {other:>5} "
                f"{cell(TRACEBACK, 10)} {cell(PARTIAL, 7)} {cell(SILENT, 7)} "
                f"{cell(HANG, 5)} {cell(BAD_MESSAGE, 7)} {cell(REFUSED, 7)} "
                f"{sum(r.seconds for r in rs):>8.1f}")
        bugs = Counter(r.known for r in self.results if r.known)
        if bugs:
            lines.append("known bugs hit: "
                         + ", ".join(f"{b} x{n}" for b, n in sorted(bugs.items())))
        lines.append("")
        lines.append("exit codes by mutator (0/1/2/other, problems):")
        by_mut: dict[tuple[str, str], list[CaseResult]] = {}
        for r in self.results:
            by_mut.setdefault((r.plan.format, r.applied[0] if r.applied else "-"), []).append(r)
        for (fmt, mut), rs in sorted(by_mut.items()):
            codes = Counter(r.exit_code for r in rs)
            bad = sum(1 for r in rs if r.problems)
            other = sum(v for k, v in codes.items() if k not in (0, 1, 2))
            lines.append(f"  {fmt}/{mut:<20} {len(rs):>4} cases  {codes[0]:>3}/{codes[1]:>3}/"
                         f"{codes[2]:>3}/{other:>2}" + (f"  PROBLEMS {bad}" if bad else ""))
        failing = [r for r in self.results if r.problems]
        if failing:
            lines.append("")
            lines.append(f"{len(failing)} case(s) with problems:")
            for r in failing[:40]:
                kinds = ", ".join(r.problems)
                known = f" [known: {r.known}]" if r.known else ""
                lines.append(f"  {r.plan.case_id}: {kinds}{known} - {r.description[:100]}")
        slow = max(self.results, key=lambda r: r.seconds)
        lines.append(f"slowest case: {slow.plan.case_id} ({slow.seconds:.2f} s)")
        return "\n".join(lines)


STATS = Stats()


# ---- running a case -----------------------------------------------------------------------


@contextlib.contextmanager
def _rlimit(which: int, cap: int):
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY:
        cap = min(cap, soft)
    resource.setrlimit(which, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(which, (soft, hard))


@contextlib.contextmanager
def memory_guard(head_room: int = GUARD_BYTES):
    """Cap the address space at (current + head_room) while a case runs, so an allocation sized
    by a mutated shape fails fast with MemoryError instead of swapping or being OOM-killed."""
    try:
        with open("/proc/self/statm") as f:
            current = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        yield
        return
    with _rlimit(resource.RLIMIT_AS, current + head_room):
        yield


@contextlib.contextmanager
def file_size_guard(limit: int = FILE_BYTES):
    """Cap every file written (fuzzer and irc alike) at ``limit`` bytes: a write past it fails
    with OSError (EFBIG) instead of filling the disk."""
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        with _rlimit(resource.RLIMIT_FSIZE, limit):
            yield
    finally:
        signal.signal(signal.SIGXFSZ, previous)


@contextlib.contextmanager
def native_output():
    """Capture file descriptors 1 and 2 (what C/C++ libraries such as onnxruntime write past
    Python's sys.stdout/sys.stderr); yields a dict filled with their text on exit."""
    captured = {}
    saved, files = {}, {}
    try:
        for fd in (1, 2):
            files[fd] = tempfile.TemporaryFile()
            saved[fd] = os.dup(fd)
            os.dup2(files[fd].fileno(), fd)
    except OSError:  # no usable descriptors: capture nothing
        for fd, old in saved.items():
            os.dup2(old, fd)
            os.close(old)
        yield captured
        return
    try:
        yield captured
    finally:
        for fd in (1, 2):
            os.dup2(saved[fd], fd)
            os.close(saved[fd])
            files[fd].seek(0)
            captured[fd] = files[fd].read().decode("utf-8", "replace")
            files[fd].close()


# Limits for the cases (irc.limits): far below the address-space guard, so a declared-huge
# tensor is refused by irc's own checks (once wired) the same way on any machine.
# IRC_H5_READ_SECONDS: a damaged .h5 that makes libhdf5 spin is refused after 10 s, not 60.
CASE_ENV = {"IRC_MAX_TENSOR_BYTES": "1G", "IRC_MAX_ACTIVATION_BYTES": "2G",
            "IRC_H5_READ_SECONDS": "10"}


@contextlib.contextmanager
def case_environment(values: dict[str, str] = CASE_ENV):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if saved[k] is None})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)


def invoke(argv: list[str]) -> tuple[int | None, str, str, str | None, list[str]]:
    """irc.cli.main(argv) in-process: (exit code, stdout, stderr, traceback, warnings).

    stdout/stderr hold what Python code printed followed by what native code wrote to the
    descriptors (prefixed "[native] ", so such noise is visible as extra lines)."""
    from irc.cli import main

    out, err = io.StringIO(), io.StringIO()
    tb = None
    code: int | None
    with warnings.catch_warnings(record=True) as caught, native_output() as native:
        warnings.simplefilter("always")
        faulthandler.dump_traceback_later(CASE_TIMEOUT, exit=True,
                                          file=WATCHDOG_FILE or sys.__stderr__)
        try:
            with case_environment(), memory_guard(), contextlib.redirect_stdout(out), \
                    contextlib.redirect_stderr(err):
                code = main(argv)
        except SystemExit as exc:  # argparse: usage errors exit 2 with a message
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # noqa: BLE001 - anything else escaping main() is the bug
            code = None
            tb = traceback.format_exc()
        finally:
            faulthandler.cancel_dump_traceback_later()
    if code in (130, 143):  # main() caught a Ctrl-C or SIGTERM meant for this session: stop
        raise KeyboardInterrupt(f"irc exited {code} (interrupted) during {argv[:2]}")
    stdout, stderr = out.getvalue(), err.getvalue()
    if native.get(1, "").strip():
        stdout += "".join(f"[native] {line}\n" for line in native[1].splitlines())
    if native.get(2, "").strip():
        stderr += "".join(f"[native] {line}\n" for line in native[2].splitlines())
    return code, stdout, stderr, tb, [str(w.message)[:200] for w in caught]


def prepare_case(fmt: FuzzFormat, plan: Plan, seed: Seed, root: Path, base_seed: int):
    """Copy the seed into root/model and apply the planned mutators (falling through to the next
    mutator when one is not applicable). Returns (applied, Mutation merged)."""
    folder = root / "model"
    copy_seed(seed, folder)
    rng = case_rng(plan, base_seed)
    names = list(fmt.mutators)
    applied, descriptions, extra = [], [], []
    main, must_convert, unverified = None, True, False
    # Structured mutators first, byte-level ones last: a structured mutator parses the file
    # (h5py, protobuf, zip) and must not meet bytes already damaged.
    order = sorted(plan.mutators, key=lambda n: n in BYTE_MUTATORS)
    for position, wanted in enumerate(order):
        start = names.index(wanted)
        for step in range(len(names)):
            name = names[(start + step) % len(names)]
            try:
                mutation: Mutation = fmt.mutators[name](rng, folder, seed)
            except NotApplicable:
                continue
            except Exception as exc:  # a stacked mutator meeting an already broken file
                if position == 0:
                    raise
                descriptions.append(f"({name} skipped: {type(exc).__name__})")
                break
            applied.append(name)
            descriptions.append(f"{name}: {mutation.description}")
            extra += mutation.extra_args
            main = mutation.main or main
            must_convert = must_convert and mutation.must_convert
            unverified = unverified or mutation.unverified
            break
    merged = Mutation("; ".join(descriptions), tuple(extra), main, must_convert and bool(applied),
                      unverified)
    return applied, merged


def run_case(fmt: FuzzFormat, plan: Plan, seed: Seed, root: Path, base_seed: int) -> CaseResult:
    with file_size_guard():
        applied, mutation = prepare_case(fmt, plan, seed, root, base_seed)
        main_file = root / "model" / (mutation.main or seed.main)
        out = root / "out"
        argv = fmt.argv(main_file, out, seed.extra_args + mutation.extra_args)
        start = time.perf_counter()
        hang = fmt.hang_probe(main_file, applied)
        if hang:  # irc would never return: record it without running irc in-process
            result = CaseResult(plan, applied, mutation.description, argv, None, "", "", None,
                                time.perf_counter() - start, mutation.must_convert)
            result.problems = {HANG: hang}
            return result
        code, stdout, stderr, tb, caught = invoke(argv)
    result = CaseResult(plan, applied, mutation.description, argv, code, stdout, stderr, tb,
                        time.perf_counter() - start, mutation.must_convert, caught,
                        unverified=mutation.unverified)
    result.problems = check_result(result, out)
    if code == 0 and not result.unverified and not result.problems:
        # Independent re-check on other inputs (seed 7, batch 3): exit 0 must mean "matches".
        again = invoke(fmt.verify_argv(main_file, out))
        if again[0] != 0:
            detail = (again[3] or again[2] or again[1]).strip().splitlines()[-1:] or [""]
            nan = any(" nan " in line for line in again[1].splitlines())
            result.problems[SILENT] = (
                f"`irc verify --seed 7` of the written folder exits {again[0]}: {detail[0][:300]}"
                + (" (NaN in the compared outputs)" if nan else ""))
    return result


# ---- the checks ---------------------------------------------------------------------------


def leftovers(out: Path) -> list[Path]:
    """Temporary folders the writer may leave beside ``out`` (.OUT.irc-*, .OUT.old-*)."""
    parent = out.parent
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir()
                  if p.name.startswith((f".{out.name}.irc-", f".{out.name}.old-")))


def check_result(r: CaseResult, out: Path) -> dict[str, str]:
    problems: dict[str, str] = {}
    if r.traceback is not None:
        last = r.traceback.strip().splitlines()[-1]
        problems[TRACEBACK] = f"exception escaped irc.cli.main: {last}"
    elif r.exit_code not in (0, 1, 2):
        problems[BAD_EXIT] = f"exit code {r.exit_code!r}"
    if r.exit_code in (1, 2):
        messages = [line for line in r.stderr.splitlines() if line.startswith("irc: ")]
        native = [line for line in r.stderr.splitlines() if line.startswith("[native] ")]
        if len(messages) != 1 or "Traceback" in r.stderr or native:
            problems[BAD_MESSAGE] = (
                f"{len(messages)} 'irc:' line(s)"
                + (" and a traceback" if "Traceback" in r.stderr else "")
                + (f" and {len(native)} line(s) written by native code, e.g. {native[0][9:120]!r}"
                   if native else ""))
    left = leftovers(out)
    if r.exit_code != 0:
        partial = ([str(out)] if out.exists() else []) + [p.name for p in left]
        if partial:
            problems[PARTIAL] = f"exit {r.exit_code} left {partial}"
    else:
        if left:
            problems[PARTIAL] = f"exit 0 left temporary folders {[p.name for p in left]}"
        wrong = check_output_folder(out, r.stdout, verified=not r.unverified)
        if wrong:
            problems[SILENT] = "; ".join(wrong)
    if r.must_convert and r.exit_code != 0 and TRACEBACK not in problems:
        first = next((line for line in r.stderr.splitlines() if line.startswith("irc: ")), "")
        problems[REFUSED] = f"a names-only change made a valid model exit {r.exit_code}: {first}"
    return problems


def check_output_folder(out: Path, stdout: str | None = None, verified: bool = True) -> list[str]:
    """What is wrong with an output folder written with exit 0 (empty list: nothing).

    ``verified=False``: a conversion irc does not verify by design (no weights): the weights
    file and the verification table are not required, but whatever was written is checked."""
    if not out.is_dir():
        return [f"exit 0 but no output folder {out}"]
    wrong = []
    for name in ("model.json", "name_map.json"):
        if not (out / name).is_file():
            wrong.append(f"{name} missing")
    if wrong:
        return wrong
    try:
        payloads = json.loads((out / "model.json").read_text(encoding="utf-8"))
        name_map = json.loads((out / "name_map.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"unreadable JSON: {exc}"]
    weights = payloads.get("dlImportModelWeights", {}).get("weightFilePath", "")
    if not weights or Path(weights).name != weights:
        wrong.append(f"weights file {weights!r} is not a plain file name")
    elif verified and not (out / weights).is_file():
        wrong.append(f"weights file {weights!r} missing from the folder")
    if stdout is not None and verified:
        rows = [line for line in stdout.splitlines() if line.rstrip().endswith((" yes", " NO"))]
        if "all outputs match" not in stdout or not rows:
            wrong.append("exit 0 without a passed verification table on stdout")
    wrong += check_names(out, payloads, name_map, weights)
    return wrong


def _bad_names(names, where: str) -> list[str]:
    problems = [f"{where}: invalid name {n!r}" for n in names
                if not isinstance(n, str) or not NAME.fullmatch(n)]
    dups = [n for n, k in Counter(names).items() if k > 1]
    if dups:
        problems.append(f"{where}: duplicate names {dups[:5]}")
    return problems


def check_names(out: Path, payloads: dict, name_map: dict, weights: str) -> list[str]:
    """Trap 33: one unique, non-empty, lower-case [a-z0-9_]+ name per layer, in every file."""
    import h5py

    problems = []
    calls = payloads.get("addLayer", [])
    names = [c.get("name") for c in calls]
    problems += _bad_names(names, "model.json addLayer")
    problems += _bad_names([payloads.get("model_name")], "model.json model name")
    known = set(names)
    for c in calls:
        for src in c.get("srcLayers", []):
            if src not in known:
                problems.append(f"model.json: srcLayers {src!r} of {c.get('name')!r} is no layer")
    map_names = list(name_map.get("layers", {}))
    if map_names != names:
        problems.append(f"name_map.json layers {map_names[:5]}... differ from model.json "
                        f"{names[:5]}...")
    for key in ("inputs", "outputs"):
        for src, layer in name_map.get(key, {}).items():
            if layer not in known:
                problems.append(f"name_map.json {key}[{src!r}] = {layer!r} is no layer")
    if weights and (out / weights).is_file():
        try:
            with h5py.File(out / weights, "r") as f:
                listed = [n.decode() if isinstance(n, bytes) else str(n)
                          for n in f.attrs.get("layer_names", [])]
                problems += _bad_names(listed, "HDF5 layer_names")
                if set(f.keys()) != set(listed):
                    problems.append(f"HDF5 groups {sorted(f.keys())[:5]} != layer_names "
                                    f"{listed[:5]}")
                for layer in listed:
                    if layer not in known:
                        problems.append(f"HDF5 layer {layer!r} is not in model.json")
                        continue
                    group = f.get(layer)
                    for w in (group.attrs.get("weight_names", []) if group is not None else []):
                        w = w.decode() if isinstance(w, bytes) else str(w)
                        if not w.startswith(f"{layer}/") or f"{layer}/{w}" not in f:
                            problems.append(f"HDF5 weight {w!r} of {layer!r} misplaced")
                            continue
                        data = f[f"{layer}/{w}"]
                        if data.dtype != np.float32:  # trap 35
                            problems.append(f"HDF5 weight {w!r} is {data.dtype}, not float32")
                        elif not np.isfinite(data[()]).all():
                            problems.append(f"HDF5 weight {w!r} holds non-finite values "
                                            "(NaN/Inf written without a word)")
                weighted = {c["name"] for c in calls
                            if c.get("layer", {}).get("type") in ("convo", "groupconvo", "fc",
                                                                  "batchnorm")}
                if weighted - set(listed):
                    missing = sorted(weighted - set(listed))
                    problems.append(f"layers without weights in HDF5: {missing}")
        except OSError as exc:
            problems.append(f"HDF5 unreadable: {exc}")
    table = out / "model_table.csv"
    if table.is_file():
        with open(table, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        table_layers = list(dict.fromkeys(r["_DLKey0_"] for r in rows if r["_DLLayerID_"]))
        if table_layers != names:
            problems.append(f"model_table.csv layers {table_layers[:5]} != model.json "
                            f"{names[:5]}")
        for r in rows:
            if r["_DLKey1_"].startswith("srclayers.") and r["_DLChrVal_"] not in known:
                problems.append(f"model_table.csv srclayers {r['_DLChrVal_']!r} is no layer")
    return problems
