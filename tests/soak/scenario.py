"""The soak's job mix and the thread that enqueues it through the producer API."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

PROVIDERS = ("openai", "anthropic", "gemini")
CLASSIFY_TEXTS = [
    "The app crashes every time I open settings",
    "hmm, interesting week",
    "We would like to add 200 more seats next quarter",
    "Please add dark mode to the dashboard",
    "not sure what to make of the new release",
    "Your pricing is too expensive, we are leaving",
]
COMPLETE_SHARE, STREAM_SHARE = 0.45, 0.20  # the rest (~35 %) are classifications
DROP_AT_SHARE = 0.4  # the job whose message is dropped on purpose: this far into the plan
SEND_RETRY_SECONDS = 0.5  # wait between two tries of a send that met Redis away


@dataclass
class Job:
    id: str
    kind: str  # complete | stream | classify
    provider: str | None


def plan(n: int, seed: int) -> list[tuple[str, str, str]]:
    """(kind, provider, text) per job: ~45 % completions, ~20 % streaming completions, ~35 % classifications."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        roll, provider = rng.random(), PROVIDERS[i % len(PROVIDERS)]
        if roll < COMPLETE_SHARE:
            out.append(("complete", provider, f"soak question {i}"))
        elif roll < COMPLETE_SHARE + STREAM_SHARE:
            out.append(("stream", provider, f"soak stream {i}"))
        else:
            out.append(("classify", provider, f"{CLASSIFY_TEXTS[i % len(CLASSIFY_TEXTS)]} (#{i})"))
    return out


def describe(planned: list[tuple[str, str, str]]) -> str:
    """``classify=70, complete=90, stream=40``."""
    return ", ".join(f"{k}={v}" for k, v in sorted(Counter(p[0] for p in planned).items()))


class Enqueuer(threading.Thread):
    """Sends the planned jobs through the producer API at ``rate`` jobs/s, riding out Redis outages.

    A send that fails (Redis away) is retried with the same idempotency key, so a retry can never
    become a second job. Job ``drop_at`` is recorded in the outbox but its message is never sent:
    what the broker does when Redis stops right after a worker's BRPOP (the sweeper must find it).
    """

    def __init__(
        self, producer: Any, planned: list[tuple[str, str, str]], rate: float, run_id: str, drop: bool = True
    ) -> None:
        super().__init__(name="soak-enqueuer", daemon=True)
        self.producer, self.planned, self.rate, self.run_id = producer, planned, rate, run_id
        self.jobs: list[Job] = []
        # No drop on RabbitMQ (drop=False): a publish is confirmed or raises there, and the sweeper re-sends nothing.
        self.drop_at = int(len(planned) * DROP_AT_SHARE) if drop else -1
        self.dropped_on_purpose: str | None = None
        self.retries = 0
        self.errors: Counter[str] = Counter()

    def run(self) -> None:
        t0 = time.monotonic()
        for i, (kind, provider, text) in enumerate(self.planned):
            delay = t0 + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            while True:
                try:
                    self.jobs.append(Job(self._send(i, kind, provider, text).id, kind, provider))
                    if i == self.drop_at:
                        self.dropped_on_purpose = self.jobs[-1].id
                    break
                except Exception as e:
                    self.retries += 1
                    self.errors[type(e).__name__] += 1
                    time.sleep(SEND_RETRY_SECONDS)

    def _send(self, i: int, kind: str, provider: str, text: str) -> Any:
        if i == self.drop_at:
            real, self.producer.publish = self.producer.publish, lambda *_: None
            try:
                return self._submit(i, kind, provider, text)
            finally:
                self.producer.publish = real
        return self._submit(i, kind, provider, text)

    def _submit(self, i: int, kind: str, provider: str, text: str) -> Any:
        key = f"{self.run_id}-{i}"
        if kind == "classify":
            return self.producer.submit_classification(
                text, signal_id=f"s-{i}", provider=provider, tenant="soak", idempotency_key=key
            )
        return self.producer.submit_completion(
            text, provider=provider, tenant="soak", max_tokens=64, stream=kind == "stream", idempotency_key=key
        )
