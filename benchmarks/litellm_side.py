"""LiteLLM beside the raw OpenAI SDK, run in its own virtualenv (``make bench`` creates ``.venv-litellm``).

LiteLLM pins ``openai<3`` while this project uses openai 3.x, so it cannot share our venv. This
script imports nothing from the project: ``python benchmarks/litellm_side.py BASE_URL CALLS ROUNDS``
prints JSON with p50/p99 of the raw SDK (that venv's openai), ``litellm.completion`` and a LiteLLM
``Router`` against the same simulator, and the median over rounds of p50 / raw p50.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from importlib.metadata import version

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the price list at import (offline)
import litellm
import openai

PROMPT = "Why do retries need jitter?"


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main(base_url: str, calls: int, rounds: int) -> dict:
    messages = [{"role": "user", "content": PROMPT}]
    raw = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0, timeout=10)
    params = {"model": "openai/gpt-6-luna", "api_base": base_url, "api_key": "sk-bench"}
    router = litellm.Router(model_list=[{"model_name": "bench", "litellm_params": params}], num_retries=0)
    variants = {
        "raw SDK (LiteLLM's venv)": lambda: raw.chat.completions.create(
            model="gpt-6-luna", messages=messages, max_tokens=256
        ),
        "LiteLLM completion": lambda: litellm.completion(messages=messages, max_tokens=256, num_retries=0, **params),
        "LiteLLM Router": lambda: router.completion(model="bench", messages=messages, max_tokens=256),
    }
    for fn in variants.values():
        timed(fn, 20)
    samples = {k: [] for k in variants}
    ratios = {k: [] for k in variants}
    for _ in range(rounds):
        base = timed(variants["raw SDK (LiteLLM's venv)"], calls)
        samples["raw SDK (LiteLLM's venv)"] += base
        for name, fn in list(variants.items())[1:]:
            lib = timed(fn, calls)
            samples[name] += lib
            ratios[name].append(p(lib, 50) / p(base, 50))
    return {
        "versions": {"litellm": version("litellm"), "openai": version("openai")},
        **{
            k: {
                "p50_ms": round(p(v, 50), 3),
                "p99_ms": round(p(v, 99), 3),
                "ratio_p50": round(statistics.median(ratios[k]), 3) if ratios[k] else 1.0,
            }
            for k, v in samples.items()
        },
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
