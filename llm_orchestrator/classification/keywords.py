"""The free first stage: phrase rules that decide only when they are sure.

:func:`keyword_classify` returns a :class:`Classification` when exactly one category has a
strong phrase (``cancel our subscription``, ``throws a 500 error``, ``please add``, ``20 more
seats``) and no other category shows even a weak cue; otherwise it abstains (returns None) and
the signal goes to a model. It also abstains on:

* any text with an injection flag (``security.injection_flags``), so words an attacker planted
  ("... output expansion_signal ...") can never decide a label;
* meta statements such as "not a bug", sarcasm markers and long texts (sales notes, pasted
  logs), where phrase rules are unreliable.

Measured on ``data/signals_sample.jsonl`` by ``tests/test_keywords.py`` (precision = correct /
decided, coverage = decided / total): 45/45 correct, 45 of 80 decided. The rules were written
while reading that sample, so those figures are optimistic; the test also checks a small set
of signals that were not used for tuning.
"""

from __future__ import annotations

import re

from llm_orchestrator.classification.categories import LABELS
from llm_orchestrator.classification.parser import Classification
from llm_orchestrator.security import injection_flags, redact, sanitize_signal

KEYWORD_CONFIDENCE = 0.95
# Longer texts mix intents (sales notes, pasted logs); phrase rules leave them to a model.
MAX_KEYWORD_CHARS = 400
MAX_EVIDENCE_CHARS = 120

_FEATURE, _BUG, _CHURN, _EXPANSION, _GENERAL = LABELS  # the five labels, in their canonical order


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


# Phrases that decide a category on their own (text is lower-cased, apostrophes straightened).
STRONG: dict[str, re.Pattern[str]] = {
    _CHURN: _rx(
        r"\bcancel(?:l?ing|l?ed)?\s+(?:our|my|the|this)\s+(?:subscription|account|contract|plan|service|membership)",
        r"\b(?:not|won't|will not|don't|do not|decided not to)\s+(?:plan(?:ning)? to\s+|be\s+)?renew(?:ing)?\b",
        r"\b(?:switch|switching|move|moving|moved|migrate|migrating)\s+(?:over\s+|everything\s+)?to\s+"
        r"(?:a\s+|another\s+|the\s+)?(?:competitor|(?:another|different|other)\s+"
        r"(?:platform|vendor|tool|provider|solution))",
        r"\b(?:considering|thinking about|planning on)\s+(?:switching|leaving|moving away)\b",
        r"\blooking elsewhere\b",
        r"\b(?:evaluating|trialing|trialling|piloting)\b[^.?!]{0,40}\b(?:as a replacement|competitor|alternative)\b",
        r"\bdowngrad(?:e|ing)\s+(?:us\s+)?(?:from|to)\b",
        r"\blet (?:it|the (?:contract|subscription|renewal)) lapse\b",
    ),
    _BUG: _rx(
        r"^bug\s*:", r"\b(?:definitely|clearly|this is|it's|looks like) a bug\b",
        r"\bcrash(?:es|ed|ing)?\b",
        r"\b(?:throws?|throwing|getting|returns?|returning|shows?)\s+(?:an?\s+|the\s+)?(?:\d{3}\s+)?"
        r"(?:error|exception)\b",
        r"\berror\s+\d{3}\b", r"\b\d{3}\s+error\b", r"\b(?:type|reference|syntax|range)error\b",
        r"\b(?:is|are|seems|got)\s+broken\b",
        r"\b(?:doesn't|does not|isn't|aren't|won't|is not|are not)\s+(?:work|working|load|loading|sav(?:e|ing)|"
        r"sync(?:ing)?|open(?:ing)?)\b",
        r"\bredirect loop\b", r"\bblank page\b", r"\bspinning wheel\b", r"\bempty file\b",
        r"\blogs? (?:me|us) out\b", r"\bwrong (?:total|number|value|date|amount|result)s?\b",
        r"\breturns? (?:zero|no) results\b", r"\bnever (?:actually )?(?:sends?|saves?|loads?|syncs?)\b",
    ),
    _FEATURE: _rx(
        r"^(?:feature )?request\s*:", r"\bfeature request\s*:",
        r"\b(?:please|pls|can you|could you|would you)\s+add\b(?!\s+(?:me|us|him|her|them|my|our|a user|users))",
        r"\bwould love (?:to see|it if)\b", r"\bit would be (?:great|nice|awesome|helpful|useful) (?:if|to have)\b",
        r"\bany plans to (?:add|support)\b", r"\bthe only thing missing\b",
        r"\b(?:that|it|this) would be (?:really |very |so )?(?:useful|helpful)\b",
    ),
    _EXPANSION: _rx(
        r"\b(?:add|adding|need|want|get|buy|purchase|quote)\b[^.?!]{0,30}\b(?:\d+|more|additional|extra)\s+"
        r"(?:more\s+)?(?:seats?|licen[cs]es?|users?|workspaces?)\b",
        r"\bmore (?:seats|licen[cs]es)\b", r"\bupgrade (?:us|our (?:plan|account|team))\b",
        r"\bmove up to\b", r"\b(?:higher|next) (?:plan|tier)\b",
        r"\b(?:upgrade|move|moving|go|want|get|interested in)\b[^.?!]{0,30}\b(?:enterprise|business|pro|premium)"
        r" (?:plan|tier)\b",
        r"\b(?:company|org|organi[sz]ation)[- ]wide rollout\b", r"\brolling (?:this|it) out to\b",
        r"\bvolume (?:discount|pricing)\b", r"\badd-on\b", r"\bsend (?:us |me )?a quote\b",
        r"\bwill need a licen[cs]e\b", r"\badding another (?:region|team|office|department|workspace)\b",
    ),
    _GENERAL: _rx(
        r"^(?:how do i|where (?:can|do) i find|where is|does the \w+ plan include)\b[^.!]*\?$",
        r"^(?:thanks|thank you)\b", r"^(?:just wanted to say|great|love|loving|absolutely love)\b",
    ),
}

# Words that hint at a category without deciding it; any hint for another category blocks.
WEAK: dict[str, re.Pattern[str]] = {
    _CHURN: _rx(r"\bcancel", r"\brenew", r"\bcompetitor", r"\bswitch(?:ing)? to\b", r"\bleav(?:e|ing)\b",
                r"\bmigrat", r"\balternative", r"\bbudget\b", r"\bprice (?:increase|hike)", r"\bexpensive\b",
                r"\bconsolidat", r"\bdropped\b", r"\bvendor\b", r"\breplacement\b", r"\bunacceptable\b",
                r"\bfrustrat", r"\bpaying\b", r"\bcut\b", r"\bremov(?:e|ing)\b", r"\breduc", r"\bfewer\b",
                r"\blaid off\b", r"\blayoffs?\b"),
    _BUG: _rx(r"\bbug", r"\berror", r"\bcrash", r"\bbroken\b", r"\bfail", r"\bissue", r"\bproblem",
              r"\bwrong\b", r"\bstuck\b", r"\bblank\b", r"\bslow", r"\btime(?:s|d)? ?out", r"\bnot working\b",
              r"\bdeleted?\b", r"\blost\b", r"\bglitch", r"\bfreez", r"\bdisappear", r"\bundo\b", r"\boutage",
              r"\bis down\b"),
    _FEATURE: _rx(r"\bfeature", r"\bwish", r"\bwould be (?:nice|great|useful|helpful)", r"\bability to\b",
                  r"\boption to\b", r"\bintegration\b", r"\broadmap\b", r"\bsupport for\b", r"\bmissing\b",
                  r"\bis there a way\b"),
    _EXPANSION: _rx(r"\bseats?\b", r"\blicen[cs]e", r"\bupgrad", r"\btier\b", r"\broll(?:ing)? ?out",
                    r"\bexpand", r"\bquote\b", r"\badd-on\b", r"\bvolume\b", r"\bsubsidiar"),
    _GENERAL: _rx(r"(?!)"),  # general_feedback has no cue that blocks others
}

# Meta statements and tone where phrase rules are unreliable: abstain.
UNSURE = _rx(r"\bnot (?:a |asking for a )?(?:bug|feature)", r"\bnot trying to\b", r"\boh sure\b",
             r"\bexactly how i wanted\b", r"\byeah right\b", r"🙂|🙃|😒|🤔", r"\.\.\.", r"\bthough\b",
             r"\balthough\b", r"\bhowever\b", r"\bbut\b", r"\bunless\b", r"\bexcept\b",
             r"\b(?:no|zero|never|fewer|stopped|fixed|without)\s+(?:\w+\s+)?(?:crash|error|bug|issue)")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_SENTENCE_RE = re.compile(r"[^.!?\n]+[.!?]?")


def _evidence(text: str, match: re.Match[str]) -> str:
    """The sentence holding the match, redacted and short."""
    for sentence in _SENTENCE_RE.finditer(text):
        if sentence.start() <= match.start() < sentence.end():
            return redact(sentence.group(0).strip())[:MAX_EVIDENCE_CHARS]
    return redact(match.group(0))[:MAX_EVIDENCE_CHARS]


def keyword_classify(text: str) -> Classification | None:
    """Classify with phrase rules when sure; abstain (None) otherwise.

    The text is sanitised first (zero-width characters, look-alike letters and bidi tricks
    undone), and any injection flag makes the stage abstain.

    Args:
        text: A customer signal, raw or already sanitised.

    Returns:
        A :class:`Classification` with confidence ``KEYWORD_CONFIDENCE``, or None to hand the
        signal to a model.
    """
    signal = sanitize_signal(text)
    if signal.truncated or not signal.text or len(signal.text) > MAX_KEYWORD_CHARS:
        return None
    if injection_flags(signal.text):
        return None
    original = signal.text.translate(_APOSTROPHES)
    lowered = original.lower()
    if UNSURE.search(lowered):
        return None
    strong = {label: m for label, pattern in STRONG.items() if (m := pattern.search(lowered))}
    if len(strong) != 1:
        return None
    ((label, match),) = strong.items()
    if any(WEAK[other].search(lowered) for other in LABELS if other != label):
        return None
    quoted = original if len(original) == len(lowered) else lowered  # match offsets refer to `lowered`
    return Classification(label, KEYWORD_CONFIDENCE, _evidence(quoted, match))
