"""Progress on stderr, one bar per phase: a bar only where stderr is a terminal, none nested inside a phase
that reports its own progress (a study's trials print one study-level line), and plain lines at a bounded
rate where output is not a terminal (a file or a pipe would otherwise hold thousands of carriage-return
fragments of redrawn bars)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

#: Where output is not a terminal, a phase prints at most one plain progress line per this many seconds.
PLAIN_LINE_SECONDS = 30.0

_inner_bars_off = 0  # how many no_inner_bars() blocks are open in this process


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default stderr, where bars go) is a terminal; a closed or odd stream is not."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def no_inner_bars() -> Iterator[None]:
    """Within the block, a library call that shows a bar by default (``show_progress=None``) shows none: the
    phase around it reports its own progress. A caller that asks for a bar (``True``) still gets one."""
    global _inner_bars_off
    _inner_bars_off += 1
    try:
        yield
    finally:
        _inner_bars_off -= 1


def default_bar(total: int, threshold: int) -> bool:
    """Whether a ``show_progress=None`` bar over ``total`` units is shown: more than ``threshold`` units, on a
    terminal, and not inside a phase that reports its own progress (:func:`no_inner_bars`)."""
    return total > threshold and _inner_bars_off == 0 and is_terminal()


class Throttle:
    """Lets a line through at most once per ``every`` seconds (the first always passes), so a phase piped to a
    file prints at a sensible rate. ``clock`` is injectable so the rule can be checked without waiting."""

    def __init__(
        self, every: float = PLAIN_LINE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if every < 0:
            raise ValueError(f"every must be >= 0 seconds, but got {every=}.")
        self.every = every
        self.clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        """True (and the clock restarted) when a line may be printed now."""
        now = self.clock()
        if self._last is not None and now - self._last < self.every:
            return False
        self._last = now
        return True
