"""The README's error table, printed from :data:`llm_orchestrator.exceptions.ON_ERROR`.

``python -m llm_orchestrator.error_docs`` prints it; ``tests/test_error_table.py`` fails when the
README holds anything else, so the documented behaviour and the code cannot drift apart.
"""

from __future__ import annotations

from llm_orchestrator.exceptions import ON_ERROR


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def error_table_markdown() -> str:
    """One markdown row per error class, in the table's order."""
    lines = [
        "| error | retried on the same model | moves to the next model | breaker failure | "
        "stops the request | a worker job comes back later | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for cls, row in ON_ERROR.items():
        lines.append(
            f"| `{cls.__name__}` | {_yes(row.retry_same_model)} | {_yes(row.next_model)} | "
            f"{_yes(row.breaker_failure)} | {_yes(row.stops_request)} | {_yes(row.job_retry)} | {row.note} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(error_table_markdown())
