"""PyTorch frontend tests: build small nn.Modules in code (seeded random weights), compile them
through each of PyTorch's ONNX exporters, re-run the written files with the reference executor
and compare with PyTorch itself (irc.verify: seeded random inputs, batch 2).

Tolerance: irc.verify's defaults (rtol 1e-4, atol 1e-5), each output judged against its own
scale; the exporters and irc fold batch norm into convolutions, which moves float32 rounding.
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the PyTorch frontend needs torch: pip install "
                                            "'irc[torch]'")

EXPORTERS = ("dynamo", "torchscript")
RTOL, ATOL = 1e-4, 1e-5


def compile_and_verify(model, example, tmp_path, exporter: str, rtol=RTOL, atol=ATOL):
    """Compile ``model`` with ``exporter``, write it, verify against PyTorch; the result."""
    import irc
    from irc.verify import verify

    out = tmp_path / f"out_{exporter}"
    compiled = irc.compile(model, example_inputs=(example,), torch_exporter=exporter)
    compiled.save(out)
    result = verify(model, out, rtol=rtol, atol=atol)
    assert result.ok, result.table()
    return compiled, result


def seeded(module, seed: int = 0):
    """``module`` in eval mode with seeded random weights and non-trivial batch-norm statistics
    (fresh ones, mean 0 and variance 1, would make batch norm an identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif name.endswith("weight") and tensor.dim() == 1:  # batch-norm scale
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                fan_in = max(1, tensor[0].numel())
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in ** 0.5)
    return module.eval()
