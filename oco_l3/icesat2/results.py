"""Per-input results of an ICESat-2 run (what ``run_icesat2`` returns)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Icesat2Result:
    """One input granule: ``ok`` and a one-line ``message`` (the error on failure), what it produced."""

    input: str
    product: str
    ok: bool
    message: str
    n_segments: int = 0  # segments kept after filtering (rows written for the table products)
    days: tuple[str, ...] = ()  # UTC days (YYYY-MM-DD) the granule contributed to
    outputs: tuple[str, ...] = field(default_factory=tuple)  # files/stores written or updated
    day_segments: tuple[int, ...] = ()  # segments binned on each of ``days`` (same order; 0 on an empty day)
    warnings: tuple[str, ...] = ()  # one line each (e.g. most kept segments fell off the grid)
    transient: bool = False  # a failure a retry may cure (oco_l3.errors.classify): its days stay ``waiting``

    @property
    def empty(self) -> bool:
        """Processed, but no segment survived the filters on any of its days (an empty day, not a failure)."""
        return self.ok and bool(self.days) and len(self.day_segments) == len(self.days) \
            and not any(self.day_segments)

    def segments_on(self, day: str) -> int:
        """Segments kept on the UTC day ``YYYY-MM-DD`` (all of them when the per-day split is unknown)."""
        if len(self.day_segments) != len(self.days):
            return self.n_segments if day in self.days else 0
        return dict(zip(self.days, self.day_segments, strict=True)).get(day, 0)
