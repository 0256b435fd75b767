"""The argument parser of `irc`."""
from __future__ import annotations

import argparse
from pathlib import Path

from irc import __version__
from irc.cli.detection_options import add_detection_arguments
from irc.cli.commands import cmd_compile, cmd_ops, cmd_passes, cmd_verify
from irc.cli.tools import cmd_deploy, cmd_diff, cmd_export, cmd_inspect


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irc", description="Compile ONNX (and Keras, Caffe, "
                                     "PyTorch) models into SAS Viya deep-learning models, "
                                     "with proof.")
    parser.add_argument("--version", action="version", version=f"irc {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, quiet: bool | str = True):
        """--debug, and --quiet where the command has progress (``quiet``: its help text)."""
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks")
        if quiet:
            p.add_argument("--quiet", "-q", action="store_true",
                           help=quiet if isinstance(quiet, str) else "no progress or summary")

    def comparison(p):
        """How `verify` and `diff` compare the source with the executor."""
        p.add_argument("--inputs", help=".npz with one array per source input "
                       "(default: seeded random)")
        p.add_argument("--rtol", type=float, default=1e-4)
        p.add_argument("--atol", type=float, default=1e-5)

    def executor_options(p):
        p.add_argument("--option", action="append", metavar="KEY=VALUE",
                       help="reference executor option for an open point (a wrong KEY "
                            "lists the valid ones)")

    def source_options(p):
        """How the source model is read: the same group on every command that reads one."""
        g = p.add_argument_group("source model options (compile, verify, diff, inspect)")
        g.add_argument("--input-shape", action="append", metavar="[NAME:]N,C,H,W",
                       help="fix dynamic input dimensions (repeat per input); TorchScript and "
                            "pickled-module files need it (verify, diff: the output folder's "
                            "shape by default)")
        g.add_argument("--weights", metavar="FILE",
                       help="a Caffe net's .caffemodel, a darknet .cfg's .weights")
        g.add_argument("--drop-lrn", action="store_true",
                       help="Caffe: drop LRN layers (Viya has none; numbers change, say how much)")
        g.add_argument("--allow-lambda", action="store_true",
                       help="Keras: load Lambda layers and custom objects (runs model code)")
        g.add_argument("--keras-route", choices=["auto", "direct", "tf2onnx"], default="auto",
                       help="Keras: how the model becomes ONNX: irc's own emitter when every "
                            "layer has a direct handler, else tf2onnx (auto); or force one")
        g.add_argument("--allow-pickle", action="store_true",
                       help="PyTorch: load .pt2, TorchScript and pickled-module files (loading "
                            "runs code stored in the file: only for files you trust)")
        g.add_argument("--torch-exporter", choices=["auto", "dynamo", "torchscript"],
                       default="auto", help="PyTorch: how the model becomes ONNX: the dynamo "
                       "exporter, falling back to the TorchScript exporter if it fails (auto); "
                       "or force one (torchscript also takes a .pt2, through its module)")

    def debugging(p):
        p.add_argument("--dump-after", metavar="all|PASS[,PASS]",
                       help="write the graph after these passes to --dump-dir")
        p.add_argument("--dump-dir", default="irc-dumps",
                       help="where dumps go (NNN_<pass>.*; default ./irc-dumps, said on stderr)")
        p.add_argument("--dump-format", default="txt", help="comma list of txt,dot,svg,onnx")
        p.add_argument("--print-after", metavar="all|PASS[,PASS]",
                       help="print the graph after these passes (stderr)")
        p.add_argument("--time-passes", action="store_true",
                       help="print per-pass time and op-count changes (stderr)")
        p.add_argument("--explain", action="append", metavar="PASS",
                       help="say why PASS did not fire on the nodes it matched")

    p = sub.add_parser("compile", help="compile a model into a Viya output folder")
    p.add_argument("model", help="a .onnx, .prototxt, .keras, .h5, .pt2 or TorchScript .pt file")
    source_options(p)
    p.add_argument("-o", "--output", required=True, help="output folder (must not exist)")
    p.add_argument("--name", help="Viya model name (default: the file name)")
    p.add_argument("--scale", type=float, help="Viya input scale (source sees x*scale-offsets)")
    p.add_argument("--offsets", help="per-channel input offsets, comma-separated, in the "
                   "source's channel order")
    p.add_argument("--normstds", help="per-channel input std divisors, comma-separated")
    p.add_argument("--channel-order", choices=["bgr", "rgb"],
                   help="channel order the source was trained on (Viya feeds B,G,R; with rgb, "
                        "irc reverses the first convolutions' input channels). Default: bgr")
    add_detection_arguments(p)
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
    source_options(p)
    comparison(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=2)
    executor_options(p)
    common(p, quiet="no progress lines (the comparison table is still printed)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("inspect", help="the graph at a stage, as text, a picture or ONNX")
    p.add_argument("model", help="a model file, or an output folder of `irc compile`")
    p.add_argument("--stage", choices=["source", "onnx", "ir", "optimized", "viya"], default="ir")
    p.add_argument("--format", choices=["txt", "dot", "svg", "onnx"], default="txt")
    p.add_argument("-o", "--output", help="write to this file (needed for svg and onnx)")
    p.add_argument("--values", action="store_true",
                   help="--stage source/onnx: print every weight's values too (default: "
                        "each weight's shape and size)")
    source_options(p)
    common(p, quiet=False)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("diff", help="find the first Viya layer that diverges from the source")
    p.add_argument("model")
    p.add_argument("outdir")
    source_options(p)
    comparison(p)
    p.add_argument("--repro", metavar="DIR", help="write the diverging layer's ONNX sub-graph "
                   "and its inputs here")
    executor_options(p)
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
                   help="Viya semantics for an open point (docs/viya-semantics.md §16)")
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
    check = p.add_mutually_exclusive_group()
    check.add_argument("--check", dest="check", action="store_true", default=True,
                       help="score the folder's check set with dlScore and compare (default)")
    check.add_argument("--no-check", dest="check", action="store_false")
    common(p, quiet=False)
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("passes", help="list the passes, in pipeline order")
    p.set_defaults(func=cmd_passes)
    p = sub.add_parser("ops", help="list the source ops and layers irc converts")
    p.add_argument("framework", nargs="?", choices=["onnx", "caffe", "keras", "darknet"])
    p.set_defaults(func=cmd_ops)
    return parser
