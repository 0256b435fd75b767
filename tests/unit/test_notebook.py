"""The example notebook runs in a real Jupyter kernel (nbclient + ipykernel, the `test` extra)
and shows what a notebook user looks at: the model's summary table and the verification
verdict, as HTML (ViyaModel._repr_html_, VerifyResult._repr_html_)."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "irc_in_a_notebook.ipynb"


def _html_outputs(cell) -> list[str]:
    return [out.get("data", {}).get("text/html", "") for out in cell.get("outputs", [])
            if out.get("output_type") in ("execute_result", "display_data")]


def test_example_notebook_runs_and_shows_summary_and_verdict(monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="pip install 'irc[test]' (nbformat)")
    nbclient = pytest.importorskip("nbclient", reason="pip install 'irc[test]' (nbclient)")
    pytest.importorskip("ipykernel", reason="pip install 'irc[test]' (ipykernel)")
    # the kernel is a child process: it imports this checkout of irc
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [out for c in code for out in c.outputs if out.output_type == "error"]
    assert not errors, errors
    model_html = "".join(_html_outputs(code[0]))
    assert "Viya model &#x27;small_cnn&#x27;" in model_html, model_html[:300]
    assert "<table" in model_html and "stem_conv" in model_html and "source nodes" in model_html
    frame_html = "".join(_html_outputs(code[1]))
    assert "<table" in frame_html and "stem_conv" in frame_html
    verdict = "".join(_html_outputs(code[2]))
    assert "verification: all outputs match" in verdict and "classifier" in verdict, verdict
    last = code[3].outputs[-1]
    assert last["data"]["text/plain"] == "True"
    assert "model.json" in "".join(o.get("text", "") for o in code[3].outputs)
