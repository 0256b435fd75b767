"""The tool commands: inspect, diff, export, deploy."""
from __future__ import annotations

from pathlib import Path

from irc.errors import UsageError

from irc.cli.options import (_executor_options, _frontend_options, _input_shapes,
                             _key_values, _write_or_print)


def cmd_diff(args) -> int:
    from irc.debug.diff import diff
    from irc.verify import load_inputs

    inputs = load_inputs(args.inputs) if args.inputs else None
    report = diff(args.model, args.outdir, inputs=inputs, rtol=args.rtol, atol=args.atol,
                  repro_dir=args.repro, options=_executor_options(args.option),
                  input_shape=_input_shapes(args.input_shape), **_frontend_options(args))
    print(report.text())
    return 0 if report.first_bad is None else 1


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
            from irc.ir.side_file import save_with_weights

            save_with_weights(model, Path(args.output))
        else:
            _write_or_print(onnx.printer.to_text(model.graph) if args.values
                            else _graph_without_values(model.graph), args.output)
        return 0
    from irc.api import import_model, optimize

    graph = import_model(args.model, _input_shapes(args.input_shape),
                         **_frontend_options(args)).graph
    if args.stage == "optimized" or args.stage == "viya":
        optimize(graph)
    if args.stage == "viya":
        from irc.backends.viya.lower import lower

        _write_or_print(lower(graph, label=str(args.model)).summary_text(), args.output)
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


def _graph_without_values(graph) -> str:
    """The ONNX graph as text with each weight as its type, shape and size instead of its
    values (`--values` prints them): the structure is what one reads."""
    import onnx

    from irc.limits import format_bytes

    bare = onnx.GraphProto(name=graph.name)  # field by field: the weights are not copied
    bare.node.extend(graph.node)
    bare.input.extend(graph.input)
    bare.output.extend(graph.output)
    bare.value_info.extend(graph.value_info)
    lines = [f"weights: {len(graph.initializer)} initializer(s) (values: --values)"]
    for tensor in graph.initializer:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
        count = 1
        for d in tensor.dims:
            count *= int(d)
        dims = "x".join(str(d) for d in tensor.dims) or "scalar"
        lines.append(f"  {tensor.name}: {dtype} {dims} ({count} values, "
                     f"{format_bytes(count * dtype.itemsize)})")
    return onnx.printer.to_text(bare) + "\n" + "\n".join(lines)


def cmd_export(args) -> int:
    from irc.frontends.viya import export

    options = _key_values(args.option)
    if args.seed is not None:
        options["seed"] = args.seed
    if args.fc_weight_order:
        options["fc_weight_order"] = args.fc_weight_order
    target = args.output or f"{Path(args.model).stem}.onnx"
    try:
        model = export(args.model, target, weights=args.weights,
                       generate_weights=args.generate_weights, options=options or None)
    except ValueError as exc:  # an unknown option name or value (the message lists them)
        raise UsageError(f"--option: {exc}") from None
    print(f"wrote {target} ({len(model.graph.node)} ONNX nodes)")
    return 0


def cmd_deploy(args) -> int:
    from irc.backends.viya.deploy import connect, deploy

    conn = connect(args.host, args.port, args.protocol, path=args.url_path,
                   authinfo=args.authinfo, timeout=args.timeout)
    try:
        report = deploy(args.folder, conn, caslib=args.caslib, server_path=args.server_path,
                        labels=args.labels, upload_weights=args.upload, use_table=args.use_table,
                        replace=not args.no_replace, save=not args.no_save,
                        check=args.check)
    finally:
        conn.close()
    print(report.summary())
    return 1 if report.check_failed else 0
