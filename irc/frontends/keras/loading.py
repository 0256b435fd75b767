"""Reading Keras sources: in-memory models, ``.keras`` archives and full-model ``.h5`` files.

Nothing from a model file is executed unless the caller opts in (``allow_lambda=True``): the
stored configuration is read as JSON first (``config.json`` inside a ``.keras`` zip, the
``model_config`` attribute of an ``.h5`` file) and a Lambda layer (pickled Python code) or a
custom object (a class from outside Keras) is refused before any Keras loader runs. Keras 3
files then load with ``safe_mode=True``; Keras 2 ``.h5`` files load with tf-keras, which would
run a stored lambda without asking, hence the check above.
"""
from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from irc.errors import InvalidModel, IrcIOError, UnsupportedOp
from irc.frontends.keras.runtime import flavor_of, is_keras_model, tf_modules
from irc.progress import report

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_ALLOWED_MODULE_ROOTS = ("keras", "builtins")
OPT_IN_HINT = ("only for models you trust: `irc compile --allow-lambda` (allow_lambda=True in "
               "Python) loads them; a Lambda layer or custom "
               "object runs Python code stored in the file")


@dataclass
class KerasSource:
    model: object  # a keras.Model or tf_keras Model
    flavor: str  # "keras3", "tf_keras" or "keras2_h5" (a CuDNN file read with h5py)
    label: str  # the path, or "<keras.Model NAME>"


def load(source, allow_lambda: bool = False) -> KerasSource:
    """The model behind ``source`` (a model object or a path), loaded safely."""
    if is_keras_model(source):
        return KerasSource(source, flavor_of(source), f"<keras.Model {source.name}>")
    if not isinstance(source, (str, Path)):
        raise InvalidModel(f"cannot read a Keras model from a {type(source).__name__}",
                           hint="pass a keras.Model, a tf_keras model or a .keras/.h5 path")
    path = Path(source)
    label = str(path)
    if not path.is_file():
        raise IrcIOError("file not found", file=label, hint="check the path")
    suffix = path.suffix.lower()
    report(f"loading {path.name} with Keras")
    if suffix == ".keras":
        return _load_keras_zip(path, label, allow_lambda)
    if suffix in (".h5", ".hdf5"):
        return _load_h5(path, label, allow_lambda)
    raise InvalidModel(f"not a Keras model file suffix {suffix!r}", file=label,
                       hint="the Keras frontend reads .keras and full-model .h5 files")


def _load_keras_zip(path: Path, label: str, allow_lambda: bool) -> KerasSource:
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, RuntimeError, EOFError,
            NotImplementedError, zlib.error) as exc:
        raise InvalidModel(f"not a Keras 3 .keras archive ({type(exc).__name__}: {exc})",
                           file=label, hint="save it with model.save('name.keras')") from None
    _guard_config(config, label, allow_lambda)
    keras = tf_modules().keras
    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=not allow_lambda)
    except Exception as exc:  # Keras raises ValueError/TypeError/... for unreadable configs
        raise InvalidModel(f"Keras could not load the model: {exc}", file=label) from None
    return KerasSource(model, "keras3", label)


def _load_h5(path: Path, label: str, allow_lambda: bool) -> KerasSource:
    from irc.frontends.keras.h5_guard import read_attributes

    raw, version = read_attributes(path, label)  # in a child: libhdf5 can hang on bad files
    if raw is None:
        raise InvalidModel("the .h5 file has no model_config: it holds weights only",
                           file=label, hint="save the whole model (model.save('name.h5')), not "
                                            "save_weights()")
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise InvalidModel(f"the model_config attribute is not JSON ({exc})", file=label) from None
    _guard_config(config, label, allow_lambda)
    from irc.frontends.keras import recurrent

    if recurrent.needs_h5_reader(config):  # CuDNNLSTM/CuDNNGRU: no current Keras has them
        return KerasSource(recurrent.read_h5(path, label), "keras2_h5", label)
    mods = tf_modules()
    use_tf_keras = not version.startswith("3") and mods.tf_keras is not None
    try:
        if use_tf_keras:  # Keras 2 files: tf-keras is their own reader
            model = mods.tf_keras.models.load_model(str(path), compile=False)
        else:
            model = mods.keras.saving.load_model(str(path), compile=False,
                                                 safe_mode=not allow_lambda)
    except Exception as exc:
        raise InvalidModel(f"Keras {version or '?'} .h5 file could not be loaded: {exc}",
                           file=label) from None
    return KerasSource(model, flavor_of(model) or "keras3", label)


def _guard_config(config, label: str, allow_lambda: bool) -> None:
    """Refuse Lambda layers and custom objects in a stored config unless opted in."""
    if allow_lambda:
        return
    lambdas, custom = [], []

    def walk(obj):
        if isinstance(obj, dict):
            if obj.get("class_name") == "Lambda":
                cfg = obj.get("config") or {}
                lambdas.append(str(cfg.get("name") or obj.get("name") or "?"))
            module = obj.get("module")
            if isinstance(module, str) and module.split(".")[0] not in _ALLOWED_MODULE_ROOTS:
                custom.append(f"{obj.get('class_name')} from {module}")
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    walk(config)
    if lambdas or custom:
        parts = []
        if lambdas:
            parts.append(f"Lambda layer(s) {', '.join(repr(n) for n in lambdas)}")
        if custom:
            parts.append(f"custom object(s) {', '.join(custom)}")
        raise UnsupportedOp(f"{' and '.join(parts)} would run Python code stored in the file; "
                            "irc does not load them without allow_lambda=True", file=label,
                            hint=OPT_IN_HINT)
