"""Session-wide test set-up.

Importing triton (torch's GPU kernel compiler, which torch's dynamo exporter probes for) after
TensorFlow in one process crashes the interpreter (a segmentation fault; the other order works).
irc itself keeps triton out when TensorFlow is loaded (irc/frontends/pytorch/loading.py), but
tests also call torch's exporters directly, in whatever order pytest runs the folders: so
triton, when installed, is imported here, before any test imports TensorFlow.
"""
try:
    import triton  # noqa: F401
except ImportError:  # the torch extra is not installed (or has no triton): nothing to order
    pass
