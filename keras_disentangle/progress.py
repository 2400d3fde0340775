"""Progress of a long loop that a terminal and a log file can both show.

On a terminal: the Keras progress bar. Anywhere else (a log file, CI, `nohup`), where the bar's
carriage returns would print nothing until the end: one plain line at least every
`interval` seconds (and at the end), with done/total, the rate, the ETA and the caller's values,
so a person reading the log can tell a slow run from a hung one.
"""

from __future__ import annotations

import sys
import time

# A line falls due after this many seconds and is printed at the next update (a chunk of steps or a batch
# later): 25 keeps the gaps a log shows within the promised 30 s (at 30 a demo log's gaps were 30-31 s).
INTERVAL_SECONDS = 25.0


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """Reports `done` of `total` units.

    Args:
      total: int. Units of the whole loop.
      unit: str. What a unit is (`step`, `image`, `record`), for the rate.
      start: int. Units already done before this process (a resumed run).
      label: str. Prefix of the plain lines (e.g. the command's name).
      interval: float. Seconds between plain lines at most (0: a line per update).
      verbose: bool. False shows nothing.
      stream: file. Defaults to sys.stdout; stdout on a terminal gets the progress bar (Keras draws
        it on stdout), any other stream plain lines.
    """

    def __init__(self, total: int, *, unit: str = "step", start: int = 0, label: str = "",
                 interval: float | None = None, verbose: bool = True, stream=None):
        self.total, self.unit, self.label = total, unit, label
        self.interval = INTERVAL_SECONDS if interval is None else interval
        self.verbose = verbose
        self.stream = sys.stdout if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self._bar = None
        if verbose and self.stream is sys.stdout and isatty is not None and isatty():
            import keras  # noqa: PLC0415 (only terminals need it)

            self._bar = keras.utils.Progbar(total, verbose=1, unit_name=unit)
            self._bar.update(start)
        # The rate counts from the first update: the first unit often carries tracing or warm-up.
        self._first: tuple[float, int] | None = None
        self._last_line = time.perf_counter()
        self._start = start

    def due(self) -> bool:
        """Whether the next `update` prints a plain line (callers may fetch values only then)."""
        return self.verbose and self._bar is None and time.perf_counter() - self._last_line >= self.interval

    def update(self, done: int, values: list[tuple[str, float]] | None = None, finish: bool = False,
               force: bool = False) -> None:
        """Records that `done` units are complete; `values` are shown as they are (latest, not averaged).

        `finish` ends the bar; `finish` and `force` print a plain line whatever the interval.
        """
        if not self.verbose:
            return
        values = list(values or [])
        if self._bar is not None:
            self._bar.stateful_metrics.update(name for name, _ in values)
            self._bar.update(done, values=values or None, finalize=finish)
            return
        now = time.perf_counter()
        if self._first is None:
            self._first = (now, done)
        if not (finish or force or done >= self.total or now - self._last_line >= self.interval):
            return
        self._last_line = now
        parts = [f"{self.unit} {done}/{self.total} ({100.0 * done / max(self.total, 1):.0f}%)"]
        first_time, first_done = self._first
        if done > first_done and now > first_time:
            rate = (done - first_done) / (now - first_time)
            parts.append(f"{rate:.0f} {self.unit}/s" if rate >= 100 else f"{rate:.3g} {self.unit}/s")
            if done < self.total:
                parts.append(f"ETA {_duration((self.total - done) / rate)}")
        parts += [f"{name} {value:.4g}" for name, value in values]
        prefix = f"{self.label}: " if self.label else ""
        print(prefix + " | ".join(parts), file=self.stream, flush=True)
