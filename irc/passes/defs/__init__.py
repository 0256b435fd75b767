"""Pass definitions, one file per pass or small family. Importing this package registers them."""
from irc.passes.defs import (  # noqa: F401
    activations,
    dead_nodes,
    dense,
    flatten,
    fold_batchnorm,
    fold_batchnorm_forward,
    fold_constants,
    fold_pad,
    remove_identity,
)
