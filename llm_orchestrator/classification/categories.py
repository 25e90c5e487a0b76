"""The five product-signal categories and what each one means."""

from __future__ import annotations

CATEGORIES: dict[str, str] = {
    "feature_request": "The customer asks for something the product does not do yet, or wishes it worked "
                       "differently (new capability, integration, option, report, setting).",
    "bug_report": "Something that should work is broken: errors, crashes, wrong results, timeouts, data loss, "
                  "pages that do not load, features that stopped working.",
    "churn_risk": "The customer signals they may leave or pay less: cancelling, not renewing, evaluating or "
                  "moving to a competitor, downgrading, strong frustration with intent to stop using the product.",
    "expansion_signal": "The customer signals they may buy more: more seats or licences, another team or "
                        "department, a higher plan, new use cases, asking about enterprise pricing.",
    "general_feedback": "Praise, neutral comments, questions and anything that fits none of the above.",
}
LABELS: tuple[str, ...] = tuple(CATEGORIES)
FALLBACK_LABEL = "general_feedback"
