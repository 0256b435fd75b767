"""irc: compile Keras, Caffe and ONNX models into SAS Viya deep-learning models."""
from irc.version import __version__  # noqa: F401  (one home: irc/version.py)


def compile(source, **kwargs):  # noqa: A001 - mirrors the CLI verb
    """Compile a model into a :class:`irc.backends.viya.model.ViyaModel`; see :func:`irc.api.compile`."""
    from irc.api import compile as _compile

    return _compile(source, **kwargs)


def export(path_or_table, output=None, **kwargs):
    """A Viya model (output folder, model table, + weights) as ONNX; see :func:`irc.frontends.viya.export`."""
    from irc.frontends.viya import export as _export

    return _export(path_or_table, output, **kwargs)
