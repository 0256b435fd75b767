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
    legalize_avgpool,
    legalize_channel_select,
    legalize_clip,
    legalize_max_min,
    legalize_pad,
    legalize_prelu,
    remove_identity,
)
