"""Characters that hide or disguise text, shared by the signal sanitiser and the injection detector.

Both must agree on what is invisible: :mod:`~llm_orchestrator.security.sanitising` removes these
characters from a signal, and :mod:`~llm_orchestrator.security.injection` looks through them
when it searches a text for instructions.
"""

from __future__ import annotations

import re

BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
INVISIBLES = "\u00ad\u034f\u180e\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff"
BIDI_RE = re.compile(f"[{BIDI_CONTROLS}]")
INVISIBLE_RE = re.compile(f"[{INVISIBLES}]")
# Unicode tag characters and supplementary variation selectors can smuggle hidden ASCII text.
HIDDEN_RE = re.compile("[\U000e0000-\U000e007f\U000e0100-\U000e01ef]")
SURROGATE_RE = re.compile("[\ud800-\udfff]")
NEWLINES_RE = re.compile(r"\r\n?|[\u2028\u2029\x85]")

# Cyrillic and Greek letters that look like Latin ones, and the Latin letters they imitate.
LOOKALIKES = "аеорсухіјѕԁһӏАВЕКМНОРСТХІЈЅαορνικτΑΒΕΖΗΙΚΜΝΟΡΤΧΥ"
HOMOGLYPHS = str.maketrans(
    LOOKALIKES,
    "aeopcyxijsdhlABEKMHOPCTXIJSaopviktABEZHIKMNOPTXY",
)
HOMOGLYPH_CHARS = frozenset(LOOKALIKES)
