"""`make demo`: the main job end to end, on this machine, with no API keys.

1. Starts the local provider simulator (it speaks each provider's real wire format, so the
   official SDKs run unmodified against it).
2. Sends a plain and a streaming request through each provider's adapter and prints a table.
3. Uses Redis (REDIS_URL, else a redis-server it starts),
   starts a real Celery worker, enqueues a mixed batch of completions and signal
   classifications (`llm.classify_batch` jobs: many signals per job, 10 per model call) through
   the producer API, prints results, cost per job and the rollup.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from llm_orchestrator import ConfigManager, LLMOrchestrator  # noqa: E402
from llm_orchestrator.simulator import Simulator  # noqa: E402

MODELS = {"openai": "gpt-6-luna", "anthropic": "claude-haiku-5-5", "gemini": "gemini-3.5-flash-lite"}
PROMPT = "In one sentence: why do retries need jitter?"
console = Console(width=int(os.environ.get("COLUMNS", 120)))


def library_tour(sim: Simulator) -> None:
    """One plain and one streaming request per provider, straight through the library."""
    table = Table(
        "provider",
        "mode",
        "model",
        "prompt tok",
        "completion tok",
        "latency ms",
        "finish",
        "cost USD",
        title="Library: one request per provider (official SDK → simulator)",
    )
    os.environ["LLM_ORCH_SIM_URL"] = sim.url
    for provider, model in MODELS.items():
        env = {**os.environ, "LLM_ORCH_PROVIDER": provider, "LLM_ORCH_MODEL": model}
        config = ConfigManager.load(ROOT / "config" / "demo.yaml", env=env).config
        config = config.model_copy(update={"redis": config.redis.model_copy(update={"url": None})})
        orch = LLMOrchestrator(config)
        plain = orch.send_request(PROMPT, system="Be brief.", max_tokens=128)
        chunks = list(orch.send_streaming_request(PROMPT, system="Be brief.", max_tokens=128))
        streamed = chunks[-1].response
        if streamed is None or "".join(c.text for c in chunks) != plain.content:
            raise SystemExit(f"{provider}: the streamed answer differs from the plain one")
        for mode, r in (("plain", plain), ("stream", streamed)):
            table.add_row(
                provider,
                mode,
                r.model,
                str(r.prompt_tokens),
                str(r.completion_tokens),
                f"{r.latency_ms:.1f}",
                r.finish_reason,
                str(r.cost_usd),
            )
        orch.close()
    console.print(table)


def main() -> int:
    with Simulator() as sim:
        console.print(f"[bold]Simulator[/bold] on {sim.url}")
        library_tour(sim)
        from scripts.demo_worker import worker_tour

        return worker_tour(sim, console)


if __name__ == "__main__":
    sys.exit(main())
