"""What a model id says about itself: fine-tuned or not, and which family a dated snapshot is of.

Seed 004 forbids fine-tuned models. They are recognised by id alone, so they are refused at
config load and per request without any registry refresh: OpenAI ``ft:<base>:<org>:…`` (and the
legacy ``ft-…``), Gemini ``tunedModels/…``.

Providers answer a request for an alias with a dated snapshot id (request ``gpt-4o``, response
``gpt-4o-2024-08-06``; Anthropic ``claude-haiku-5-5`` → ``claude-haiku-5-5-20261007``; Gemini
``gemini-1.5-flash`` → ``gemini-1.5-flash-002``). :func:`family` maps a snapshot back to its alias
so it is priced at the family's list price.
"""

from __future__ import annotations

import re

FINE_TUNED_PREFIXES = ("ft:", "ft-", "tunedModels/", "models/tunedModels/")
# A dated or numbered snapshot suffix: -2024-08-06 (OpenAI), -20261007 (Anthropic), -002 (Gemini).
SNAPSHOT_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{3})$")


def is_fine_tuned(model_id: str) -> bool:
    """True for a fine-tuned/tuned model id (OpenAI ``ft:``/``ft-``, Gemini ``tunedModels/``)."""
    return model_id.strip().startswith(FINE_TUNED_PREFIXES)


def family(model_id: str) -> str:
    """The alias a dated snapshot id belongs to (the id itself when it carries no snapshot suffix)."""
    return SNAPSHOT_SUFFIX.sub("", model_id)
