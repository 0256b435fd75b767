"""Turning command-line arguments into API arguments (shared by the commands)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

from irc.errors import UnsupportedAttribute, UsageError


def _shape(text: str):
    """'1,3,224,224' or 'name:1,3,224,224' -> (name or None, shape)."""
    name, _, dims = text.rpartition(":")
    try:
        shape = tuple(int(d) for d in dims.replace("x", ",").split(","))
    except ValueError:
        raise UnsupportedAttribute(f"--input-shape {text!r} is not a list of integers",
                                   hint="write e.g. --input-shape 1,3,224,224 or "
                                        "--input-shape input:1,3,224,224") from None
    return (name or None), shape


def _input_shapes(values):
    if not values:
        return None
    pairs = [_shape(v) for v in values]
    if len(pairs) == 1 and pairs[0][0] is None:
        return pairs[0][1]
    if any(name is None for name, _ in pairs):
        raise UnsupportedAttribute("with several --input-shape options, name each input",
                                   hint="--input-shape a:1,3,32,32 --input-shape b:1,10")
    return dict(pairs)


def _floats(text: str | None, option: str = "value"):
    """'1,2.5,3' -> [1.0, 2.5, 3.0]; anything else (or a non-finite number) is refused."""
    if text is None:
        return None
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise UnsupportedAttribute(f"{option} {text!r} is not a list of finite numbers",
                                   hint=f"write e.g. {option} 103.9,116.8,123.7")
    return values


def _input_spec(args):
    """--scale/--offsets/--normstds/--channel-order as one validated InputSpec."""
    from irc.input_spec import InputSpec

    if args.scale is not None and len(str(args.scale).split(",")) != 1:
        raise UnsupportedAttribute(f"--scale {args.scale!r} must be one number")
    values = {key: _floats(str(text), f"--{key}") for key, text in
              (("scale", args.scale), ("offsets", args.offsets), ("normstds", args.normstds))
              if text is not None}
    if "scale" in values:
        values["scale"] = values["scale"][0]
    from irc.frontends.source import default_channel_order

    order = args.channel_order or default_channel_order(getattr(args, "model", None))
    return InputSpec(**values, channel_order=order, spelling="--")




def _frontend_options(args) -> dict:
    """The frontend switches a command was given (only those its parser has)."""
    options = {}
    if getattr(args, "weights", None):
        options["weights"] = args.weights
    if getattr(args, "drop_lrn", False):
        options["drop_lrn"] = True
    if getattr(args, "allow_lambda", False):
        options["allow_lambda"] = True
    if getattr(args, "keras_route", "auto") != "auto":
        options["keras_route"] = args.keras_route
    if getattr(args, "allow_pickle", False):
        options["allow_pickle"] = True
    if getattr(args, "torch_exporter", "auto") != "auto":
        options["torch_exporter"] = args.torch_exporter
    return options


def _pass_names(option: str, text: str | None, allow_all: bool = True):
    """The pass names of ``--dump-after a,b`` (None: every pass), each checked against the
    registry: a typo is an error listing the valid names, not a silent no-op."""
    from irc.passes import instruments as inst
    from irc.passes.catalog import load_all

    if text is None:
        return None
    names = inst._pass_set(text) if allow_all else {text}
    if names is None:
        return None
    known = load_all()
    unknown = sorted(set(names) - set(known))
    if unknown or not names:
        raise UsageError(f"{option}: no pass named {', '.join(map(repr, unknown)) or repr(text)}",
                         hint=("valid: all, " if allow_all else "valid: ")
                         + ", ".join(sorted(known)) + " (`irc passes` lists them in order)")
    return names


def _dump_formats(text: str) -> list[str]:
    from irc.passes.instruments import DUMP_FORMATS

    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in DUMP_FORMATS]
    if unknown or not formats:
        raise UsageError(f"--dump-format: unknown format(s) {', '.join(map(repr, unknown))}"
                         if unknown else "--dump-format: no format given",
                         hint="valid: " + ", ".join(DUMP_FORMATS) + " (comma-separated)")
    return formats


def _instruments(args) -> list:
    """The pass instruments the flags ask for, every pass name and format checked first."""
    from irc.passes import instruments as inst

    found = []
    for name in getattr(args, "explain", None) or []:
        _pass_names("--explain", name, allow_all=False)
    if getattr(args, "dump_after", None):
        passes = _pass_names("--dump-after", args.dump_after)
        found.append(inst.DumpAfter(args.dump_dir, passes, _dump_formats(args.dump_format)))
    if getattr(args, "print_after", None):
        found.append(inst.PrintAfter(_pass_names("--print-after", args.print_after)))
    if getattr(args, "time_passes", False):
        found += [inst.Timing(), inst.OpCountDiff()]
    return found


def _report_instruments(args, instruments, ctx) -> None:
    for instrument in instruments:
        if hasattr(instrument, "report"):
            print(instrument.report(), file=sys.stderr)
        if getattr(instrument, "written", None):  # DumpAfter: say where the files went
            print(f"irc: {len(instrument.written)} graph dump(s) written to "
                  f"{Path(instrument.directory).resolve()}/", file=sys.stderr)
    for name in getattr(args, "explain", None) or []:
        reasons = [(node, why) for p, node, why in ctx.refusals if p == name]
        print(f"{name}: {len(reasons)} refusal(s)", file=sys.stderr)
        for node, why in reasons:
            print(f"  {node}: {why}", file=sys.stderr)


def _key_values(pairs) -> dict[str, str]:
    """Repeated ``--option KEY=VALUE`` arguments as {KEY: VALUE} (values left as text)."""
    return dict(pair.partition("=")[::2] for pair in pairs or [])


def _executor_options(pairs):
    """--option key=value ... -> ExecutorOptions (numbers parsed, the rest as strings); an
    unknown key or a pair without '=' is an error listing the valid keys and their defaults."""
    import dataclasses

    from irc.backends.viya.executor import ExecutorOptions

    defaults = {f.name: f.default for f in dataclasses.fields(ExecutorOptions)}
    valid = "valid KEY=VALUE (defaults): " + ", ".join(f"{k}={v}" for k, v in defaults.items())
    values = {}
    for pair in pairs or []:
        key, eq, raw = pair.partition("=")
        if not eq or key not in defaults:
            what = f"unknown key {key!r}" if eq else f"{pair!r} is not KEY=VALUE"
            raise UsageError(f"--option: {what}", hint=valid)
        try:
            values[key] = float(raw)
        except ValueError:
            values[key] = raw
    try:
        return ExecutorOptions(**values)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--option: {exc}", hint=valid + " (docs/viya-semantics.md §16)") from None


def _check_input_shape(args) -> None:
    """`irc verify --input-shape`: the folder fixes the shape; a different one is an error
    (it would not be what was compiled), the same one is accepted."""
    import json

    shapes = _input_shapes(getattr(args, "input_shape", None))
    if shapes is None:
        return
    try:
        sources = json.loads((Path(args.outdir) / "model.json").read_text())["input"]["sources"]
    except (OSError, ValueError, KeyError):
        return  # verify itself reports an unreadable folder
    given = shapes if isinstance(shapes, dict) else {name: shapes for name in sources}
    for name, info in sources.items():
        if info.get("batch_axis", 0) != 0:
            continue  # a time-major sequence: the batch is not the first dimension
        want = tuple(info["shape"])
        have = tuple(given.get(name, ()))
        if have and tuple(have[1:]) != want:
            raise UsageError(f"--input-shape {','.join(map(str, have))}: {args.outdir} was "
                             f"compiled for examples of shape {','.join(map(str, want))}",
                             hint="drop --input-shape (verify reads the shape from "
                                  "model.json), or compile again with this shape")


def _write_or_print(text_or_bytes, target) -> None:
    if target is None:
        print(text_or_bytes)
    elif isinstance(text_or_bytes, bytes):
        Path(target).write_bytes(text_or_bytes)
    else:
        Path(target).write_text(text_or_bytes, encoding="utf-8")
