"""The five product-signal categories and what each one means.

This is the single source of the label set: the prompt, the parser, the keyword stage and the
evaluation all read it from here. A classifier never returns any other label.
"""

from __future__ import annotations

CATEGORIES: dict[str, str] = {
    "feature_request": "The customer asks for something the product does not do yet, or wants it to work "
    "differently than it was designed to: a new capability, integration, option, report, "
    "export format, setting or shortcut.",
    "bug_report": "Something that exists and should work is broken or misbehaves: errors, crashes, wrong "
    "results, data loss, pages or charts that do not load, features that stopped working, "
    "sudden slowness, log-outs or settings that do not stick.",
    "churn_risk": "The customer signals they may leave or pay less: cancelling, not renewing, downgrading, "
    "evaluating or piloting a replacement, consolidating onto another vendor, cutting the tool "
    "from the budget, or usage and engagement collapsing.",
    "expansion_signal": "The customer signals they may buy more: more seats, licences or users, another team, "
    "office or department, a higher plan or tier, an add-on, a wider rollout, or asking "
    "for a quote or volume pricing.",
    "general_feedback": "Praise, thanks, neutral or mixed remarks, how-to and information questions, and "
    "anything that fits none of the other four categories.",
}
LABELS: tuple[str, ...] = tuple(CATEGORIES)
# The label a caller records when it has no usable answer (with confidence 0).
FALLBACK_LABEL = "general_feedback"


def is_label(value: object) -> bool:
    """Tell whether ``value`` is exactly one of the five category labels.

    Args:
        value: Anything.

    Returns:
        True for ``"feature_request"``, ``"bug_report"``, ``"churn_risk"``,
        ``"expansion_signal"`` and ``"general_feedback"``; False otherwise.
    """
    return isinstance(value, str) and value in CATEGORIES
