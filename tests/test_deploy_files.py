"""Deploy files can't run here (no Docker engine): check their structure instead."""

from __future__ import annotations

import importlib

import tomllib
import yaml

from tests.conftest import ROOT


def _entry_ok(command: list[str]) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    if command[0] == "celery":
        assert command[1] == "-A"
        importlib.import_module(command[2])  # worker.app must import
    elif command[0] in scripts:
        module, func = scripts[command[0]].split(":")
        assert hasattr(importlib.import_module(module), func)
    else:
        raise AssertionError(f"unknown entry point {command[0]}")


def test_compose_services_name_real_entry_points():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "worker-interactive", "worker-batch", "beat", "flower"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]
    for name, svc in services.items():
        if name not in ("redis", "rabbitmq"):  # images of their own, no project command
            _entry_ok(svc["command"])
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    assert (
        services["rabbitmq"]["profiles"] == ["rabbitmq"]
        and "RABBITMQ_DEFAULT_PASS" in services["rabbitmq"]["environment"]
    )
    assert "CELERY_BROKER_URL" in services["flower"]["environment"]  # the flower block replaces x-app's environment
    assert sum(1 for svc in services.values() if "beat" in svc.get("command", [])) == 1  # exactly one beat


def test_procfile_entries_and_flower_auth():
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines() if line and not line.startswith("#")]
    kinds = {line.split(":", 1)[0] for line in lines}
    assert {"interactive", "batch", "beat", "flower"} <= kinds
    for line in lines:
        _entry_ok(line.split(":", 1)[1].split())
    flower = next(line for line in lines if line.startswith("flower:"))
    assert "llm-orch flower" in flower  # the wrapper refuses to start without credentials


def test_dockerfile_runs_as_non_root():
    text = (ROOT / "Dockerfile").read_text()
    assert "USER llmorch" in text and "FROM python:3.11-slim" in text
