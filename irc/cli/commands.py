"""The core commands: compile, verify, passes, ops."""
from __future__ import annotations

from irc.cli.detection_options import detection_from_args
from irc.cli.options import (_check_input_shape, _executor_options, _frontend_options,
                             _input_spec, _input_shapes, _instruments, _report_instruments)


def cmd_compile(args) -> int:
    from irc.progress import Progress, reporting

    progress = Progress(args.quiet)
    with reporting(progress):  # the frontends, passes and verify report their stages to it
        return _compile(args, progress)


def _compile(args, progress) -> int:
    from irc.api import compile as compile_model
    from irc.passes.registry import PassContext

    progress.step(f"reading {args.model}")
    instruments = _instruments(args)
    ctx = PassContext()
    try:
        model = compile_model(args.model, name=args.name,
                              input_shape=_input_shapes(args.input_shape),
                              input_options=_input_spec(args), instruments=instruments,
                              detection=detection_from_args(args),
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

    if args.no_verify:  # no source run at all: no check set (irc deploy --check) either
        model.origin = None
    tick = progress.counter("writing weights", len(model.weighted_layers()))
    out = model.save(args.output, force=args.force, progress=tick, check=check)
    progress.done()
    if not args.quiet:
        from irc.limits import format_bytes

        print(f"wrote {out}/ ({len(model.layers)} layers, {format_bytes(model.weight_bytes())} "
              "of weights)")
        for note in model.notes:
            print(f"note: {note}")
        if result_box:
            print(result_box[0].table())
    return 0


def cmd_verify(args) -> int:
    from irc.progress import Progress, reporting
    from irc.verify import load_inputs, verify

    _check_input_shape(args)
    inputs = load_inputs(args.inputs) if args.inputs else None
    progress = Progress(args.quiet)
    with reporting(progress):
        result = verify(args.model, args.outdir, inputs=inputs, rtol=args.rtol, atol=args.atol,
                        seed=args.seed, batch=args.batch, options=_executor_options(args.option),
                        **_frontend_options(args))
    progress.done()
    print(result.table())
    return 0 if result.ok else 1


def cmd_passes(args) -> int:
    from irc.passes.pipeline import DEFAULT_PIPELINE
    from irc.passes.catalog import load_all

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
    from irc.frontends.darknet import DARKNET_SECTIONS
    from irc.frontends.onnx.catalog import onnx_ops

    registries = [("ONNX ops", onnx_ops()), ("Caffe layers", CAFFE_LAYERS),
                  ("Darknet sections", DARKNET_SECTIONS)]
    try:
        from irc.frontends.keras import KERAS_LAYERS

        registries.append(("Keras layers", KERAS_LAYERS))
    except ImportError:  # the keras extra is not installed
        pass
    wanted = getattr(args, "framework", None)
    for title, registry in registries:
        if wanted and not title.lower().startswith(wanted):
            continue
        print(f"{title} irc converts:")
        routes = dict(registry.direct_table()) if hasattr(registry, "direct_table") else {}
        for op, note in registry.support_table():
            route = f"[{routes[op]}] " if routes.get(op, "direct") != "direct" else ""
            print(_wrapped(f"  {op:<24} ", route + note))
    return 0


def _wrapped(head: str, text: str) -> str:
    """``text`` after ``head``, wrapped to the terminal's width (at least 60 columns) with
    the continuation lines under the text: whole descriptions, never cut."""
    import shutil
    import textwrap

    width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))
    return textwrap.fill(text, width=width, initial_indent=head,
                         subsequent_indent=" " * len(head), break_on_hyphens=False)
