"""The soak's report: figures, the timeline of events, and the problems found (none = pass)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_PROBLEMS_SHOWN = 40
LABEL_WIDTH = 34  # tests/soak/test_soak.py matches lines such as "lost (no final result)             0"


@dataclass
class Report:
    """Figures and problems of one soak run (``problems`` empty = pass)."""

    jobs: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = ["chaos soak: " + ("PASS" if self.ok else "FAIL")]
        lines += [f"  {k:<{LABEL_WIDTH}} {v}" for k, v in self.figures.items()]
        lines += ["  events:"] + [f"    {e}" for e in self.events]
        if self.problems:
            lines += ["  problems:"] + [f"    - {p}" for p in self.problems[:MAX_PROBLEMS_SHOWN]]
        return "\n".join(lines)
