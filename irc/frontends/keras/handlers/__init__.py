"""One handler per Keras layer class (check + optional direct emitter, and the optional
sequence-model hooks), by family.

Importing this package registers every handler in :data:`KERAS_LAYERS`. To add a Keras layer
that maps onto ops irc already converts: one class in the family module, plus its test.
"""
from irc.frontends.keras.handlers import (  # noqa: F401  (each module registers its handlers)
    activations,
    conv,
    normalization,
    pooling,
    sequence,
    structure,
)
from irc.frontends.keras.handlers.registry import KERAS_LAYERS

__all__ = ["KERAS_LAYERS"]
