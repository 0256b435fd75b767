"""The default pass pipeline, in order, with why the order is what it is."""
from __future__ import annotations

DEFAULT_PIPELINE: list[str] = [
    # Clean-up first: later patterns should not have to look through no-op ops.
    "remove_identity_dropout",
    # Shape arithmetic and constant-only chains (Constant -> Unsqueeze -> Reshape shape) become
    # plain constants, so the structural passes below see constant operands.
    "fold_constants",
    # Reshape/Squeeze that only flatten to (N, features) become Flatten before dense matching.
    "reshape_to_flatten",
    # MatMul(+Add) -> Gemm, then Gemm in one canonical form (W (out,in), alpha = beta = 1), so
    # that every later pass handles exactly one dense form.
    "matmul_to_gemm",
    "normalize_gemm",
    # Explicit Pad ops join the padding of the conv/pool that reads them, before any padding
    # legality is judged in lowering.
    "fold_pad",
    # Legalization (viya-semantics §15a): what no Viya layer computes becomes exact
    # compositions of Conv / BatchNormalization / Sum / Relu. A Pad left by fold_pad (it could
    # not join a reader's padding) becomes a selection conv; so do channel slices and shuffles.
    "legalize_pad",
    "legalize_channel_select",
    # Average pools counting padding become convs; then the padding no Viya layer expresses
    # (asymmetric, from the source or from fold_pad) moves into a selection conv, including
    # that of the convs just made.
    "legalize_avgpool_include_pad",
    "legalize_layer_padding",
    # Clip and PReLU become Relu ops and batchnorms before the batchnorm and activation passes,
    # so the first batchnorm/relu of each can fold or fuse into the conv before it.
    "legalize_clip",
    "legalize_prelu",
    # Element-wise max/min of two tensors: residual layers around a negating batchnorm; the
    # relu on the difference is a Relu the activation passes place.
    "legalize_max_min",
    # Constant Mul/Add become (or join) BatchNormalization, so fold_batchnorm can push them
    # into a conv/fc; what cannot fold stays a Viya batchnorm layer.
    "fold_mul_add",
    "fold_batchnorm",
    # A batchnorm left on a vector (after a global pool or flatten) moves forward into the
    # dense layers reading it; after fold_batchnorm, so folding backwards is tried first.
    "fold_batchnorm_into_next_dense",
    # Needs canonical Gemm: permutes Gemm columns when a NHWC transpose precedes the flatten;
    # after the batchnorm passes, so a batchnorm between the flatten and the Gemm is gone.
    "flatten_transpose_into_dense",
    # Activations last: BN folding must happen while the conv still has identity act, and
    # carriers are only inserted for what neither fusing nor moving could place.
    "fuse_activation",
    "move_activation_before_maxpool",
    "insert_activation_carrier",
    "remove_dead_nodes",
]
