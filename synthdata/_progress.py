"""Progress display for long loops: a callback ``progress(step, done, total)``.

Library loops call the callback; what it shows is chosen here, once, by the caller:

* ``None`` / ``False``: nothing (the library default);
* ``True`` / ``"auto"``: a tqdm bar in a notebook, a rich bar on a terminal, and plain
  lines with elapsed time and ETA on stderr when it is not a terminal (a pipe, a log file);
* ``"tqdm"``, ``"rich"``, ``"plain"``: that display;
* a callable: called as is (the service passes one that updates the job row).

A step names its bar; ``"bar:detail"`` updates the bar ``bar`` and shows ``detail`` as the
current activity (``evaluate:detection``). Every display closes its bars when the block
ends, so a bar that its loop left short is never shown as still running.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal, TextIO, TypeAlias

from synthdata.errors import ConfigError
from synthdata.types import Progress, no_progress

__all__ = ["Progress", "ProgressOption", "no_progress", "progress_reporter"]

ProgressOption: TypeAlias = Progress | bool | Literal["auto", "tqdm", "rich", "plain"] | None
DISPLAYS = ("auto", "tqdm", "rich", "plain")


def split_step(step: str) -> tuple[str, str]:
    """``"evaluate:detection"`` -> ``("evaluate", "detection")``; ``"gmm.fit"`` -> (it, "")."""
    bar, _, detail = step.partition(":")
    return bar, detail


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython's ZMQ shell), without importing IPython."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def choose_display(option: ProgressOption, stream: TextIO | None = None) -> str | None:
    """The display ``option`` stands for (``None``: silent, ``"callable"``: the caller's)."""
    if option is None or option is False:
        return None
    if callable(option):
        return "callable"
    if option is True:
        option = "auto"
    if not isinstance(option, str) or option not in DISPLAYS:
        raise ConfigError(f"progress must be None, a bool, a callable(step, done, total) or one "
                          f"of {list(DISPLAYS)}; got {option!r}")
    if option != "auto":
        return option
    if in_notebook():
        return "tqdm"
    out = stream if stream is not None else sys.stderr
    isatty = getattr(out, "isatty", None)
    return "rich" if callable(isatty) and isatty() else "plain"


@contextmanager
def progress_reporter(option: ProgressOption, *, stream: TextIO | None = None,
                      min_interval: float = 1.0) -> Iterator[Progress]:
    """Yield a progress callback for ``option`` (see the module docstring).

    ``stream`` (default: stderr at call time) receives rich and plain output;
    ``min_interval`` is the shortest time between two plain lines of one bar (its first
    and last update are always printed).
    """
    display = choose_display(option, stream)
    if display is None:
        yield no_progress
    elif display == "callable":
        assert callable(option)
        yield option
    elif display == "plain":
        plain = PlainProgress(stream, min_interval=min_interval)
        yield plain
    elif display == "tqdm":
        with _tqdm_progress() as callback:
            yield callback
    else:
        with _rich_progress(stream) as callback:
            yield callback


class PlainProgress:
    """Plain progress lines, one per update at most every ``min_interval`` seconds per bar:
    ``[evaluate] 4/11 (36%) detection  elapsed 0:03  ETA 0:05``."""

    def __init__(self, stream: TextIO | None = None, *, min_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.min_interval, self.clock = stream, min_interval, clock
        self.started: dict[str, float] = {}
        self.last: dict[str, float] = {}
        # a bar's clock starts when the previous bar ended (or this display was made): its
        # first update already comes after one unit of work
        self.mark = clock()

    def __call__(self, step: str, done: int, total: int) -> None:
        bar, detail = split_step(step)
        now = self.clock()
        start = self.started.setdefault(bar, self.mark)
        first = bar not in self.last
        finished = total > 0 and done >= total
        if finished:
            self.mark = now
        if not (first or finished or now - self.last[bar] >= self.min_interval):
            return
        self.last[bar] = now
        elapsed = now - start
        parts = [f"[{bar}] {done}/{total}"]
        if total > 0:
            parts[0] += f" ({100 * min(done, total) // total}%)"
        if detail:
            parts.append(detail)
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if finished:
            parts.append("done")
        elif 0 < done < total:
            parts.append(f"ETA {format_seconds(elapsed / done * (total - done))}")
        out = self.stream if self.stream is not None else sys.stderr
        out.write("  ".join(parts) + "\n")
        out.flush()


def format_seconds(seconds: float) -> str:
    """``75.2`` -> ``"1:15"``; ``3725`` -> ``"1:02:05"``."""
    s = int(round(max(seconds, 0.0)))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


@contextmanager
def _rich_progress(stream: TextIO | None) -> Iterator[Progress]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(file=stream if stream is not None else sys.stderr)
    tasks: dict[str, object] = {}
    with Progress(TextColumn("{task.description:<30}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  console=console, transient=False) as bars:
        def update(step: str, done: int, total: int) -> None:
            bar, detail = split_step(step)
            label = f"{bar} {detail}" if detail else bar
            if bar not in tasks:
                tasks[bar] = bars.add_task(label, total=total)
            bars.update(tasks[bar], completed=done, total=total, description=label)  # type: ignore[arg-type]

        yield update


@contextmanager
def _tqdm_progress() -> Iterator[Progress]:
    from tqdm.auto import tqdm

    bars: dict[str, tqdm] = {}
    try:
        def update(step: str, done: int, total: int) -> None:
            bar, detail = split_step(step)
            if bar not in bars:
                bars[bar] = tqdm(total=total, desc=bar, leave=True)
            b = bars[bar]
            if b.total != total:
                b.total = total
            if detail:
                b.set_postfix_str(detail, refresh=False)
            b.update(done - b.n)
            if total and done >= total:
                b.close()

        yield update
    finally:
        for b in bars.values():
            b.close()
