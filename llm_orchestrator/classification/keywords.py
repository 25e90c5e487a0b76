"""The free first stage: a few phrase rules that decide only when they are sure.

:func:`keyword_classify` decides a signal when exactly one category has a firing :data:`RULES`
entry (an explicit statement of intent: "please cancel our subscription", "the app crashes on
launch", "please add ...", "we'd like to add 20 more seats") and no other category shows even a
weak cue (:data:`CUES`); otherwise it abstains (returns None) and the signal goes to a model.

The whole text is left to a model (no rule looks at it) when it is flagged for injection
(``security.injection_flags``), long (:data:`MAX_KEYWORD_CHARS`), not English, mixed ("but",
"though", "however"), unsure ("not sure", "maybe", "not a bug"), sarcastic or emoji-laden,
forwarded or quoted, or about something that is over ("fixed", "no longer", "used to").
A rule's match is also ignored when, in its own sentence, it is negated ("no crashes", "not
cancelling"), hypothetical ("if we cancel ..."), inside quotation marks, or a question (except
for the rules marked ``questions=True``: "Could you add ...?" is a request).

The rules were written from general knowledge of the categories, not from any labelled file;
``tests/test_keyword_precision.py`` measures each rule and each label on ``data/signals_dev.jsonl``
(300 signals nobody tuned on) and fails a rule or label below 0.95 precision (``pytest -s``
prints the table). On that set the stage decides 18 of 300 signals (6 %), all 18 right; on the
80-signal sample, 22 (28 %), all right. Few decisions, on purpose: a wrong free answer costs more
than a model call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llm_orchestrator.classification.categories import LABELS
from llm_orchestrator.classification.parser import Classification
from llm_orchestrator.security import SanitizedSignal, injection_flags, redact
from llm_orchestrator.security.sanitising import as_sanitized

KEYWORD_CONFIDENCE = 0.95
# Longer texts mix intents (sales notes, pasted logs); phrase rules leave them to a model.
MAX_KEYWORD_CHARS = 300
MAX_EVIDENCE_CHARS = 120
# A text whose letters are more than this share non-ASCII is not English: left to a model.
MAX_NON_ASCII_LETTERS = 0.1
# A text of at least this many words with none of ENGLISH_WORDS is not English either.
MIN_WORDS_FOR_LANGUAGE_CHECK = 5

_FEATURE, _BUG, _CHURN, _EXPANSION, _GENERAL = LABELS  # the five labels, in their canonical order


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


@dataclass(frozen=True)
class Rule:
    """One phrase rule: ``pattern`` (on lower-cased text) votes for ``label``.

    Attributes:
        name: ``label.what`` - reported by the precision test.
        label: The category it decides.
        pattern: What it looks for.
        questions: May fire inside a question ("Could you add ...?").
    """

    name: str
    label: str
    pattern: re.Pattern[str]
    questions: bool = False


_WE = r"(?:we|i|they)\s*(?:'re|'ll|'ve|'d|'m|\s+are|\s+will|\s+have|\s+am)?"
_INTENT = (
    r"(?:want|would like|'d like|need|plan|are planning|have decided|decided|are going|'re going|"
    r"am going|'m going)\s+to"
)
# An object a request for a feature does not have: people, seats, accounts (those are expansion or support).
_NOT_FEATURE_OBJECT = (
    r"(?!\s+(?:me|us|him|her|them|my|our|\d|more|another|additional|extra|new (?:users?|members?)|"
    r"a (?:new )?(?:user|member|seat|licen|person|colleague|teammate|admin)|users?|seats?|licen))"
)

RULES: tuple[Rule, ...] = (
    # churn_risk: an explicit intention to leave or pay less.
    Rule(
        "churn_risk.cancel",
        _CHURN,
        _rx(
            rf"\b(?:please|{_WE}\s+{_INTENT}|{_WE})\s+(?:cancel(?:l?ing)?|terminat(?:e|ing)|clos(?:e|ing)|end(?:ing)?)\s+"
            r"(?:our|my|the|this)\s+(?:\w+\s+)?(?:subscription|account|contract|plan|membership|licen[cs]es?)\b"
            r"(?!\s+(?:change|switch|update|invite|upgrade))"
        ),
    ),
    Rule(
        "churn_risk.not_renew",
        _CHURN,
        _rx(
            r"\b(?:we|they|i)\s*(?:will not|won't|are not|aren't|'re not|do not|don't|have decided not to|"
            r"decided not to|are not going to|'re not going to|won't be)\s+(?:be\s+|going\s+to\s+)?renew(?:ing)?\b",
            r"\blet\s+(?:it|the\s+(?:contract|subscription|renewal|licen[cs]e))\s+lapse\b",
        ),
    ),
    Rule(
        "churn_risk.switch_away",
        _CHURN,
        _rx(
            r"\b(?:switch(?:ing)?|mov(?:e|ing)|migrat(?:e|ing))\s+(?:\w+\s+){0,2}(?:over\s+)?to\s+(?:a\s+|an\s+)?"
            r"(?:competitor|(?:another|other|different)\s+(?:vendor|tool|platform|provider|solution|product))\b"
        ),
    ),
    Rule(
        "churn_risk.alternatives",
        _CHURN,
        _rx(
            r"\b(?:evaluating|trialling|trialing|piloting|looking at|looking for|considering)\s+(?:a\s+|an\s+|some\s+)?"
            r"(?:competitor|competing (?:tool|product|vendor)|alternative|replacement)s?\b",
            r"\blooking elsewhere\b",
        ),
    ),
    Rule("churn_risk.downgrade", _CHURN, _rx(rf"\b(?:{_WE}\s+{_INTENT}|{_WE}|please)\s+downgrad(?:e|ing)\b")),
    # bug_report: something that exists is failing, in words nobody uses for a wish.
    Rule("bug_report.crash", _BUG, _rx(r"\b(?:crash(?:es|ed|ing)|keeps crashing|force[- ]?clos(?:es|ing))\b")),
    Rule(
        "bug_report.error",
        _BUG,
        _rx(
            r"\b(?:throws?|throwing|returns?|returning|gets?|getting|got|shows?|showing|gives?|giving|seeing)\s+"
            r"(?:an?\s+|the\s+|this\s+)?(?:\d{3}\s+|server\s+|internal\s+|unexpected\s+|fatal\s+)?(?:error|exception)s?\b",
            r"\b[45]\d\d\s+(?:error|internal server error|bad gateway)\b",
            r"\berror\s+(?:code\s+)?\d{3,}\b",
            r"\b(?:type|reference|syntax|range|null ?pointer|runtime)(?:error|exception)\b",
            r"\b(?:stack ?trace|traceback|segfault|segmentation fault)\b",
        ),
    ),
    Rule(
        "bug_report.stopped_working",
        _BUG,
        _rx(
            r"\b(?:stopped|stops)\s+(?:working|loading|syncing|sending|saving|responding)\b",
            r"\bfail(?:s|ed|ing)?\s+to\s+(?:load|save|sync|open|send|export|import|upload|download|connect|render)\b",
            r"\bkeeps?\s+(?:failing|freezing|crashing|hanging|logging (?:me|us) out|timing out)\b",
            r"\b(?:freezes|freezing|hangs)\s+(?:on|at|when|whenever|every|after|while)\b",
        ),
    ),
    Rule(
        "bug_report.does_not_work",
        _BUG,
        _rx(
            r"\b(?:doesn't|does not|won't|will not|isn't|is not|aren't|are not)\s+"
            r"(?:work(?:ing)?|load(?:ing)?|sav(?:e|ing)|"
            r"sync(?:ing)?|open(?:ing)?|respond(?:ing)?)\b(?!\s+(?:for|with)\s+(?:us|our|me|my|the way))"
        ),
    ),
    Rule("bug_report.broken", _BUG, _rx(r"\b(?:is|are|seems|looks|got|went)\s+(?:completely\s+|totally\s+)?broken\b")),
    Rule(
        "bug_report.symptom",
        _BUG,
        _rx(r"\b(?:blank|white)\s+(?:page|screen)\b", r"\bredirect loop\b", r"\binfinite (?:loop|spinner|loading)\b"),
    ),
    Rule(
        "bug_report.explicit",
        _BUG,
        _rx(
            r"^bug\s*[:\-]",
            r"\b(?:found|hit|noticed|reporting)\s+a\s+bug\b",
            r"\bthere(?:'s| is)\s+a\s+bug\b",
            r"\b(?:this|it|that)\s*(?:is|'s|looks like|seems like)\s+(?:definitely\s+|clearly\s+)?a bug\b",
        ),
    ),
    # feature_request: an explicit ask for something new.
    Rule(
        "feature_request.please_add",
        _FEATURE,
        _rx(
            r"\b(?:please|pls|plz|can you|could you|would you)\s+(?:please\s+)?(?:add|build|implement)"
            + _NOT_FEATURE_OBJECT
        ),
        questions=True,
    ),
    Rule(
        "feature_request.would_love",
        _FEATURE,
        _rx(
            r"\b(?:would|'d)\s+love\s+(?:to\s+(?:see|have)|it if|(?:a|an|the ability|the option|support for|some way))\b",
            r"\b(?:would|'d)\s+be\s+(?:really\s+|very\s+|so\s+|super\s+)?"
            r"(?:great|nice|awesome|helpful|useful|handy|amazing)\s+(?:if|to\s+(?:have|be able|get|see))\b"
            r"(?!\s+(?:you|someone|somebody|anyone)\s+(?:could|can)\s+(?:call|get back|look|help|respond|reply|check|"
            r"confirm|send|share|let))",
        ),
    ),
    Rule(
        "feature_request.plans_to",
        _FEATURE,
        _rx(
            r"\b(?:any|are there(?: any)?|do you have(?: any)?)\s+plans\s+to\s+(?:add|support|build|offer|introduce)\b"
        ),
        questions=True,
    ),
    Rule(
        "feature_request.wish",
        _FEATURE,
        _rx(
            r"\b(?:i|we)\s+(?:really\s+)?wish\s+(?:there\s+(?:was|were)|(?:it|you|we|i|the\s+\w+)\s+"
            r"(?:could|would|had|supported|let|showed))\b"
        ),
    ),
    Rule(
        "feature_request.support_for",
        _FEATURE,
        _rx(
            r"\b(?:please|pls)\s+(?:allow|let)\s+(?:us|me|users)\s+(?!know\b)",
            r"\b(?:add|adding)\s+support\s+for\b",
            r"\b(?:we|i)\s+(?:really\s+|badly\s+)?(?:need|want)\s+(?:a\s+way|the\s+ability|an\s+option|the\s+option|"
            r"a\s+setting)\s+to\b",
        ),
        questions=True,
    ),
    Rule("feature_request.explicit", _FEATURE, _rx(r"^feature request\b", r"\bfeature request\s*[:\-]")),
    # expansion_signal: an explicit wish to buy more.
    Rule(
        "expansion_signal.more_seats",
        _EXPANSION,
        _rx(
            r"\b(?:add|adding|buy|buying|purchase|purchasing|order|get|quote|need|want|would like|pricing for|price for)\b"
            r"[^.?!]{0,30}?\b(?:\d+|more|additional|extra)\s+(?:more\s+|new\s+)?(?:seats?|licen[cs]es?)\b",
            r"\b(?:add|adding|buy|buying|purchase|purchasing)\b[^.?!]{0,30}?\b(?:\d+|more|additional|extra)\s+"
            r"(?:more\s+|new\s+)?users?\b",
            r"\b\d+\s+(?:more|additional|extra)\s+users\b",
        ),
        questions=True,
    ),
    Rule(
        "expansion_signal.upgrade",
        _EXPANSION,
        _rx(
            r"\bupgrad(?:e|ing)\s+(?:us|our\s+(?:plan|account|team|subscription|workspace|org\w*)|(?:\w+\s+){0,3}"
            r"to\s+(?:the\s+|a\s+)?(?:pro|business|enterprise|premium|professional|higher|bigger)\b)",
            r"\bmov(?:e|ing)\s+(?:up\s+)?to\s+(?:the\s+|a\s+)?(?:pro|business|enterprise|premium|higher|next|bigger)\s+"
            r"(?:plan|tier)\b",
        ),
    ),
    Rule(
        "expansion_signal.new_team",
        _EXPANSION,
        _rx(
            rf"\b{_INTENT}\s+(?:onboard|add|bring (?:on|in))\s+(?:another|a new|our\s+(?:new\s+)?\w+)\s+"
            r"(?:team|office|department|region|division|subsidiary|location)\b"
        ),
    ),
    Rule(
        "expansion_signal.rollout",
        _EXPANSION,
        _rx(
            r"\b(?:company|org|organi[sz]ation)[- ]wide\s+(?:rollout|roll-out|deployment)\b",
            r"\broll(?:ing)?\s+(?:it|this|you)\s+out\s+to\s+(?:the\s+)?(?:rest|whole|entire|all|every|other)\b",
        ),
    ),
    Rule(
        "expansion_signal.pricing",
        _EXPANSION,
        _rx(r"\b(?:volume|bulk)\s+(?:discount|pricing)\b", r"\bsend\s+(?:us\s+|me\s+)?a\s+quote\b"),
        questions=True,
    ),
    # general_feedback: thanks, praise and how-to questions with nothing else in them.
    Rule("general_feedback.thanks", _GENERAL, _rx(r"^(?:thanks|thank you|thx|many thanks|kudos)\b")),
    Rule(
        "general_feedback.praise",
        _GENERAL,
        _rx(
            r"^(?:i |we )?(?:really |absolutely )?(?:love|great|awesome|amazing|fantastic|excellent|brilliant)\s+"
            r"(?:the|this|your|it|job|work|tool|product|app|update|release)\b"
        ),
    ),
    Rule(
        "general_feedback.how_to",
        _GENERAL,
        _rx(r"^(?:how\s+(?:do|can)\s+(?:i|we)|where\s+(?:can|do)\s+(?:i|we)\s+find|where\s+is)\b[^.!?]*\?$"),
        questions=True,
    ),
)

# Cues: any cue of another category blocks a decision. Broad on purpose (they only cost coverage).
CUES: dict[str, re.Pattern[str]] = {
    _CHURN: _rx(
        r"\bcancel",
        r"\brenew",
        r"\bcompetitor",
        r"\balternative",
        r"\bswitch",
        r"\bleav(?:e|ing)\b",
        r"\bmigrat",
        r"\bdowngrad",
        r"\bexpensive\b",
        r"\bprice",
        r"\bbudget",
        r"\bcut\b",
        r"\bconsolidat",
        r"\breplac",
        r"\bvendor",
        r"\bunacceptable\b",
        r"\bfrustrat",
        r"\bdisappoint",
        r"\bworst\b",
        r"\bterrible\b",
        r"\bdone with\b",
        r"\bchurn",
        r"\blapse",
        r"\brefund",
        r"\bcontract\b",
        r"\bpilot",
        r"\btrial",
        r"\bevaluat",
        r"\belsewhere\b",
        r"\bfewer\b",
        r"\bremov",
        r"\breduc",
        r"\blay ?offs?\b",
        r"\blaid off\b",
        r"\bdrop",
        r"\bquit",
        r"\bterminat",
        r"\bclos(?:e|ing)\s+(?:down\s+)?(?:my|our|the)\s+(?:\w+\s+)?(?:account|workspace|subscription|org)",
        r"\bstop\s+(?:being\s+)?(?:billed|charg|pay)",
        r"\bunsubscrib",
        r"\bexport\s+(?:all|everything)",
    ),
    _BUG: _rx(
        r"\bbug",
        r"\berror",
        r"\bcrash",
        r"\bbroke",
        r"\bfail",
        r"\bissue",
        r"\bproblem",
        r"\bwrong\b",
        r"\bstuck\b",
        r"\bblank\b",
        r"\bslow",
        r"\blag",
        r"\btim(?:e|es|ed|ing) ?out",
        r"\bnot working\b",
        r"\b(?:doesn't|does not|won't|can't|cannot|unable to)\s+(?:work|load|open|save|sync|log|sign|access)",
        r"\bdelet",
        r"\blost\b",
        r"\bglitch",
        r"\bfreez",
        r"\bdisappear",
        r"\boutage",
        r"\bis down\b",
        r"\bfix",
        r"\bincorrect",
        r"\bduplicat",
        r"\b[45]\d\d\s*(?:error|status|response|code)",
        r"\b(?:error|status|http)\s*[45]\d\d\b",
        r"\bexception",
        r"\bhang",
        r"\bspinn",
        r"\bloop\b",
        r"\bweird",
        r"\bstrange",
        r"\bodd\b",
        r"\bdiffer",
        r"\bmismatch",
        r"\binconsisten",
    ),
    _FEATURE: _rx(
        r"\bfeature",
        r"\bwish",
        r"\bwould (?:be|love)",
        r"\bability to\b",
        r"\boption to\b",
        r"\bintegrat",
        r"\broadmap",
        r"\bsupport for\b",
        r"\bmissing\b",
        r"\bis there a way\b",
        r"\b(?:could|can|would) you\b",
        r"\bplease add\b",
        r"\brequest",
        r"\bsuggest",
        r"\bidea\b",
        r"\bshould (?:be able|have|let|allow)",
        r"\ballow",
        r"\bwant(?:ed)? to be able\b",
    ),
    _EXPANSION: _rx(
        r"\bseats?\b",
        r"\blicen[cs]",
        r"\bupgrad",
        r"\btier\b",
        r"\b(?:pro|business|enterprise|premium) plan",
        r"\broll(?:ing)? ?out",
        r"\bexpan",
        r"\bquote\b",
        r"\badd-?on\b",
        r"\bvolume\b",
        r"\bsubsidiar",
        r"\b(?:more|additional|extra) (?:users|people|teams?)\b",
        r"\bdepartment",
        r"\bhir(?:e|ing)\b",
        r"\bheadcount\b",
        r"\bpricing\b",
        r"\bbuy",
        r"\bpurchas",
        r"\border(?:ing)?\s+(?:more|extra|additional)\b",
        r"\badd(?:ing)?\s+(?:our|the|a|another|\d+)\s+(?:\w+\s+)?(?:teams?|departments?|divisions?|offices?)\b",
    ),
    _GENERAL: _rx(r"(?!)"),  # general_feedback has no cue that blocks others
}

# The whole text is left to a model when any of these is in it.
UNSURE: dict[str, re.Pattern[str]] = {
    "mixed": _rx(
        r"\bbut\b",
        r"\bthough\b",
        r"\balthough\b",
        r"\bhowever\b",
        r"\bexcept\b",
        r"\bunless\b",
        r"\botherwise\b",
        r"\bwhereas\b",
        r"\bapart from\b",
        r"\baside from\b",
        r"\bshame\b",
    ),
    "uncertain": _rx(
        r"\bnot sure\b",
        r"\bunsure\b",
        r"\bmaybe\b",
        r"\bperhaps\b",
        r"\bmight\b",
        r"\bwondering\b",
        r"\bi think\b",
        r"\bprobably\b",
        r"\bno idea\b",
        r"\bnot (?:a |asking for a |really a )?(?:bug|feature)",
        r"\bnot trying to\b",
        r"\bnot asking\b",
    ),
    "tone": _rx(
        r"\boh sure\b",
        r"\byeah right\b",
        r"\bexactly how i wanted\b",
        r"\bthanks (?:a lot|for nothing)\b",
        r"\bjust great\b",
        r"\blove how\b",
        r"/s\b",
        r"\.\.\.|\u2026",
        r"!!|\?\?|\?!|!\?",
        "[\u2600-\u27bf\U0001f000-\U0001faff]",
    ),
    "reported": _rx(r"^\s*>", r"\n\s*>", r"\bforwarded\b", r"\bfwd?:", r"\bpsa\b", r"\bfyi\b"),
    "over": _rx(
        r"\bfixed\b",
        r"\bresolved\b",
        r"\bsolved\b",
        r"\bworking again\b",
        r"\bworks now\b",
        r"\bno longer\b",
        r"\bused to\b",
        r"\banymore\b",
        r"\bback to normal\b",
    ),
}
# Before a rule's match, in its sentence: negation and hypotheticals void the match.
NEGATED = _rx(
    r"\bnot\b",
    r"\bno\b",
    r"\bnever\b",
    r"n't\b",
    r"\bwithout\b",
    r"\bnothing\b",
    r"\bnone\b",
    r"\bnobody\b",
    r"\bhardly\b",
    r"\binstead of\b",
    r"\brather than\b",
    r"\bstop(?:ped)?\b",
)
HYPOTHETICAL = _rx(
    r"\bif\b",
    r"\bwhether\b",
    r"\bin case\b",
    r"\bsuppos",
    r"\bassuming\b",
    r"\bwhat happens\b",
    r"\bimagine\b",
    r"\bhypothetical",
    r"\bwould\b",
    r"\bcould\b",
    r"\bshould\b",
)
# English function words that are not also common words of other Latin-script languages ("a", "i",
# "in", "no", "do" are); a text needs MIN_ENGLISH_SHARE of its words from here to count as English.
ENGLISH_WORDS = frozenset(
    [
        "the",
        "and",
        "or",
        "but",
        "if",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "we",
        "it",
        "its",
        "it's",
        "our",
        "my",
        "you",
        "your",
        "to",
        "for",
        "of",
        "this",
        "that",
        "with",
        "not",
        "can",
        "please",
        "have",
        "has",
        "had",
        "from",
        "when",
        "what",
        "which",
        "who",
        "they",
        "them",
        "their",
        "there",
        "than",
        "then",
        "would",
        "should",
        "could",
        "will",
        "just",
        "at",
        "by",
        "as",
        "all",
        "any",
        "some",
        "only",
        "also",
        "very",
        "about",
        "into",
        "out",
        "up",
        "get",
        "got",
        "i'm",
        "i've",
        "we're",
        "we've",
        "we'll",
        "don't",
        "doesn't",
        "can't",
        "won't",
        "isn't",
    ]
)
MIN_ENGLISH_SHARE = 0.08
_QUOTED_RE = re.compile(
    '"[^"\n]{1,200}"|\u201c[^\u201d\n]{1,200}\u201d|\u2018[^\u2019\n]{1,200}\u2019'
    "|(?<![a-z0-9])'[^'\n]{1,200}'(?![a-z0-9])"
)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'"})
_SENTENCE_RE = re.compile(r"[^.!?\n]+[.!?]*")
_WORDS_RE = re.compile(r"[a-z']+")


def is_english(text: str) -> bool:
    """Whether a (lower-cased) text reads as English: few non-ASCII letters and, from
    ``MIN_WORDS_FOR_LANGUAGE_CHECK`` words on, enough English function words."""
    letters = [ch for ch in text if ch.isalpha()]
    if letters and sum(not ch.isascii() for ch in letters) > MAX_NON_ASCII_LETTERS * len(letters):
        return False
    words = _WORDS_RE.findall(text)
    english = sum(w in ENGLISH_WORDS for w in words)
    return len(words) < MIN_WORDS_FOR_LANGUAGE_CHECK or english >= MIN_ENGLISH_SHARE * len(words)


def unsure(text: str) -> str | None:
    """Why a whole (lower-cased) text is left to a model - ``language`` or a key of :data:`UNSURE`
    - or None. The learned prefilter applies the same checks."""
    if not is_english(text):
        return "language"
    return next((name for name, pattern in UNSURE.items() if pattern.search(text)), None)


def _view(text: str | SanitizedSignal) -> tuple[str, str] | None:
    """``(clean text, its lower-cased form)`` the rules read, or None when the whole text is left
    to a model."""
    signal = as_sanitized(text)
    if signal.truncated or not signal.text.strip() or len(signal.text) > MAX_KEYWORD_CHARS:
        return None
    if injection_flags(signal.text):
        return None
    clean = signal.text.translate(_APOSTROPHES).strip()
    lowered = clean.lower()
    if unsure(lowered) is not None:
        return None
    return clean, lowered


def _sentence(text: str, at: int) -> re.Match[str] | None:
    return next((s for s in _SENTENCE_RE.finditer(text) if s.start() <= at < s.end()), None)


def _holds(rule: Rule, text: str, match: re.Match[str]) -> bool:
    """The match stands: not negated, hypothetical, quoted, or (unless allowed) asked."""
    sentence = _sentence(text, match.start())
    if sentence is None:
        return False
    before = text[sentence.start() : match.start()]
    if NEGATED.search(before) or HYPOTHETICAL.search(before):
        return False
    if not rule.questions and sentence.group(0).rstrip().endswith("?"):
        return False
    return not any(q.start() <= match.start() < q.end() for q in _QUOTED_RE.finditer(text))


def firing_rules(text: str) -> list[tuple[Rule, re.Match[str]]]:
    """The rules whose phrase stands in ``text`` (after the whole-text and sentence checks).

    Args:
        text: A raw customer signal, or one already sanitised (the pipeline's, cut at its own
            ``max_signal_chars``: a text it cut counts as truncated here too).

    Returns:
        ``(rule, match)`` pairs in :data:`RULES` order; empty when the text is left to a model.
    """
    view = _view(text)
    return [] if view is None else _fired(view[1])


def _fired(lowered: str) -> list[tuple[Rule, re.Match[str]]]:
    fired = []
    for rule in RULES:
        for match in rule.pattern.finditer(lowered):
            if _holds(rule, lowered, match):
                fired.append((rule, match))
                break
    return fired


def keyword_classify(text: str | SanitizedSignal) -> Classification | None:
    """Classify with phrase rules when sure; abstain (None) otherwise.

    The text is sanitised first (zero-width characters, look-alike letters and bidi tricks
    undone), and any injection flag makes the stage abstain.

    Args:
        text: A raw customer signal, or one already sanitised (the pipeline's, cut at its own
            ``max_signal_chars``: a text it cut counts as truncated here too).

    Returns:
        A :class:`Classification` with confidence ``KEYWORD_CONFIDENCE``, or None to hand the
        signal to a model.
    """
    view = _view(text)
    if view is None:
        return None
    clean, lowered = view
    fired = _fired(lowered)
    labels = {rule.label for rule, _ in fired}
    if len(labels) != 1:
        return None
    (label,) = labels
    if any(CUES[other].search(lowered) for other in LABELS if other != label):
        return None
    match = fired[0][1]
    sentence = _sentence(lowered, match.start())
    start, end = (sentence.start(), sentence.end()) if sentence else (match.start(), match.end())
    quote = clean if len(clean) == len(lowered) else lowered  # match offsets refer to `lowered`
    return Classification(label, KEYWORD_CONFIDENCE, redact(quote[start:end].strip())[:MAX_EVIDENCE_CHARS])
