"""Turning command-line arguments into API arguments (shared by the commands)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

from irc.errors import UnsupportedAttribute


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


def _instruments(args) -> list:
    from irc.passes import instruments as inst

    found = []
    if getattr(args, "dump_after", None):
        found.append(inst.DumpAfter(args.dump_dir, inst._pass_set(args.dump_after),
                                    args.dump_format.split(",")))
    if getattr(args, "print_after", None):
        found.append(inst.PrintAfter(inst._pass_set(args.print_after)))
    if getattr(args, "time_passes", False):
        found += [inst.Timing(), inst.OpCountDiff()]
    return found


def _report_instruments(args, instruments, ctx) -> None:
    for instrument in instruments:
        if hasattr(instrument, "report"):
            print(instrument.report(), file=sys.stderr)
    for name in getattr(args, "explain", None) or []:
        reasons = [(node, why) for p, node, why in ctx.refusals if p == name]
        print(f"{name}: {len(reasons)} refusal(s)", file=sys.stderr)
        for node, why in reasons:
            print(f"  {node}: {why}", file=sys.stderr)


def _key_values(pairs) -> dict[str, str]:
    """Repeated ``--option KEY=VALUE`` arguments as {KEY: VALUE} (values left as text)."""
    return dict(pair.partition("=")[::2] for pair in pairs or [])


def _executor_options(pairs):
    """--option key=value ... -> ExecutorOptions (numbers parsed, the rest as strings)."""
    from irc.backends.viya.executor import ExecutorOptions

    values = {}
    for key, raw in _key_values(pairs).items():
        try:
            values[key] = float(raw)
        except ValueError:
            values[key] = raw
    try:
        return ExecutorOptions(**values)
    except (TypeError, ValueError) as exc:
        raise UnsupportedAttribute(f"--option: {exc}", hint=(
            "see docs/viya-semantics.md §16 in the irc repository for the executor options "
            "and their values")) from None


def _write_or_print(text_or_bytes, target) -> None:
    if target is None:
        print(text_or_bytes)
    elif isinstance(text_or_bytes, bytes):
        Path(target).write_bytes(text_or_bytes)
    else:
        Path(target).write_text(text_or_bytes, encoding="utf-8")
