"""Progress displays: silent by default, plain lines with ETA when not on a terminal,
rich on a terminal, tqdm in a notebook; every bar ends at its total."""

from __future__ import annotations

import io
import sys
import types

import pytest

import synthdata as sd
from synthdata._progress import PlainProgress, choose_display, format_seconds, progress_reporter
from synthdata.errors import ConfigError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_have_counts_eta_and_a_final_line():
    out, clock = io.StringIO(), FakeClock()
    plain = PlainProgress(out, min_interval=5.0, clock=clock)
    for done in range(1, 11):
        clock.now += 2.0
        plain("vae.fit", done, 10)
    lines = out.getvalue().splitlines()
    # the first update, then one every 5 s at most, and always the last
    assert lines == ["[vae.fit] 1/10 (10%)  elapsed 0:02  ETA 0:18",
                     "[vae.fit] 4/10 (40%)  elapsed 0:08  ETA 0:12",
                     "[vae.fit] 7/10 (70%)  elapsed 0:14  ETA 0:06",
                     "[vae.fit] 10/10 (100%)  elapsed 0:20  done"]


def test_plain_detail_names_the_current_step():
    out = io.StringIO()
    plain = PlainProgress(out, min_interval=0.0, clock=FakeClock())
    plain("evaluate:detection", 5, 11)
    plain("evaluate:inference_risk", 11, 11)
    assert out.getvalue().splitlines() == [
        "[evaluate] 5/11 (45%)  detection  elapsed 0:00  ETA 0:00",
        "[evaluate] 11/11 (100%)  inference_risk  elapsed 0:00  done"]


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.6, 75.2, 3725)] == ["0:00", "1:00", "1:15",
                                                                  "1:02:05"]


def test_choose_display(monkeypatch):
    assert choose_display(None) is None and choose_display(False) is None
    assert choose_display(print) == "callable"
    assert choose_display(True, io.StringIO()) == "plain"  # a pipe or a file
    assert choose_display("auto", Tty()) == "rich"         # a terminal
    assert choose_display("tqdm", io.StringIO()) == "tqdm"

    class ZMQInteractiveShell:  # what IPython's kernel shell is called
        pass

    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: ZMQInteractiveShell()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert choose_display(True, Tty()) == "tqdm"          # a notebook


@pytest.mark.parametrize("bad", ["fancy", 3, 0.5])
def test_bad_progress_option(bad):
    with pytest.raises(ConfigError, match=r"progress must be None, a bool, a callable\(step, "
                                          r"done, total\) or one of \['auto', 'tqdm', 'rich', "
                                          r"'plain'\]"):
        choose_display(bad)


def test_rich_bar_reaches_its_total():
    out = Tty()
    with progress_reporter("rich", stream=out) as progress:
        for done in range(1, 12):
            progress(f"evaluate:step{done}", done, 11)
    assert "11/11" in out.getvalue() and "evaluate" in out.getvalue()


def test_tqdm_bar_reaches_its_total(capsys):
    with progress_reporter("tqdm") as progress:
        for done in range(1, 4):
            progress("gmm.fit", done, 3)
        progress("evaluate:detection", 1, 2)  # left short: closed at the end of the block
    err = capsys.readouterr().err
    assert "gmm.fit" in err and "3/3" in err and "1/2" in err


def test_fit_and_evaluate_take_progress_true(flchain_small, capsys):
    train, other = flchain_small.iloc[:400], flchain_small.iloc[400:]
    gen = sd.make_generator("gmm", sd.Schema.infer(train), n_components=2, max_iter=5)
    gen.fit(train)  # silent by default
    assert capsys.readouterr().err == ""
    gen.fit(train, progress=True)  # stderr is not a terminal here: plain lines
    err = capsys.readouterr().err
    assert "[transform.fit]" in err and "[gmm.fit]" in err and "(100%)" in err
    sd.evaluate(train, other, progress="plain", sections=("fidelity_basic",))
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith("[evaluate] 4/4 (100%)") and lines[-1].endswith("done")
    with pytest.raises(ConfigError, match="progress must be"):
        gen.fit(train, progress="loud")
