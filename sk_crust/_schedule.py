"""When CRUST trains on all data and when it re-selects its coreset.

Epochs are numbered from 1, as in skorch's history, and the numbering runs on across
``partial_fit`` calls, so the schedule is a pure function of the epoch number.
"""

from __future__ import annotations

from typing import NamedTuple


class Schedule(NamedTuple):
    """``warmup_epochs`` epochs on all data, then a new coreset every ``select_every`` epochs.

    Examples
    --------
    >>> from sk_crust._schedule import Schedule
    >>> s = Schedule(warmup_epochs=2, select_every=2)
    >>> [s.action(epoch, has_coreset=epoch > 3) for epoch in range(1, 7)]
    ['all', 'all', 'select', 'keep', 'select', 'keep']
    """

    warmup_epochs: int
    select_every: int

    def action(self, epoch: int, *, has_coreset: bool) -> str:
        """``"all"`` (warm-up), ``"select"`` (a new coreset) or ``"keep"`` (the last one).

        An epoch between two selections that has no coreset to keep (a new ``partial_fit`` on
        other data) selects one.
        """
        if epoch <= self.warmup_epochs:
            return "all"
        if (epoch - self.warmup_epochs - 1) % self.select_every == 0 or not has_coreset:
            return "select"
        return "keep"
