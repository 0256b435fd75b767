"""Delivering an output folder to a SAS Viya CAS server through swat (never a REST client of ours).

``deploy(folder, conn)`` loads the deepLearn action set, makes the HDF5 file visible to the
server (before creating anything), builds the model table (``buildModel`` + one ``addLayer`` per
layer, exactly model.json's payloads; or, with ``use_table``, by uploading model_table.csv), runs
``dlImportModelWeights`` (``formatType='KERAS'``, optional label table) and checks the result.

Credentials are swat's business: ``~/.authinfo``/``~/.netrc`` (or ``authinfo=``) or the
``CAS_USER``/``CAS_PASSWORD``/``CAS_TOKEN`` environment variables. irc never takes, logs or
repeats them; every message taken from swat or the server is scrubbed first.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from irc.backends.viya.labels import LabelError, import_vars, load_labels, write_labels_csv
from irc.errors import IrcError, IrcIOError

TABLE_VARS = [{"name": "_DLKey0_", "type": "varchar"}, {"name": "_DLKey1_", "type": "varchar"},
              {"name": "_DLChrVal_", "type": "varchar"}, {"name": "_DLNumVal_", "type": "double"},
              {"name": "_DLLayerID_", "type": "double"}]
CREDENTIAL_HINT = ("irc uses swat's own credentials: ~/.authinfo or ~/.netrc (or --authinfo "
                   "FILE) with a line `host HOST port PORT user USER password PASSWORD`, or the "
                   "CAS_USER and CAS_PASSWORD (or CAS_TOKEN) environment variables")


class DeployError(IrcError):
    """Delivering an output folder to a CAS server failed."""

    kind = "deploy"


class ServerUnreachable(DeployError):
    kind = "server unreachable"


class AuthenticationFailed(DeployError):
    kind = "authentication failed"


class ActionSetMissing(DeployError):
    kind = "action set missing"


class WeightsNotVisible(DeployError):
    kind = "weights not visible to the server"


class WeightsDoNotMatch(DeployError):
    kind = "weights file does not match the model"


class ActionFailed(DeployError):
    kind = "CAS action failed"

    def __init__(self, action, severity=None, status=None, messages=(), hint=None):
        lines = [f"{action} failed (severity {severity}"
                 + (f", status: {status})" if status else ")")]
        lines += [f"    server: {m}" for m in messages]
        super().__init__("\n".join(lines), hint=hint)
        self.action, self.severity, self.status = action, severity, status
        self.messages = list(messages)


def _scrub(text) -> str:
    """Remove anything credential-like from a message that came from swat or the server."""
    text = str(text)
    for var in ("CAS_PASSWORD", "CAS_TOKEN", "CAS_USER", "CAS_USERNAME"):
        value = os.environ.get(var)
        if value:  # whole words always; secrets also inside longer strings
            text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", "***", text)
            if len(value) >= 4 and var in ("CAS_PASSWORD", "CAS_TOKEN"):
                text = text.replace(value, "***")
    text = re.sub(r"(://)[^/@\s]+@", r"\1***@", text)
    return re.sub(r"(?i)((?:password|token|passwd)\s*[=:]\s*)\S+", r"\1***", text)


@dataclass
class DeployReport:
    model: str
    caslib: str = ""  # the caslib holding the weights file
    weight_file_path: str = ""  # relative to that caslib
    placed_weights: bool = False  # irc copied the HDF5 into the caslib's directory
    used_table: bool = False
    label_table: str | None = None
    layers: int = 0  # layers counted in the server's model table
    weight_rows: int = 0
    actions: list[str] = field(default_factory=list)  # every action called, in order
    messages: list[str] = field(default_factory=list)  # server messages, scrubbed
    notes: list[str] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)  # .sashdat files written into the caslib
    check: object = None  # servercheck.ServerCheck: the check set scored on the server

    @property
    def check_failed(self) -> bool:
        return self.check is not None and not self.check.ok

    def summary(self) -> str:
        how = "model_table.csv upload" if self.used_table else "buildModel + addLayer"
        lines = [f"deployed {self.model!r} ({self.layers} layers, via {how}); weights table "
                 f"{self.model}_weights ({self.weight_rows} values) from "
                 f"caslib {self.caslib!r} path {self.weight_file_path!r}"
                 + (" (copied there by irc)" if self.placed_weights else "")]
        if self.label_table:
            lines.append(f"  labels: table {self.label_table}")
        if self.saved:
            lines.append(f"  saved in caslib {self.caslib!r}: {', '.join(self.saved)}")
        lines += [f"  note: {n}" for n in self.notes]
        if self.check is not None:
            lines.append(self.check.text())
        return "\n".join(lines)


# ---- connecting ---------------------------------------------------------------------------
def _probe(host: str, port: int, timeout: float) -> None:
    with socket.create_connection((host, port), timeout=timeout):
        pass


_AUTH_WORDS = ("auth", "credential", "password", "token", "401", "login", "logon", "kerberos",
               "unauthorized", "not authorized", "access denied")


def connect(host=None, port=None, protocol=None, *, path=None, authinfo=None, timeout=10.0,
            cas_factory=None, probe=None):
    """Open a swat connection (``swat.CAS``) with short retries, mapping failures to irc errors.

    ``host`` may be a URL (``https://viya.example.com/cas-shared-default-http``); without one,
    swat's CAS_URL/CAS_HOST environment variables apply. The port is probed with a TCP connect
    (``timeout`` seconds) first, so an unreachable server fails fast instead of swat's ~40 s of
    REST retries. ``cas_factory``/``probe`` replace ``swat.CAS``/the TCP probe (tests).
    """
    target = host or next((os.environ[v] for v in ("CAS_URL", "CAS_HOST", "CAS_HOSTNAME")
                           if os.environ.get(v)), None)
    if not target:
        raise DeployError("no CAS server given", hint="pass --host HOST (or a URL), or set "
                                                      "CAS_HOST / CAS_URL")
    url = re.match(r"^(\w+)://([^/:]+)(?::(\d+))?", target)
    hostname = url.group(2) if url else target
    protocol = protocol or (url.group(1) if url else None)
    if port is None and url and url.group(3):
        port = int(url.group(3))
    if port is None and os.environ.get("CAS_PORT", "").isdigit():
        port = int(os.environ["CAS_PORT"])
    port = port or {"http": 80, "https": 443, "cas": 5570}.get(protocol or "")
    if not port:
        raise DeployError(f"no port given for the CAS server {hostname}",
                          hint="pass --port (binary protocol: usually 5570; REST: 443 or 80 "
                               "with --protocol https/http), or set CAS_PORT")
    where = f"{hostname}:{port}"
    try:
        (probe or _probe)(hostname, int(port), timeout)
    except OSError as exc:
        raise ServerUnreachable(f"cannot reach the CAS server at {where}: "
                                f"{_scrub(exc.strerror or exc)}",
                                hint="check the host name, the port, VPN and firewall; "
                                     "the binary port is usually 5570") from None
    if cas_factory is None:
        import swat

        cas_factory = swat.CAS
    kwargs = {k: v for k, v in (("protocol", protocol), ("path", path),
                                ("authinfo", authinfo)) if v}
    try:
        with _short_retries():
            return cas_factory(target if url else hostname, int(port), **kwargs)
    except Exception as exc:  # swat raises SWATError, OSError, or its clients' errors
        msg = _scrub(exc)
        if any(w in msg.lower() for w in _AUTH_WORDS):
            raise AuthenticationFailed(f"the CAS server at {where} refused the login: {msg}",
                                       hint=CREDENTIAL_HINT) from None
        raise ServerUnreachable(f"cannot open a CAS session at {where}: {msg}",
                                hint="check --protocol (cas, http, https) and, for REST, the "
                                     "URL path; " + CREDENTIAL_HINT) from None


@contextlib.contextmanager
def _short_retries():
    """swat's REST client retries 3 times 10 s apart; keep it to 1 retry 1 s apart."""
    import swat

    saved = {k: swat.get_option(k) for k in ("cas.connection_retries",
                                             "cas.connection_retry_interval")}
    try:
        for key in saved:
            swat.set_option(key, 1)
        yield
    finally:  # swat's own option_context does not restore after an exception
        for key, value in saved.items():
            swat.set_option(key, value)


# ---- deploying ----------------------------------------------------------------------------
def _frame(result, key):
    frame = result.get(key) if hasattr(result, "get") else None
    return frame if frame is not None and len(frame) else None


class _Deployer:
    def __init__(self, conn, report: DeployReport):
        self.conn, self.report = conn, report

    def _run(self, action: str, hint, send):
        import swat

        self.report.actions.append(action)
        try:
            result = send()
        # What swat raises: SWATError (connection, protocol) and its subclass
        # SWATCASActionError (a failed action under cas.exception_on_severity). Anything else
        # is a bug (irc's or a test stand-in's) and must surface as itself.
        except swat.SWATError as exc:
            raise ActionFailed(action, getattr(exc, "severity", 2), _scrub(exc), hint=hint) \
                from None
        messages = [_scrub(m) for m in (getattr(result, "messages", None) or [])]
        self.report.messages += messages
        severity = getattr(result, "severity", 0) or 0
        if severity > 1:
            raise ActionFailed(action, severity, _scrub(getattr(result, "status", "") or ""),
                               messages, hint=hint)
        return result

    def call(self, action: str, hint=None, **params):
        return self._run(action, hint, lambda: self.conn.retrieve(action, **params))

    def upload(self, path: Path, casout: dict, vars_: list[dict]):
        """A client CSV into a CAS table, with the column types given (swat's ``upload``)."""
        options = {"filetype": "csv", "vars": vars_}
        return self._run("table.upload", None,
                         lambda: self.conn.upload(str(path), casout=casout, importoptions=options))

    def caslib(self, name):
        res = self.call("table.caslibInfo", **({"caslib": name} if name else {"active": True}),
                        hint="give an existing path caslib with --caslib (table.caslibInfo "
                             "lists them)")
        info = _frame(res, "CASLibInfo")
        if info is None:
            raise DeployError(f"the server reports no caslib {name or '(active)'}")
        row = info.iloc[0]
        return str(row["Name"]), str(row.get("Path", "") or "")

    def listed(self, caslib: str, rel: str):
        """Size of ``rel`` as the server lists it in ``caslib`` (-1: size unknown), or None."""
        folder, _, base = rel.rpartition("/")
        params = {"caslib": caslib, "allFiles": True, **({"path": folder} if folder else {})}
        try:  # a failure (e.g. no such subdirectory) means: not listed
            files = _frame(self.call("table.fileInfo", **params), "FileInfo")
        except ActionFailed:
            return None
        for _, row in (files.iterrows() if files is not None else ()):
            if str(row["Name"]) == base:
                size = row.get("Size")
                return int(size) if size is not None and size == size else -1
        return None


def _read_payloads(folder: Path) -> dict:
    try:
        return json.loads((folder / "model.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IrcIOError(f"{folder} has no model.json", file=str(folder),
                         hint="deploy an output folder of `irc compile`") from None
    except (OSError, ValueError) as exc:
        raise IrcIOError(f"cannot read model.json: {exc}", file=str(folder)) from None


def _relative_path(server_path, default: str, caslib: str, caslib_path: str) -> str:
    rel = str(server_path or default).replace("\\", "/")
    root = caslib_path.replace("\\", "/").rstrip("/")
    if rel.startswith("/") or re.match(r"^[A-Za-z]:/", rel):
        if root and rel.startswith(root + "/"):
            return rel[len(root) + 1:]
        raise WeightsNotVisible(f"--server-path {rel} is absolute and not under caslib "
                                f"{caslib!r} ({caslib_path or 'no path'})",
                                hint="give the path relative to the caslib, or --caslib a "
                                     "caslib whose directory holds the file")
    if ".." in PurePosixPath(rel).parts:
        raise WeightsNotVisible(f"--server-path {rel} leaves caslib {caslib!r}",
                                hint="give a path inside the caslib")
    return PurePosixPath(rel).as_posix()


def _place(local: Path, caslib: str, caslib_path: str, rel: str) -> None:
    """Copy the HDF5 into the caslib's directory when this machine shares it with the server."""
    root = Path(caslib_path) if caslib_path else None
    if root is None or not root.is_dir():
        raise WeightsNotVisible(
            f"caslib {caslib!r} reads {caslib_path or '(no directory)'} on the server, which "
            f"this machine does not see, so irc cannot put {local.name} there",
            hint=f"swat has no call that writes a binary file into a caslib: copy {local} to "
                 f"{caslib_path.rstrip('/') + '/' if caslib_path else '<caslib dir>/'}{rel} "
                 "on the server (scp, SAS Studio's upload, a shared mount), then rerun with "
                 f"--server-path {rel} (relative to the caslib) or --caslib NAME")
    dest = root / rel
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        os.close(fd)
        shutil.copyfile(local, tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        raise WeightsNotVisible(f"cannot copy {local.name} into caslib {caslib!r} at {dest}: "
                                f"{exc.strerror or exc}",
                                hint="choose a writable caslib with --caslib, or copy the file "
                                     "yourself and pass --server-path") from None


def _hdf5_values(path: Path) -> int:
    """How many scalars the HDF5 file holds (= the rows the weights table should get)."""
    import h5py

    sizes = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda _, obj: sizes.append(obj.size)
                     if isinstance(obj, h5py.Dataset) else None)
    return int(sum(sizes))


def deploy(outdir, conn, *, caslib=None, server_path=None, labels=None, upload_weights=None,
           use_table=False, replace=True, save=False, check=True) -> DeployReport:
    """Deliver an ``irc compile`` output folder through an open swat connection ``conn``.

    caslib: the path caslib that holds (or receives) the HDF5 file; default the session's
        active caslib. The model, weights and label tables go to the active caslib.
    server_path: the HDF5 file's path relative to ``caslib`` on the server (default: its name).
    labels: a list of class names, or a labels.csv (``label_id,label``) / one-per-line file.
    upload_weights: True copies the HDF5 into the caslib's directory (only possible where this
        machine shares that directory with the server), False never copies, None copies only
        when the server does not already list a file of the same size there.
    use_table: build the model by uploading model_table.csv instead of buildModel/addLayer.
    replace: replace an existing model table (and, with ``save``, existing .sashdat files).
    save: also save the model table, the weights table and its attributes (labels) as
        ``<model>.sashdat``, ``<model>_weights.sashdat``, ``<model>_weights_attr.sashdat`` in
        ``caslib`` (``table.save``, as DLPy does): the tables deploy creates are session
        tables, gone when the CAS session ends.
    check: once the model and weights load, score the folder's check set (check/) with
        dlScore and compare every checked layer as `irc verify` does (``report.check``).
    """
    folder = Path(outdir)
    payloads = _read_payloads(folder)
    model, imp = payloads["model_name"], payloads["dlImportModelWeights"]
    local = folder / imp["weightFilePath"]
    if not local.is_file():
        raise IrcIOError(f"{folder} has no weights file {local.name}", file=str(folder),
                         hint="compile the model with its weights")
    names = load_labels(labels) if labels is not None else None
    outputs = [c["layer"] for c in payloads["addLayer"] if c["layer"]["type"] == "output"]
    if names is not None and outputs and len(names) != outputs[-1].get("n"):
        raise LabelError(f"{len(names)} labels for an output layer of {outputs[-1].get('n')} "
                         "neurons", hint="give one label per output neuron, in neuron order")
    table_csv = folder / "model_table.csv"
    if use_table and not table_csv.is_file():
        why = next((n for n in payloads.get("notes", []) if "model_table.csv" in n), "")
        raise DeployError(f"{folder} has no model_table.csv{': ' + why if why else ''}",
                          hint="deploy without --use-table (buildModel + addLayer)")

    report = DeployReport(model=model, used_table=use_table)
    d = _Deployer(conn, report)
    try:
        d.call("builtins.loadActionSet", actionSet="deepLearn")
    except ActionFailed as exc:
        if "action set" not in " ".join(exc.messages + [exc.status or ""]).lower():
            raise  # e.g. the connection dropped: not a statement about the action set
        raise ActionSetMissing("the CAS server did not load the deepLearn action set"
                               + "".join(f"\n    server: {m}" for m in exc.messages),
                               hint="the server needs SAS Visual Data Mining and Machine "
                                    "Learning (deepLearn); ask the administrator") from None
    lib, lib_path = d.caslib(caslib)
    rel = _relative_path(server_path, local.name, lib, lib_path)
    report.caslib, report.weight_file_path = lib, rel
    _make_visible(d, local, lib, lib_path, rel, upload_weights)  # before creating anything

    if use_table:
        d.upload(table_csv, {"name": model, "replace": bool(replace)}, TABLE_VARS)
    else:
        build = dict(payloads["buildModel"])
        build["model"] = {**build["model"], "replace": bool(replace)}
        d.call("deepLearn.buildModel", **build)
        for call in payloads["addLayer"]:
            d.call("deepLearn.addLayer", **call)

    params = {"model": model, "modelWeights": dict(imp["modelWeights"]),
              "formatType": imp["formatType"], "weightFilePath": rel, "caslib": lib}
    if names is not None:
        report.label_table = f"{model}_labels"
        with tempfile.TemporaryDirectory(prefix="irc-labels-") as tmp:
            write_labels_csv(names, Path(tmp) / "labels.csv")
            d.upload(Path(tmp) / "labels.csv", {"name": report.label_table, "replace": True},
                     import_vars(names))
        params["labelTable"] = {"name": report.label_table}
    try:
        d.call("deepLearn.dlImportModelWeights", **params)
    except ActionFailed as exc:
        text = " ".join(exc.messages + [exc.status or ""]).lower()
        if _LAYER_MISMATCH.search(text):
            raise WeightsDoNotMatch(
                f"dlImportModelWeights: the layers in {rel} (caslib {lib!r}) do not match "
                f"model {model}'s layers" + "".join(f"\n    server: {m}" for m in exc.messages),
                hint="the file at that path may be another model's or an older compile: "
                     "deploy this folder's own weights file (--upload, or copy it and pass "
                     "--server-path)") from None
        if _FILE_MISSING.search(text):
            raise WeightsNotVisible(
                f"dlImportModelWeights found no file {rel} in caslib {lib!r} "
                f"({lib_path or 'no path'})" + "".join(f"\n    server: {m}" for m in exc.messages),
                hint="copy the file there and pass --server-path relative to the caslib, or "
                     "--caslib NAME") from None
        raise
    _check(d, report, model, len(payloads["addLayer"]), _hdf5_values(local))
    if save:  # as DLPy's save_to_table: the weights' attributes (labels) go in a third table
        d.call("table.attribute", task="convert", name=f"{model}_weights",
               attrtable=f"{model}_weights_attr")
        for table in (model, f"{model}_weights", f"{model}_weights_attr"):
            d.call("table.save", table={"name": table}, name=f"{table}.sashdat", caslib=lib,
                   replace=bool(replace))
            report.saved.append(f"{table}.sashdat")
    if check:
        from irc.backends.viya.servercheck import ServerCheck, run_check

        try:
            report.check = run_check(d, folder, model, names)
        except ActionFailed as exc:  # e.g. a server without dlScore's dataSpecs
            report.check = ServerCheck(None, None, exc.message)
        if report.check is None:
            report.notes.append("the folder has no check set (check/): nothing was scored; "
                                "recompile with this irc to get one")
    return report


# dlImportModelWeights' messages (viya-target.md §2, DLPy issues #45/#117): a layer-name
# mismatch names "Keras definition" or "does not exist in model"; a missing file names the file.
_LAYER_MISMATCH = re.compile(r"layer name not found in keras definition|layer \S+ does not "
                             r"exist in model")
_FILE_MISSING = re.compile(r"file\b.*\b(not found|does not exist|cannot be opened)")


def _make_visible(d: _Deployer, local: Path, lib: str, lib_path: str, rel: str, upload) -> None:
    """Make sure the server lists ``rel`` in caslib ``lib`` with the local file's size."""
    size = local.stat().st_size
    seen = d.listed(lib, rel)
    stale = seen is not None and seen >= 0 and seen != size
    shared = bool(lib_path) and Path(lib_path).is_dir()
    if upload or (upload is None and (seen is None or stale) and shared):
        _place(local, lib, lib_path, rel)
        d.report.placed_weights = True
        if d.listed(lib, rel) is None:
            raise WeightsNotVisible(
                f"irc copied {local.name} to {Path(lib_path) / rel} but the server does not "
                f"list it in caslib {lib!r}: this machine and the server see different files "
                "at that path",
                hint=f"copy the file to the server yourself and pass --server-path {rel}")
    elif seen is None:
        target = (lib_path.rstrip("/") + "/" if lib_path else "<caslib directory>/") + rel
        raise WeightsNotVisible(
            f"the server does not see {rel} in caslib {lib!r} ({lib_path or 'no path'})",
            hint=f"copy {local} to {target} on the server (scp, SAS Studio's upload, a shared "
                 "mount) and pass --server-path (relative to the caslib), or name another "
                 "caslib with --caslib; irc copies it itself (--upload) only where this "
                 "machine shares the caslib's directory, as swat has no call that writes a "
                 "binary file into a caslib")
    elif stale:
        raise WeightsNotVisible(
            f"caslib {lib!r} holds a different {rel} ({seen} bytes; {local.name} has {size})",
            hint="replace it with this folder's file, or pass --upload")


def _count(d: _Deployer, table: dict) -> int:
    res = d.call("simple.numRows", table=table)
    return int(res["numrows"])


def _check(d: _Deployer, report: DeployReport, model: str, layers: int, values: int) -> None:
    for name in (model, f"{model}_weights"):
        if int(d.call("table.tableExists", name=name)["exists"]) <= 0:
            raise DeployError(f"after the import, table {name} does not exist on the server")
    report.layers = _count(d, {"name": model, "where": "_DLKey1_ = 'layertype'"})
    if report.layers != layers:
        raise DeployError(f"the server's model table {model} has {report.layers} layers, "
                          f"model.json {layers}")
    report.weight_rows = _count(d, {"name": f"{model}_weights"})
    if report.weight_rows != values:
        report.notes.append(f"the weights table has {report.weight_rows} values, the HDF5 "
                            f"file {values}")
