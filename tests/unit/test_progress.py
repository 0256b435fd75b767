"""Progress lines: every slow stage is named on a terminal; nothing is written otherwise."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from irc.cli import main
from irc.progress import Progress, report, reporting

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "small_cnn.onnx"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _stages(text: str) -> list[str]:
    """The messages of the progress lines (each drawn after a carriage return)."""
    return [part.split("] ", 1)[1] for part in text.split("\r\x1b[K") if "] " in part]


def test_compile_names_each_stage_on_a_terminal(tmp_path, monkeypatch, capsys):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["compile", str(EXAMPLE), "-o", str(tmp_path / "out")]) == 0
    stages = _stages(terminal.getvalue())
    expected = ["reading", "importing ONNX", "optimizing", "lowering to Viya layers",
                "writing weights", "verifying: running the source model (onnxruntime)",
                "verifying: running the written files with the reference executor"]
    positions = [next(i for i, s in enumerate(stages) if s.startswith(e)) for e in expected]
    assert positions == sorted(positions), stages
    assert terminal.getvalue().endswith("\r\x1b[K")  # the line is cleared at the end


@pytest.mark.parametrize("argv", [["--quiet"], []], ids=["quiet", "not_a_terminal"])
def test_quiet_or_not_a_terminal_writes_no_progress(tmp_path, monkeypatch, capsys, argv):
    stream = Terminal() if argv else io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    assert main(["compile", str(EXAMPLE), "-o", str(tmp_path / "out"), *argv]) == 0
    assert stream.getvalue() == ""


def test_verify_reports_its_stages_and_quiet_silences_them(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert main(["compile", str(EXAMPLE), "-o", str(out), "--quiet"]) == 0
    for argv, expect_lines in (([], True), (["--quiet"], False)):
        terminal = Terminal()
        monkeypatch.setattr("sys.stderr", terminal)
        assert main(["verify", str(EXAMPLE), str(out), *argv]) == 0
        assert bool(_stages(terminal.getvalue())) is expect_lines
        assert "all outputs match" in capsys.readouterr().out


def test_report_outside_a_command_goes_nowhere():
    report("nobody listens")  # no reporter installed: nothing to see, nothing raised
    terminal = Terminal()
    with reporting(Progress(stream=terminal)):
        report("stage one")
    report("after the block")
    assert _stages(terminal.getvalue()) == ["stage one"]
