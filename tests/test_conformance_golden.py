"""Golden wire bodies of the real APIs, checked against the official SDKs and the simulator.

Every file in ``tests/conformance/golden/<provider>/<case>.json`` is a response body (or an SSE
event list) quoted from a public source (see the README there). Two checks per file:

1. the official SDK parses it as the real client would (response model, stream events, or the
   status error class built from an ``httpx2.Response``);
2. for each case the simulator can produce, the simulator's answer to the same situation has the
   same HTTP status, the same key structure at every level (values may differ, except the
   discriminating fields: error type/status/code/reason, stop/finish reasons, object/type), the
   same rate-limit / request-id / retry header names, and the same SDK exception class.

A failure lists every difference at once; they are wire facts the simulator does not (yet) match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from google.genai import errors as genai_errors
from google.genai import models as genai_models
from google.genai import types as genai_types
from pydantic import TypeAdapter

GOLDEN_DIR = Path(__file__).parent / "conformance" / "golden"
CASES = sorted(f"{p.parent.name}/{p.stem}" for p in GOLDEN_DIR.glob("*/*.json"))
SCALAR = "·"
LIST = "[]"
DISCRIMINATING_KEYS = frozenset(
    {
        "type",
        "object",
        "status",
        "code",
        "reason",
        "@type",
        "stop_reason",
        "finish_reason",
        "finishReason",
        "blockReason",
    }
)
HEADER_NAMES = ("request-id", "x-request-id", "retry-after", "retry-after-ms", "x-should-retry")
HEADER_PREFIXES = ("anthropic-ratelimit-", "x-ratelimit-")
DROPPED_HEADERS = ("content-length", "content-encoding", "transfer-encoding")
ANTHROPIC_VERSION = "2023-06-01"
MAX_TOKENS = 64
PROMPT = "Say hello."
REFUSE_PROMPT = "[[sim:refuse]] do something bad"
GOOD_KEY = "sk-test-golden"
BAD_KEY = "sk-invalid-golden"
MODELS = {"anthropic": "claude-haiku-5-5", "gemini": "gemini-3.5-flash-lite", "openai": "gpt-6-luna"}
RETIRED_MODELS = {"anthropic": "claude-retired-1", "gemini": "gemini-retired-1", "openai": "gpt-retired-1"}
STREAM_EVENT = TypeAdapter(anthropic.types.RawMessageStreamEvent)


def load(case: str) -> dict[str, Any]:
    return json.loads((GOLDEN_DIR / f"{case}.json").read_text())


# -- key structure ------------------------------------------------------------------------------


def shape(obj: Any) -> Any:
    """The key structure of a JSON value: dicts keep their keys, lists the distinct shapes of their
    items, every scalar (``None`` included) becomes one placeholder."""
    if isinstance(obj, dict):
        return {k: shape(v) for k, v in obj.items()}
    if isinstance(obj, list):
        distinct: list[Any] = []
        for item in map(shape, obj):
            if item not in distinct:
                distinct.append(item)
        return {LIST: distinct}
    return SCALAR


def shape_diff(expected: Any, actual: Any, path: str = "$", subset: bool = False) -> list[str]:
    """Differences between two shapes; ``subset`` ignores keys only ``actual`` has."""
    if isinstance(expected, dict) and isinstance(actual, dict) and (LIST in expected) == (LIST in actual):
        if LIST in expected:
            return _list_diff(expected[LIST], actual[LIST], path, subset)
        diffs = [f"{path}.{k}: missing (golden has it)" for k in expected if k not in actual]
        if not subset:
            diffs += [f"{path}.{k}: extra (golden lacks it)" for k in actual if k not in expected]
        for k in expected.keys() & actual.keys():
            diffs += shape_diff(expected[k], actual[k], f"{path}.{k}", subset)
        return diffs
    if expected == actual:
        return []
    return [f"{path}: golden is {_kind(expected)}, simulator sends {_kind(actual)}"]


def _list_diff(expected: list[Any], actual: list[Any], path: str, subset: bool) -> list[str]:
    if not expected or not actual:
        return []  # an empty list says nothing about its items
    if len(expected) == 1 and len(actual) == 1:
        return shape_diff(expected[0], actual[0], f"{path}[]", subset)
    differ = any(s not in actual for s in expected) or (not subset and any(s not in expected for s in actual))
    return [f"{path}[]: item shapes differ (golden {expected}, simulator {actual})"] if differ else []


def _kind(s: Any) -> str:
    return "a scalar" if s == SCALAR else "a list" if isinstance(s, dict) and LIST in s else "an object"


def discriminator_diff(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Value differences at discriminating keys present on both sides. List items are matched by
    their discriminating values regardless of order (e.g. the ``@type`` of Gemini error details)."""
    diffs: list[str] = []
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k in expected.keys() & actual.keys():
            e, a = expected[k], actual[k]
            if k in DISCRIMINATING_KEYS and not isinstance(e, (dict, list)) and e != a:
                diffs.append(f"{path}.{k}: golden {e!r}, simulator {a!r}")
            diffs += discriminator_diff(e, a, f"{path}.{k}")
    elif isinstance(expected, list) and isinstance(actual, list) and expected and actual:
        if len(expected) == 1 and len(actual) == 1:
            return discriminator_diff(expected[0], actual[0], f"{path}[0]")
        missing = {_signature(e) for e in expected} - {_signature(a) for a in actual}
        if missing:
            diffs.append(f"{path}[]: golden items {sorted(missing)} have no simulator counterpart")
    return diffs


def _signature(item: Any) -> tuple[tuple[str, Any], ...]:
    if not isinstance(item, dict):
        return ()
    scalars = ((k, v) for k, v in item.items() if not isinstance(v, (dict, list)))
    return tuple(sorted((k, v) for k, v in scalars if k in DISCRIMINATING_KEYS))


# Keys a golden body has for a reason the simulator's answer does not share, each named with why:
# - thoughtsTokenCount: sent only when the model thinks (proto3 JSON leaves zero counts out) and
#   the simulated models do not think;
# - cache_write_tokens: GPT-6 reports (and bills) prompt-cache writes; newer than the 2025 capture
#   (openai SDK 3.x types it: ``PromptTokensDetails.cache_write_tokens``).
NOT_COMPARED = ("$.usageMetadata.thoughtsTokenCount", "$.usage.prompt_tokens_details.cache_write_tokens")


def body_diff(expected: Any, actual: Any, where: str, subset: bool = False) -> list[str]:
    diffs = shape_diff(shape(expected), shape(actual), subset=subset)
    diffs = [d for d in diffs if not d.startswith(NOT_COMPARED)]
    return [f"{where} {d}" for d in diffs + discriminator_diff(expected, actual)]


def header_diff(expected: dict[str, str], actual: httpx.Headers) -> list[str]:
    wanted = [h for h in expected if h.lower() in HEADER_NAMES or h.lower().startswith(HEADER_PREFIXES)]
    return [f"header {h}: missing (golden has {expected[h]!r})" for h in wanted if h not in actual]


# -- SSE ----------------------------------------------------------------------------------------


def parse_sse(text: str) -> list[dict[str, Any]]:
    """SSE text as ``[{"event": name or None, "data": parsed JSON}]`` (comment-only blocks skipped)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].lstrip(" "))
        if data:
            events.append({"event": name, "data": json.loads("\n".join(data))})
    return events


def to_sse(events: list[dict[str, Any]]) -> bytes:
    """The inverse of :func:`parse_sse` (one ``event:`` line when the event has a name)."""
    lines = [(f"event: {e['event']}\n" if e["event"] else "") + f"data: {json.dumps(e['data'])}\n\n" for e in events]
    return "".join(lines).encode()


def event_names(events: list[dict[str, Any]]) -> list[str | None]:
    """Event names in order, consecutive repeats collapsed (three deltas count as one)."""
    names: list[str | None] = []
    for e in events:
        if not names or names[-1] != e["event"]:
            names.append(e["event"])
    return names


def events_diff(expected: list[dict[str, Any]], actual: list[dict[str, Any]], subset: bool = False) -> list[str]:
    """Event-name order (repeats collapsed), then the first and last event of each name."""
    diffs = []
    if event_names(expected) != event_names(actual):
        diffs.append(f"event order: golden {event_names(expected)}, simulator {event_names(actual)}")
    for name in dict.fromkeys(e["event"] for e in expected):
        golden = [e["data"] for e in expected if e["event"] == name]
        sim = [e["data"] for e in actual if e["event"] == name]
        if not sim:
            diffs.append(f"event {name!r}: simulator sends none")
            continue
        diffs += body_diff(golden[0], sim[0], f"event {name!r} (first)", subset)
        if len(golden) > 1:
            diffs += body_diff(golden[-1], sim[-1], f"event {name!r} (last)", subset)
    return diffs


# -- the official SDKs --------------------------------------------------------------------------


def sdk_response(status: int, headers: dict[str, str], content: bytes, url: str) -> httpx2.Response:
    kept = {k: v for k, v in headers.items() if k.lower() not in DROPPED_HEADERS}
    return httpx2.Response(
        status,
        headers={"content-type": "application/json", **kept},
        content=content,
        request=httpx2.Request("POST", url),
    )


def sdk_error(provider: str, response: httpx2.Response) -> Exception:
    """The exception the provider's SDK raises for this (non-2xx) response."""
    if provider == "anthropic":
        return anthropic.Anthropic(api_key="x", max_retries=0)._make_status_error_from_response(response)
    if provider == "openai":
        return openai.OpenAI(api_key="x", max_retries=0)._make_status_error_from_response(response)
    try:
        genai_errors.APIError.raise_for_response(response)
    except genai_errors.APIError as err:
        return err
    raise AssertionError("google-genai raised nothing for an error status")


def error_facts(err: Exception) -> tuple[Any, ...]:
    """Class and the attributes callers branch on."""
    if isinstance(err, anthropic.APIStatusError):
        return type(err).__name__, err.type, err.error_code
    if isinstance(err, openai.APIStatusError):
        return type(err).__name__, err.type, err.code
    assert isinstance(err, genai_errors.APIError)
    return type(err).__name__, err.status


def gemini_response(data: dict[str, Any]) -> genai_types.GenerateContentResponse:
    """What google-genai builds from a Developer API body (models.generate_content's own path)."""
    converted = genai_models._GenerateContentResponse_from_mldev(json.loads(json.dumps(data)))
    return genai_types.GenerateContentResponse._from_response(response=converted, kwargs={})


EXPECTED_ERRORS = {
    "anthropic": {
        400: anthropic.BadRequestError,
        401: anthropic.AuthenticationError,
        403: anthropic.PermissionDeniedError,
        404: anthropic.NotFoundError,
        429: anthropic.RateLimitError,
        500: anthropic.InternalServerError,
        529: anthropic.OverloadedError,
    },
    "openai": {
        401: openai.AuthenticationError,
        404: openai.NotFoundError,
        429: openai.RateLimitError,
        500: openai.InternalServerError,
    },
}


@pytest.mark.parametrize("case", CASES)
def test_golden_body_parses_with_the_official_sdk(case: str) -> None:
    provider, golden = case.split("/")[0], load(case)
    status, body, events = golden["status"], golden.get("body"), golden.get("events")
    if status >= 400:
        err = sdk_error(
            provider,
            sdk_response(
                status, golden.get("headers", {}), b"" if body is None else json.dumps(body).encode(), "https://x/v1"
            ),
        )
        if provider == "gemini":
            expected = genai_errors.ClientError if status < 500 else genai_errors.ServerError
            assert isinstance(err, expected) and err.code == status and err.status == body["error"]["status"]
            return
        assert type(err) is EXPECTED_ERRORS[provider][status]
        if body is not None:
            assert err.type == body["error"]["type"]
        if provider == "openai":
            assert err.code == body["error"]["code"]
        if provider == "anthropic" and "request-id" in golden.get("headers", {}):
            assert err.request_id == golden["headers"]["request-id"]
        return
    if events is not None:
        _parse_stream(provider, events)
    elif body is None:
        assert golden["headers"], "a body-less fixture must quote headers"
    elif provider == "anthropic" and golden.get("partial"):
        assert TypeAdapter(anthropic.types.StopReason).validate_python(body["stop_reason"]) == body["stop_reason"]
        TypeAdapter(list[anthropic.types.TextBlock]).validate_python(body["content"])
    elif provider == "anthropic":
        assert anthropic.types.Message.model_validate(body).stop_reason == body["stop_reason"]
    elif provider == "openai":
        completion = openai.types.chat.ChatCompletion.model_validate(body)
        assert completion.choices[0].finish_reason == body["choices"][0]["finish_reason"]
    else:
        parsed = gemini_response(body)
        assert parsed.candidates and parsed.candidates[0].finish_reason == body["candidates"][0]["finishReason"]


def _parse_stream(provider: str, events: list[dict[str, Any]]) -> None:
    if provider == "gemini":
        parsed = [gemini_response(e["data"]) for e in events]
        if "promptFeedback" in events[0]["data"]:
            assert parsed[0].prompt_feedback.block_reason == events[0]["data"]["promptFeedback"]["blockReason"]
            assert parsed[0].text is None
        else:
            assert "".join(p.text for p in parsed) == "".join(
                part["text"] for e in events for part in e["data"]["candidates"][0]["content"]["parts"]
            )
        return
    for e in events:
        if e["event"] not in ("ping", "error"):
            assert STREAM_EVENT.validate_python(e["data"]).type == e["event"]
    response = httpx2.Response(
        200,
        headers={"content-type": "text/event-stream"},
        content=to_sse(events),
        request=httpx2.Request("POST", "https://x/v1/messages"),
    )
    stream = anthropic.Stream(
        cast_to=anthropic.types.RawMessageStreamEvent, response=response, client=anthropic.Anthropic(api_key="x")
    )
    if any(e["event"] == "error" for e in events):
        with pytest.raises(anthropic.APIStatusError) as info:
            list(stream)
        assert info.value.status_code == 200  # an in-stream error keeps the 200 status, classify by .type
        assert info.value.type == next(e for e in events if e["event"] == "error")["data"]["error"]["type"]
    else:
        assert len(list(stream)) == sum(e["event"] != "ping" for e in events)


# -- the simulator ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    """How to make the simulator answer a golden case."""

    key: str | None = GOOD_KEY
    model: str | None = None
    prompt: str = PROMPT
    stream: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    drop_contents: bool = False  # Gemini: a body without `contents`
    fault: dict[str, Any] | None = None
    limits: dict[str, Any] | None = None
    requests: int = 1  # the last answer is compared
    headers_only: bool = False


def _fault(status: int, **extra: Any) -> dict[str, Any]:
    return {"status": status, **extra}


MIDSTREAM_ERROR = {"kind": "midstream_error", "after_chunks": 1}


SIM_TRIGGERS: dict[str, Trigger] = {
    "anthropic/message_200": Trigger(),
    "anthropic/message_200_ratelimit_headers": Trigger(headers_only=True),
    "anthropic/stream_200": Trigger(stream=True),
    "anthropic/error_400_invalid_request_error": Trigger(extra={"temperature": 0.5}),
    "anthropic/error_401_authentication_error": Trigger(key=BAD_KEY),
    "anthropic/error_403_permission_error": Trigger(fault=_fault(403)),
    "anthropic/error_404_not_found_error": Trigger(model=RETIRED_MODELS["anthropic"]),
    "anthropic/error_429_rate_limit_error": Trigger(fault=_fault(429, retry_after=7)),
    "anthropic/error_429_rate_limit_headers": Trigger(fault=_fault(429, retry_after=7), headers_only=True),
    "anthropic/error_500_api_error": Trigger(fault=_fault(500)),
    "anthropic/error_529_overloaded_error": Trigger(fault=_fault(529)),
    "anthropic/error_529_overloaded_headers": Trigger(fault=_fault(529), headers_only=True),
    "anthropic/stream_error_overloaded": Trigger(stream=True, fault=MIDSTREAM_ERROR),
    "anthropic/refusal_docs_partial": Trigger(prompt=REFUSE_PROMPT),
    "gemini/generate_content_200": Trigger(),
    "gemini/stream_200": Trigger(stream=True),
    "gemini/prompt_blocked_stream": Trigger(stream=True, prompt=REFUSE_PROMPT),
    "gemini/error_400_api_key_invalid": Trigger(key=BAD_KEY),
    "gemini/error_403_permission_denied": Trigger(key=None),
    "gemini/error_404_not_found": Trigger(model=RETIRED_MODELS["gemini"]),
    "gemini/error_429_resource_exhausted": Trigger(fault=_fault(429, retry_after=26)),
    "gemini/error_500_internal": Trigger(fault=_fault(500)),
    "gemini/error_503_unavailable": Trigger(fault=_fault(503)),
    "gemini/error_400_invalid_argument": Trigger(drop_contents=True),
    "openai/chat_completion_200": Trigger(),
    "openai/chat_completion_200_headers": Trigger(headers_only=True),
    "openai/chat_completion_refusal_200": Trigger(prompt=REFUSE_PROMPT),
    "openai/ratelimit_headers_docs": Trigger(headers_only=True),
    "openai/error_401_invalid_api_key": Trigger(key=BAD_KEY),
    "openai/error_404_model_not_found": Trigger(model=RETIRED_MODELS["openai"]),
    "openai/error_429_rate_limit_requests": Trigger(limits={"rpm": 1}, requests=2),
    "openai/error_429_rate_limit_tokens": Trigger(limits={"tpm": 1}),
    "openai/error_429_insufficient_quota": Trigger(fault=_fault(429, code="insufficient_quota")),
    "openai/error_500_server_error": Trigger(fault=_fault(500)),
}


def _request(sim, provider: str, trig: Trigger) -> tuple[str, dict[str, str], dict[str, Any]]:
    model = trig.model or MODELS[provider]
    base = sim.base_url(provider)
    if provider == "anthropic":
        body = {
            "model": model,
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": trig.prompt}],
            **({"stream": True} if trig.stream else {}),
            **trig.extra,
        }
        headers = {"anthropic-version": ANTHROPIC_VERSION, **({"x-api-key": trig.key} if trig.key else {})}
        return f"{base}/v1/messages", headers, body
    if provider == "openai":
        body = {
            "model": model,
            "messages": [{"role": "user", "content": trig.prompt}],
            **({"stream": True} if trig.stream else {}),
            **trig.extra,
        }
        return f"{base}/chat/completions", ({"authorization": f"Bearer {trig.key}"} if trig.key else {}), body
    method = "streamGenerateContent?alt=sse" if trig.stream else "generateContent"
    body = {} if trig.drop_contents else {"contents": [{"role": "user", "parts": [{"text": trig.prompt}]}]}
    return (
        f"{base}/v1beta/models/{model}:{method}",
        ({"x-goog-api-key": trig.key} if trig.key else {}),
        {**body, **trig.extra},
    )


def ask_simulator(sim, provider: str, trig: Trigger) -> httpx.Response:
    if trig.fault is not None:
        sim.add_fault(provider=provider, **trig.fault)
    if trig.limits is not None:
        sim.set_limits(provider, **trig.limits)
    url, headers, body = _request(sim, provider, trig)
    with httpx.Client(timeout=10) as client:
        responses = [client.post(url, headers=headers, json=body) for _ in range(trig.requests)]
    return responses[-1]


@pytest.mark.parametrize("case", sorted(SIM_TRIGGERS))
def test_simulator_answers_like_the_golden_body(sim, case: str) -> None:
    provider, golden, trig = case.split("/")[0], load(case), SIM_TRIGGERS[case]
    response = ask_simulator(sim, provider, trig)
    diffs = []
    if response.status_code != golden["status"]:
        diffs.append(f"status: golden {golden['status']}, simulator {response.status_code}")
    diffs += header_diff(golden.get("headers", {}), response.headers)
    subset = golden.get("compare") == "subset"  # an older or partial capture: only its keys are required
    if not trig.headers_only:
        if "events" in golden:
            actual = parse_sse(response.text)
            if any(e["event"] == "error" for e in golden["events"]):
                actual = [e for e in actual if e["event"] == "error"]
            diffs += events_diff(golden["events"], actual, subset)
        else:
            diffs += body_diff(golden["body"], response.json(), "body", subset=subset)
    if golden["status"] >= 400 and golden.get("body") is not None and response.status_code >= 400:
        url = str(response.request.url)
        want = error_facts(
            sdk_error(provider, sdk_response(golden["status"], {}, json.dumps(golden["body"]).encode(), url))
        )
        got = error_facts(
            sdk_error(provider, sdk_response(response.status_code, dict(response.headers), response.content, url))
        )
        if want != got:
            diffs.append(f"SDK error: golden {want}, simulator {got}")
    assert not diffs, f"{case}: simulator differs from the golden body:\n  " + "\n  ".join(diffs)


def test_every_simulator_trigger_names_a_golden_file() -> None:
    assert set(SIM_TRIGGERS) <= set(CASES)
