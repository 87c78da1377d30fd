"""Progress of running cells: events from the cells, bars on the terminal.

A cell reports ``phase``/``advance``/``done`` to a ``Progress``; in a worker process a
``QueueProgress`` forwards them to the main process, where a ``TqdmProgress`` shows one
bar over the cells and one per running cell.
"""

from __future__ import annotations

import time
from typing import Any


class Progress:
    """Receives progress events (no-op; subclasses display them)."""

    def phase(self, cell: str, phase: str, total: int) -> None:
        """A cell started a phase (``train`` or ``eval``) of ``total`` units."""

    def advance(self, cell: str, n: int) -> None:
        """A cell did ``n`` more units of its current phase."""

    def done(self, cell: str) -> None:
        """A cell finished (successfully or not)."""


class QueueProgress(Progress):
    """Worker side: forwards events to the main process, at most ~10 per second."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.pending = 0
        self.last = 0.0

    def phase(self, cell: str, phase: str, total: int) -> None:
        """Send the event now (after any pending advance)."""
        self._flush(cell)
        self.channel.put(("phase", cell, phase, total))

    def advance(self, cell: str, n: int) -> None:
        """Count the units; send them at most every 0.1 s."""
        self.pending += n
        now = time.monotonic()
        if now - self.last > 0.1:
            self._flush(cell)
            self.last = now

    def done(self, cell: str) -> None:
        """Send the pending units and the event."""
        self._flush(cell)
        self.channel.put(("done", cell))

    def _flush(self, cell: str) -> None:
        if self.pending:
            self.channel.put(("advance", cell, self.pending))
            self.pending = 0


class TqdmProgress(Progress):
    """Main side: one bar over cells and one bar per running cell (over steps)."""

    def __init__(self, total_cells: int, slots: int) -> None:
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        # disable=None: bars only on a terminal; the per-cell lines are printed anyway.
        self.cells = tqdm(total=total_cells, desc="cells", unit="cell", position=0, disable=None)
        self.free = list(range(1, slots + 1))
        self.bars: dict[str, Any] = {}
        self.where: dict[str, int] = {}

    def phase(self, cell: str, phase: str, total: int) -> None:
        """Open the cell's bar for the phase (a new line for a new cell)."""
        if cell in self.bars:
            self.bars.pop(cell).close()
        else:
            self.where[cell] = self.free.pop(0) if self.free else len(self.where) + 1
        unit = "step" if phase == "train" else "episode"
        self.bars[cell] = self._tqdm(
            total=total,
            desc=f"{cell} {phase}",
            unit=unit,
            unit_scale=True,
            position=self.where[cell],
            leave=False,
            disable=None,
        )

    def advance(self, cell: str, n: int) -> None:
        """Move the cell's bar."""
        if cell in self.bars:
            self.bars[cell].update(n)

    def done(self, cell: str) -> None:
        """Close the cell's bar and count the cell."""
        if cell in self.bars:
            self.bars.pop(cell).close()
        if cell in self.where:
            self.free.append(self.where.pop(cell))
            self.free.sort()
        self.cells.update(1)

    def write(self, line: str) -> None:
        """Print a line without breaking the bars."""
        self.cells.write(line)

    def close(self) -> None:
        """Close every bar."""
        for bar in self.bars.values():
            bar.close()
        self.cells.close()
