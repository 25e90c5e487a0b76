"""A local, wire-true simulator of the OpenAI, Anthropic and Gemini HTTP APIs.

The official SDKs run unmodified against it (give them ``Simulator.base_url(provider)``).
Answers are deterministic; faults, limits and latency are set over ``/_sim/*``.
"""

from llm_orchestrator.simulator.server import Simulator, run

__all__ = ["Simulator", "run"]
