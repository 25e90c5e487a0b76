"""``Simulator``: the app on a real port, in a background thread or in the foreground."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from typing import Any

import uvicorn

from llm_orchestrator.simulator.app import create_app

BASE_PATHS = {"openai": "/openai/v1", "anthropic": "/anthropic", "gemini": "/gemini"}
START_TIMEOUT_SECONDS = 10.0
ANNOUNCE_POLL_SECONDS = 0.05


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Simulator:
    """The local provider simulator.

    Example:
        >>> with Simulator() as sim:
        ...     client = openai.OpenAI(base_url=sim.base_url("openai"), api_key="k", max_retries=0)
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.app = create_app()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_url(self, provider: str) -> str:
        """The ``base_url`` to give that provider's SDK."""
        return self.url + BASE_PATHS[provider]

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Simulator:
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="llm-orch-simulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"simulator did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control plane (over HTTP, so it works the same for a simulator in another process) --

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            self.url + path,
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback only
            return json.loads(resp.read() or b"{}")

    def add_fault(
        self,
        provider: str = "*",
        model: str = "*",
        kind: str = "status",
        status: int = 503,
        probability: float = 1.0,
        count: int | None = None,
        retry_after: float | None = None,
        retry_after_ms: int | None = None,
        code: str | None = None,
        after_chunks: int | None = None,
    ) -> None:
        """Add a fault rule (see README: simulator control API)."""
        self._control(
            "POST",
            "/_sim/faults",
            {
                "provider": provider,
                "model": model,
                "kind": kind,
                "status": status,
                "probability": probability,
                "count": count,
                "retry_after": retry_after,
                "retry_after_ms": retry_after_ms,
                "code": code,
                "after_chunks": after_chunks,
            },
        )

    def clear_faults(self) -> None:
        self._control("DELETE", "/_sim/faults")

    def set_models(
        self, provider: str, add: tuple[str, ...] | list[str] = (), remove: tuple[str, ...] | list[str] = ()
    ) -> list[str]:
        return self._control("POST", "/_sim/models", {"provider": provider, "add": list(add), "remove": list(remove)})[
            "models"
        ]

    def set_limits(self, provider: str, rpm: int | None = None, tpm: int | None = None) -> None:
        self._control("POST", "/_sim/limits", {"provider": provider, "rpm": rpm, "tpm": tpm})

    def set_latency(self, provider: str = "*", ms: float = 0) -> None:
        self._control("POST", "/_sim/latency", {"provider": provider, "ms": ms})

    def set_batch_delay(self, ms: float) -> None:
        """How long a new batch job stays in progress before its items run (default 200 ms)."""
        self._control("POST", "/_sim/batch", {"delay_ms": ms})

    def stats(self) -> dict[str, Any]:
        return self._control("GET", "/_sim/stats")

    def reset_stats(self) -> None:
        self._control("DELETE", "/_sim/stats")

    def reset(self) -> None:
        self._control("POST", "/_sim/reset")

    def count(
        self,
        provider: str | None = None,
        model: str | None = None,
        status: int | str | None = None,
        batch: bool | None = None,
    ) -> int:
        """How many provider requests the simulator saw matching the filters.

        ``batch=True`` counts only items of batch jobs, ``False`` only live calls, ``None`` both.
        """
        return sum(
            r["count"]
            for r in self.stats()["requests"]
            if (provider is None or r["provider"] == provider)
            and (model is None or r["model"] == model)
            and (status is None or r["status"] == status)
            and (batch is None or r["batch"] == batch)
        )


def run(host: str = "127.0.0.1", port: int = 8900) -> None:
    """Serve in the foreground until interrupted (``llm-orch simulate``).

    Prints each provider's base URL (flushed) once the port is listening.
    """
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    )
    threading.Thread(
        target=_announce, args=(server, f"http://{host}:{port}"), name="llm-orch-simulator-announce", daemon=True
    ).start()
    server.run()


def _announce(server: uvicorn.Server, url: str) -> None:
    """Print the base URLs once ``server`` is listening (never, if it fails to start)."""
    while not server.started:
        if server.should_exit:
            return
        time.sleep(ANNOUNCE_POLL_SECONDS)
    names = {"openai": "OpenAI", "anthropic": "Anthropic", "gemini": "Gemini"}
    lines = [f"{names[p]:<9} {url}{path}" for p, path in BASE_PATHS.items()]
    print(f"provider simulator listening on {url}", *lines, "(Ctrl-C to stop)", sep="\n", flush=True)
