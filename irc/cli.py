"""The `irc` command line. Heavy imports happen inside commands so `irc --help` starts fast.

Exit codes: 0 success, 1 verification mismatch, 2 any other user-facing error (one message,
no traceback unless --debug).
"""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from irc import __version__
from irc.errors import IrcError, UnsupportedAttribute


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


def _floats(text: str | None):
    return None if text is None else [float(v) for v in text.split(",")]


def _input_options(args) -> dict:
    options = {}
    if args.scale is not None:
        options["scale"] = args.scale
    if args.offsets is not None:
        options["offsets"] = _floats(args.offsets)
    if args.normstds is not None:
        options["normstds"] = _floats(args.normstds)
    if args.channel_order:
        options["channel_order"] = args.channel_order
    return options


def _frontend_options(args) -> dict:
    """The frontend switches a command was given (only those its parser has)."""
    options = {}
    if getattr(args, "weights", None):
        options["weights"] = args.weights
    if getattr(args, "drop_lrn", False):
        options["drop_lrn"] = True
    if getattr(args, "allow_lambda", False):
        options["allow_lambda"] = True
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


def cmd_compile(args) -> int:
    from irc.api import compile as compile_model
    from irc.progress import Progress

    from irc.passes.registry import PassContext

    progress = Progress(args.quiet)
    progress.step(f"reading {args.model}")
    instruments = _instruments(args)
    ctx = PassContext()
    try:
        model = compile_model(args.model, name=args.name,
                              input_shape=_input_shapes(args.input_shape),
                              input_options=_input_options(args), instruments=instruments,
                              pass_context=ctx, **_frontend_options(args))
    finally:
        _report_instruments(args, instruments, ctx)
    result_box = []

    def check(folder):
        if args.no_verify or not model.has_weights:
            return
        from irc.errors import VerificationFailed
        from irc.verify import verify

        progress.step("verifying: source runtime vs reference executor")
        result = verify(args.model, folder, rtol=args.rtol, atol=args.atol,
                        **_frontend_options(args))
        result_box.append(result)
        if not result.ok:
            raise VerificationFailed(
                "the emitted model does not match the source:\n" + result.table(),
                file=args.model, hint="nothing was written; `irc compile --no-verify` keeps the "
                                      "files for `irc verify` / inspection")

    tick = progress.counter("writing weights", len(model.weighted_layers()))
    out = model.save(args.output, force=args.force, progress=tick, check=check)
    progress.done()
    if not args.quiet:
        print(f"wrote {out}/ ({len(model.layers)} layers, {model.weight_bytes() / 1e6:.1f} MB of "
              "weights)")
        for note in model.notes:
            print(f"note: {note}")
        if result_box:
            print(result_box[0].table())
    return 0


def cmd_verify(args) -> int:
    from irc.verify import load_inputs, verify

    inputs = load_inputs(args.inputs) if args.inputs else None
    result = verify(args.model, args.outdir, inputs=inputs, rtol=args.rtol, atol=args.atol,
                    seed=args.seed, batch=args.batch, options=_executor_options(args.option),
                    **_frontend_options(args))
    print(result.table())
    return 0 if result.ok else 1


def _executor_options(pairs):
    """--option key=value ... -> ExecutorOptions (numbers parsed, the rest as strings)."""
    from irc.backends.viya.executor import ExecutorOptions

    values = {}
    for pair in pairs or []:
        key, _, raw = pair.partition("=")
        try:
            values[key] = float(raw)
        except ValueError:
            values[key] = raw
    try:
        return ExecutorOptions(**values)
    except (TypeError, ValueError) as exc:
        raise UnsupportedAttribute(f"--option: {exc}", hint="see viya-semantics.md §16 for the "
                                   "executor options and their values") from None


def cmd_diff(args) -> int:
    from irc.debug.diff import diff
    from irc.verify import load_inputs

    inputs = load_inputs(args.inputs) if args.inputs else None
    report = diff(args.model, args.outdir, inputs=inputs, rtol=args.rtol, atol=args.atol,
                  repro_dir=args.repro, options=_executor_options(args.option))
    print(report.text())
    return 0 if report.first_bad is None else 1


def _write_or_print(text_or_bytes, target) -> None:
    if target is None:
        print(text_or_bytes)
    elif isinstance(text_or_bytes, bytes):
        Path(target).write_bytes(text_or_bytes)
    else:
        Path(target).write_text(text_or_bytes, encoding="utf-8")


def cmd_inspect(args) -> int:
    from irc.errors import IrcIOError

    if Path(args.model).is_dir():  # an output folder: the Viya model as the executor reads it
        from irc.debug.inspect_folder import describe_folder

        print(describe_folder(args.model))
        return 0
    if args.format in ("svg", "onnx") and not args.output:
        raise IrcIOError(f"--format {args.format} needs -o FILE")
    if args.stage in ("source", "onnx"):
        import onnx

        from irc.frontends.onnx.loader import load_model
        from irc.frontends.source import open_source, to_onnx

        options = _frontend_options(args)
        src = open_source(args.model, options.pop("weights", None), **options)
        lowered = to_onnx(src, _input_shapes(args.input_shape))
        model, _ = load_model(lowered.onnx, src.label)
        if args.format == "onnx":
            onnx.save(model, args.output)
        else:
            _write_or_print(onnx.printer.to_text(model.graph), args.output)
        return 0
    from irc.api import import_model, optimize

    graph = import_model(args.model, _input_shapes(args.input_shape),
                         **_frontend_options(args)).graph
    if args.stage == "optimized" or args.stage == "viya":
        optimize(graph)
    if args.stage == "viya":
        from irc.backends.viya.lower import lower

        _write_or_print(lower(graph, label=str(args.model)).summary(), args.output)
        return 0
    from irc.passes.instruments import write_graph

    if args.format == "dot" and not args.output:
        from irc.ir.dot import to_dot

        print(to_dot(graph))
        return 0
    if args.output and args.format != "txt":
        target = Path(args.output)
        written = write_graph(graph, target.with_suffix(""), [args.format])
        written[0].replace(target)
        return 0
    from irc.ir.printer import format_graph

    _write_or_print(format_graph(graph), args.output)
    return 0


def cmd_export(args) -> int:
    from irc.frontends.viya import export

    options = {}
    for pair in args.option or []:
        key, _, value = pair.partition("=")
        options[key] = value
    if args.seed is not None:
        options["seed"] = args.seed
    if args.fc_weight_order:
        options["fc_weight_order"] = args.fc_weight_order
    target = args.output or f"{Path(args.model).stem}.onnx"
    try:
        model = export(args.model, target, weights=args.weights,
                       generate_weights=args.generate_weights, options=options or None)
    except ValueError as exc:  # an unknown option name or value
        raise UnsupportedAttribute(str(exc)) from None
    print(f"wrote {target} ({len(model.graph.node)} ONNX nodes)")
    return 0


def cmd_deploy(args) -> int:
    from irc.backends.viya.deploy import connect, deploy

    conn = connect(args.host, args.port, args.protocol, path=args.url_path,
                   authinfo=args.authinfo, timeout=args.timeout)
    try:
        report = deploy(args.folder, conn, caslib=args.caslib, server_path=args.server_path,
                        labels=args.labels, upload_weights=args.upload, use_table=args.use_table,
                        replace=not args.no_replace, save=not args.no_save)
    finally:
        conn.close()
    print(report.summary())
    return 0


def cmd_passes(args) -> int:
    from irc.passes.pipeline import DEFAULT_PIPELINE
    from irc.passes.registry import load_all

    registry = load_all()
    print("default pipeline, in order:")
    for i, name in enumerate(DEFAULT_PIPELINE, 1):
        print(f"  {i:2}. {name:<32} {registry[name].summary()}")
    extra = sorted(set(registry) - set(DEFAULT_PIPELINE))
    if extra:
        print("other passes: " + ", ".join(extra))
    return 0


def cmd_ops(args) -> int:
    """The support tables, generated from the frontends' handler registries."""
    from irc.frontends.caffe import CAFFE_LAYERS
    from irc.frontends.onnx import handlers  # noqa: F401 - fills the registry
    from irc.frontends.onnx.importer import ONNX_OPS

    registries = [("ONNX ops", ONNX_OPS), ("Caffe layers", CAFFE_LAYERS)]
    try:
        from irc.frontends.keras import KERAS_LAYERS
        from irc.frontends.keras.recurrent import RECURRENT_LAYERS

        registries.append(("Keras layers", KERAS_LAYERS))
        registries.append(("Keras sequence-model layers", RECURRENT_LAYERS))
    except ImportError:  # the keras extra is not installed
        pass
    wanted = getattr(args, "framework", None)
    for title, registry in registries:
        if wanted and not title.lower().startswith(wanted):
            continue
        print(f"{title} irc converts:")
        for op, note in registry.support_table():
            print(f"  {op:<24} {note}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irc", description="Compile ONNX (and Keras, Caffe) "
                                     "models into SAS Viya deep-learning models, with proof.")
    parser.add_argument("--version", action="version", version=f"irc {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, quiet=True):
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks")
        if quiet:
            p.add_argument("--quiet", "-q", action="store_true", help="no progress or summary")

    def frontend(p):
        p.add_argument("--weights", metavar="CAFFEMODEL", help="a Caffe net's .caffemodel")
        p.add_argument("--drop-lrn", action="store_true",
                       help="Caffe: drop LRN layers (Viya has none; numbers change, say how much)")
        p.add_argument("--allow-lambda", action="store_true",
                       help="Keras: load Lambda layers and custom objects (runs model code)")

    def debugging(p):
        p.add_argument("--dump-after", metavar="all|PASS[,PASS]",
                       help="write the graph after these passes to --dump-dir")
        p.add_argument("--dump-dir", default="irc-dumps", help="where dumps go (NNN_<pass>.*)")
        p.add_argument("--dump-format", default="txt", help="comma list of txt,dot,svg,onnx")
        p.add_argument("--print-after", metavar="all|PASS[,PASS]",
                       help="print the graph after these passes (stderr)")
        p.add_argument("--time-passes", action="store_true",
                       help="print per-pass time and op-count changes (stderr)")
        p.add_argument("--explain", action="append", metavar="PASS",
                       help="say why PASS did not fire on the nodes it matched")

    def shapes(p):
        p.add_argument("--input-shape", action="append", metavar="[NAME:]N,C,H,W",
                       help="fix dynamic input dimensions (repeat per input)")

    p = sub.add_parser("compile", help="compile a model into a Viya output folder")
    p.add_argument("model", help="a .onnx, .prototxt, .keras or .h5 file")
    frontend(p)
    p.add_argument("-o", "--output", required=True, help="output folder (must not exist)")
    p.add_argument("--name", help="Viya model name (default: the file name)")
    shapes(p)
    p.add_argument("--scale", type=float, help="Viya input scale (source sees x*scale-offsets)")
    p.add_argument("--offsets", help="per-channel input offsets, comma-separated, in the "
                   "source's channel order")
    p.add_argument("--normstds", help="per-channel input std divisors, comma-separated")
    p.add_argument("--channel-order", choices=["bgr", "rgb"],
                   help="channel order the source was trained on (Viya feeds B,G,R; with rgb, "
                        "irc reverses the first convolutions' input channels). Default: bgr")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--no-verify", action="store_true",
                   help="skip re-running the emitted files against the source")
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--atol", type=float, default=1e-5)
    debugging(p)
    common(p)
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("verify", help="re-run an output folder against its source model")
    p.add_argument("model")
    p.add_argument("outdir")
    frontend(p)
    p.add_argument("--inputs", help=".npz with one array per source input (default: seeded random)")
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--atol", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="reference executor option for an open point (viya-semantics.md §16)")
    common(p, quiet=False)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("inspect", help="the graph at a stage, as text, a picture or ONNX")
    p.add_argument("model", help="a model file, or an output folder of `irc compile`")
    p.add_argument("--stage", choices=["source", "onnx", "ir", "optimized", "viya"], default="ir")
    p.add_argument("--format", choices=["txt", "dot", "svg", "onnx"], default="txt")
    p.add_argument("-o", "--output", help="write to this file (needed for svg and onnx)")
    shapes(p)
    frontend(p)
    common(p, quiet=False)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("diff", help="find the first Viya layer that diverges from the source")
    p.add_argument("model")
    p.add_argument("outdir")
    p.add_argument("--inputs", help=".npz with one array per source input")
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--atol", type=float, default=1e-5)
    p.add_argument("--repro", metavar="DIR", help="write the diverging layer's ONNX sub-graph "
                   "and its inputs here")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="reference executor option for an open point (viya-semantics.md §16)")
    common(p, quiet=False)
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("export", help="a Viya model (output folder or model table) as ONNX")
    p.add_argument("model", help="an output folder, model.json, or a model table .csv")
    p.add_argument("-o", "--output", help="the .onnx file (default: <model>.onnx)")
    p.add_argument("--weights", help="KERAS-format .h5 or a weights table .csv")
    p.add_argument("--generate-weights", action="store_true",
                   help="seeded random weights of the right shapes (structure only)")
    p.add_argument("--seed", type=int)
    p.add_argument("--fc-weight-order", choices=["in_major", "out_major"],
                   help="fc kernel order in a weights table (open point; default in_major)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="Viya semantics for an open point (viya-semantics.md §16)")
    common(p, quiet=False)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("deploy", help="deliver an output folder to a SAS Viya CAS server (swat)")
    p.add_argument("folder", type=Path)
    p.add_argument("--host", help="CAS host or URL (default: CAS_URL / CAS_HOST)")
    p.add_argument("--port", type=int, help="binary protocol usually 5570 (default: CAS_PORT)")
    p.add_argument("--protocol", choices=["cas", "http", "https", "auto"])
    p.add_argument("--url-path", help="REST base path, e.g. cas-shared-default-http")
    p.add_argument("--authinfo", help="authinfo/netrc file for swat (default ~/.authinfo)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to reach the port")
    p.add_argument("--caslib", help="path caslib holding the weights file (default: active)")
    p.add_argument("--server-path", help="weights file path on the server, relative to --caslib")
    upload = p.add_mutually_exclusive_group()
    upload.add_argument("--upload", dest="upload", action="store_true", default=None,
                        help="copy the .h5 into the caslib's directory (shared file systems)")
    upload.add_argument("--no-upload", dest="upload", action="store_false")
    p.add_argument("--labels", type=Path, help="labels.csv (label_id,label) or one label a line")
    p.add_argument("--use-table", action="store_true",
                   help="upload model_table.csv instead of buildModel/addLayer")
    p.add_argument("--no-replace", action="store_true", help="fail if the model exists")
    p.add_argument("--no-save", action="store_true", help="keep session tables only (no .sashdat)")
    common(p, quiet=False)
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("passes", help="list the passes, in pipeline order")
    p.set_defaults(func=cmd_passes)
    p = sub.add_parser("ops", help="list the source ops and layers irc converts")
    p.add_argument("framework", nargs="?", choices=["onnx", "caffe", "keras"])
    p.set_defaults(func=cmd_ops)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every `finally`/cleanup (the atomic writer's) runs."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def main(argv=None) -> int:
    import signal

    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading_is_main() else None
    try:
        return args.func(args)
    except IrcError as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"irc: {exc.kind}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print("irc: interrupted; nothing was written", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def threading_is_main() -> bool:
    """Signal handlers can only be installed from the main thread (not in threaded callers)."""
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
