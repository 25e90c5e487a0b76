"""Bad input to the real ``llm-orch`` console script: one clear line, exit code != 0, no traceback,
nothing lost. Every test runs the CLI as a subprocess, the way a user does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import MODELS, PROVIDERS, ROOT, make_config
from tests.redis_server import RedisServer

LLM_ORCH = str(Path(sys.executable).parent / "llm-orch")
HEAVY_MODULES = ("openai", "anthropic", "google.genai", "celery", "redis")
LONG_SIGNAL_CHARS = 25_000


# -- helpers (imported by the other CLI test modules) ---------------------------------------------


def cli_env(**more: str) -> dict[str, str]:
    """The test environment without real provider keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "GEMINI_"))}
    env.update(more)
    return env


def interruptible_env() -> dict[str, str]:
    """:func:`cli_env` without coverage's subprocess hook, for a process the test sends SIGINT.

    coverage 7.17's tracer holds a plain lock while it records a line; a SIGINT landing inside that
    window raises KeyboardInterrupt with the lock held, and the next traced line waits on it forever
    (py-spy: the main thread in ``Collector.lock_data``). That hung 5 of 24 measured runs of the
    Ctrl-C test and none of 45 unmeasured ones: it is the measurement, not the CLI.
    """
    return {k: v for k, v in cli_env().items() if k != "COVERAGE_PROCESS_CONFIG"}


def llm_orch(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """``llm-orch ARGS`` in a subprocess; stdout and stderr captured as text."""
    return subprocess.run(
        [LLM_ORCH, *args], env=env or cli_env(), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit code != 0, no traceback, exactly one stderr line holding every needle; returns it."""
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def write_config(tmp_path: Path, sim: Any, name: str = "cli.yaml", **extra: Any) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(make_config(sim, "openai", **extra)))
    return str(path)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def neutral(i: int) -> str:
    """A signal no keyword rule decides, so it goes to a model."""
    return f"Observation {i}: noticed the sidebar layout shifted a little after the update"


# -- 1. long signals ------------------------------------------------------------------------------


def test_long_signal_is_truncated_and_flagged_never_rejected(sim, tmp_path):
    config = write_config(tmp_path, sim)
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "text": neutral(1)},
            {"id": "long", "text": "word " * (LONG_SIGNAL_CHARS // 5)},
            {"id": "b", "text": neutral(2)},
        ],
    )
    out = tmp_path / "out.jsonl"
    proc = llm_orch("--config", config, "classify", str(source), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in read_jsonl(out)}
    assert set(rows) == {"a", "long", "b"}
    assert rows["long"]["truncated"] and "truncated" in rows["long"]["flags"]
    assert not rows["a"]["truncated"]


# -- 2. duplicate ids, output == input ------------------------------------------------------------


def test_duplicate_ids_are_each_classified_reported_and_resumable(sim, tmp_path):
    config = write_config(tmp_path, sim)
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "x", "text": neutral(1)},
            {"id": "y", "text": neutral(2)},
            {"id": "x", "text": neutral(3)},
            {"id": "x", "text": neutral(4)},
        ],
    )
    out = tmp_path / "out.jsonl"
    proc = llm_orch("--config", config, "classify", str(source), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["x", "y", "x#2", "x#3"]
    assert [r.get("duplicate_of") for r in rows] == [None, None, "x", "x"]
    assert "2 duplicate ids" in proc.stdout + proc.stderr and "x#2" in proc.stdout + proc.stderr
    again = llm_orch("--config", config, "classify", str(source), "--output", str(out))
    assert again.returncode == 0, again.stderr
    assert len(read_jsonl(out)) == 4 and "4 already in" in again.stdout


@pytest.mark.parametrize("spelling", ["same", "relative", "symlink"])
def test_output_equal_to_input_is_refused(sim, tmp_path, spelling):
    config = write_config(tmp_path, sim)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": neutral(1)}])
    before = source.read_text()
    output = {"same": str(source), "relative": "./in.jsonl", "symlink": str(tmp_path / "link.jsonl")}[spelling]
    if spelling == "symlink":
        (tmp_path / "link.jsonl").symlink_to(source)
    proc = llm_orch("--config", config, "classify", str(source), "--output", output, cwd=tmp_path)
    assert_one_line_error(proc, "--output", "input")
    assert source.read_text() == before and sim.count() == 0


# -- 3. empty text --------------------------------------------------------------------------------


def test_empty_text_rows_are_skipped_with_a_reason_and_no_model_call(sim, tmp_path):
    config = write_config(tmp_path, sim)
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "e1", "text": ""},
            {"id": "e2", "text": "   \n\t "},
            {"id": "e3", "text": "\u200b\u200b"},
            {"id": "e4", "text": None},
        ],
    )
    out = tmp_path / "out.jsonl"
    proc = llm_orch("--config", config, "classify", str(source), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["e1", "e2", "e3", "e4"]
    for r in rows:
        assert r["skipped"] == "empty text" and r["category"] is None and r["cost_usd"] == "0"
    assert sim.count() == 0
    assert "4 skipped (empty text)" in proc.stdout


# -- 4. files -------------------------------------------------------------------------------------


def test_csv_with_invalid_utf8_names_the_line(sim, tmp_path):
    config = write_config(tmp_path, sim)
    source = tmp_path / "in.csv"
    source.write_bytes(b"id,text\n1,fine\n2,caf\xe9 latte\n3,also fine\n")
    proc = llm_orch("--config", config, "classify", str(source), "--output", str(tmp_path / "out.jsonl"))
    assert_one_line_error(proc, "in.csv", "line 3", "UTF-8")
    assert sim.count() == 0


def test_excel_csv_utf8_with_bom_just_works(sim, tmp_path):
    config = write_config(tmp_path, sim)
    source = tmp_path / "excel.csv"
    source.write_bytes('text,id,label\r\n"Please add dark mode",1,feature_request\r\n'.encode("utf-8-sig"))
    out = tmp_path / "out.jsonl"
    proc = llm_orch("--config", config, "classify", str(source), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    [row] = read_jsonl(out)
    assert row["id"] == "1" and row["label"] == "feature_request"


def test_jsonl_with_a_bad_line_names_the_line(sim, tmp_path):
    config = write_config(tmp_path, sim)
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "text": "ok"}\n\n{"id": "b", "text": "cut off\n')
    proc = llm_orch("--config", config, "classify", str(source), "--output", str(tmp_path / "out.jsonl"))
    assert_one_line_error(proc, "in.jsonl", "line 3")


def test_jsonl_with_invalid_utf8_names_the_line(sim, tmp_path):
    config = write_config(tmp_path, sim)
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "caf\xe9"}\n')
    proc = llm_orch("--config", config, "classify", str(source), "--output", str(tmp_path / "out.jsonl"))
    assert_one_line_error(proc, "in.jsonl", "line 2", "UTF-8")


def test_resume_drops_a_partial_last_line_and_redoes_that_signal(sim, tmp_path):
    config = write_config(tmp_path, sim)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": str(i), "text": neutral(i)} for i in range(1, 6)])
    out = tmp_path / "out.jsonl"
    assert llm_orch("--config", config, "classify", str(source), "--output", str(out)).returncode == 0
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])  # killed while writing line 4
    proc = llm_orch("--config", config, "classify", str(source), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "partial" in proc.stdout + proc.stderr
    rows = read_jsonl(out)
    assert sorted(r["id"] for r in rows) == ["1", "2", "3", "4", "5"]
    assert "3 already in" in proc.stdout


def test_missing_input_file_is_one_line(sim, tmp_path):
    config = write_config(tmp_path, sim)
    proc = llm_orch("--config", config, "classify", str(tmp_path / "nope.jsonl"))
    assert_one_line_error(proc, "nope.jsonl")


def test_missing_output_directory_is_one_line_before_any_model_call(sim, tmp_path):
    config = write_config(tmp_path, sim)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": neutral(1)}])
    proc = llm_orch("--config", config, "classify", str(source), "--output", str(tmp_path / "no" / "out.jsonl"))
    assert_one_line_error(proc, "out.jsonl", "does not exist")
    assert sim.count() == 0


@pytest.mark.parametrize(
    "args, needle",
    [
        (["costs", "report", "--date", "2026-13-45"], "--date"),
        (["costs", "rollup", "--date", "yesterday"], "--date"),
        (["costs", "export", "--since", "last week"], "--since"),
        (["costs", "export", "--until", "2026-02-30T00:00"], "--until"),
        (["stats", "--since", "forever"], "--since"),
    ],
)
def test_bad_dates_and_windows_are_one_line(sim, tmp_path, args, needle):
    config = write_config(tmp_path, sim)
    assert_one_line_error(llm_orch("--config", config, *args), needle)


def test_costs_export_to_a_missing_directory_is_one_line(sim, redis_url, redis_client, tmp_path):
    config = write_config(tmp_path, sim, redis={"url": redis_url})
    proc = llm_orch("--config", config, "costs", "export", "--output", str(tmp_path / "no" / "x.csv"))
    assert_one_line_error(proc, "x.csv")


def test_ctrl_c_flushes_what_is_done_and_the_same_command_resumes(sim, tmp_path):
    config = write_config(tmp_path, sim)
    n = 300
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": f"s{i}", "text": neutral(i)} for i in range(n)])
    out = tmp_path / "out.jsonl"
    sim.set_latency("*", 150)
    args = [LLM_ORCH, "--config", config, "classify", str(source), "--output", str(out)]
    proc = subprocess.Popen(
        args, env=interruptible_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 90
        while not (out.exists() and out.read_text().count("\n") > 0) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if line.strip()]
    done = read_jsonl(out)  # every line whole
    assert 0 < len(done) < n
    assert line == f"interrupted; {len(done)} done, resume with the same command"
    sim.set_latency("*", 0)
    again = llm_orch("--config", config, "classify", str(source), "--output", str(out))
    assert again.returncode == 0, again.stderr
    ids = [r["id"] for r in read_jsonl(out)]
    assert sorted(ids) == sorted(f"s{i}" for i in range(n))


# -- 5. Redis down --------------------------------------------------------------------------------


@pytest.fixture
def stopped_redis():
    """A real redis-server, started then stopped: its port refuses connections."""
    server = RedisServer().start()
    server.stop()
    yield server
    server.cleanup()


@pytest.mark.parametrize(
    "args",
    [
        ["stats"],
        ["costs", "export", "--output", "{tmp}/x.csv"],
        ["costs", "report"],
        ["classify", "{tmp}/in.jsonl", "--via", "worker"],
    ],
)
def test_redis_down_is_one_line_without_the_password(sim, tmp_path, stopped_redis, args):
    config = write_config(tmp_path, sim, redis={"url": f"redis://:s3cret-pw@127.0.0.1:{stopped_redis.port}/0"})
    write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": neutral(1)}])
    proc = llm_orch("--config", config, *(a.format(tmp=tmp_path) for a in args), timeout=60)
    line = assert_one_line_error(proc, f"Redis at redis://127.0.0.1:{stopped_redis.port} unreachable:")
    assert "s3cret" not in proc.stderr + proc.stdout and "s3cret" not in line
    assert sim.count() == 0


def test_stats_works_again_once_redis_is_back(sim, tmp_path, stopped_redis):
    config = write_config(tmp_path, sim, redis={"url": stopped_redis.url})
    assert_one_line_error(llm_orch("--config", config, "stats"), "unreachable")
    stopped_redis.start()
    proc = llm_orch("--config", config, "stats", "--json")
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)


# -- 6. start-up imports --------------------------------------------------------------------------


def test_help_imports_no_sdk_celery_or_redis():
    code = (
        "import sys\n"
        "from llm_orchestrator.cli import main\n"
        "for argv in (['--help'], ['classify', '--help'], ['costs', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "[]"
    for argv in (["--help"], ["classify", "--help"]):
        proc = llm_orch(*argv)
        assert proc.returncode == 0 and "usage: llm-orch" in proc.stdout


def test_an_orchestrator_imports_only_the_sdk_of_the_provider_it_calls(sim, tmp_path):
    """Every provider configured, OpenAI active: a request imports openai, not anthropic or google.genai
    (the Anthropic SDK alone took 2 s to import, paid by every CLI command)."""
    config = write_config(tmp_path, sim)
    code = (
        "import sys\n"
        "from llm_orchestrator import LLMOrchestrator\n"
        f"o = LLMOrchestrator.from_yaml({config!r})\n"
        "assert sorted(o.config.providers) == ['anthropic', 'gemini', 'openai'], o.config.providers\n"
        "assert o.send_request('hello', max_tokens=8).content\n"
        "print(sorted(m for m in ('openai', 'anthropic', 'google.genai') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["['openai']"]


def test_public_names_still_resolve_lazily():
    code = (
        "import sys, llm_orchestrator as m\n"
        "assert 'openai' not in sys.modules\n"
        "names = [getattr(m, n) for n in m.__all__]\n"
        "from llm_orchestrator import LLMOrchestrator, ConfigError\n"
        "assert LLMOrchestrator.__module__ == 'llm_orchestrator.orchestrator'\n"
        "assert set(m.__all__) <= set(dir(m))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


# -- 7. models for every configured provider ------------------------------------------------------


def test_models_refresh_and_list_cover_every_configured_provider(sim, redis_url, redis_client, tmp_path):
    config = write_config(tmp_path, sim, redis={"url": redis_url})
    proc = llm_orch("--config", config, "models", "refresh")
    assert proc.returncode == 0, proc.stderr
    for p in PROVIDERS:
        assert f"{p}: {len(MODELS[p])} models" in proc.stdout
    proc = llm_orch("--config", config, "models", "list", "--provider", "anthropic", "--json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(m["id"] for m in json.loads(proc.stdout)) == sorted(MODELS["anthropic"])
    proc = llm_orch("--config", config, "models", "refresh", "--provider", "gemini")
    assert proc.returncode == 0 and proc.stdout.strip() == f"gemini: {len(MODELS['gemini'])} models"


def test_models_for_an_unconfigured_provider_is_one_line(sim, redis_url, redis_client, tmp_path):
    cfg = make_config(sim, "openai", redis={"url": redis_url})
    del cfg["providers"]["anthropic"]
    path = tmp_path / "only.yaml"
    path.write_text(yaml.safe_dump(cfg))
    for action in ("refresh", "list"):
        assert_one_line_error(
            llm_orch("--config", str(path), "models", action, "--provider", "anthropic"), "anthropic", "not configured"
        )


def test_models_refresh_reports_a_failing_provider_and_still_refreshes_the_others(
    sim, redis_url, redis_client, tmp_path
):
    cfg = make_config(sim, "openai", redis={"url": redis_url})
    cfg["providers"]["anthropic"]["api_key"] = "sk-invalid-key"
    path = tmp_path / "bad-key.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = llm_orch("--config", str(path), "models", "refresh")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"openai: {len(MODELS['openai'])} models" in proc.stdout
    assert f"gemini: {len(MODELS['gemini'])} models" in proc.stdout
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("anthropic: ") and "AuthenticationError" in line and "sk-invalid" not in line


# -- 8. simulate says where it listens ------------------------------------------------------------


def read_until(proc: subprocess.Popen[bytes], needles: list[str], timeout: float) -> str:
    """What ``proc`` printed until every needle appeared (or ``timeout`` seconds passed)."""
    import selectors

    text, deadline = "", time.monotonic() + timeout
    fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while not all(n in text for n in needles) and time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                data = os.read(fd, 4096)
                if not data:
                    break
                text += data.decode(errors="replace")
    return text


def test_simulate_prints_the_three_base_urls_once_listening():
    import socket

    from tests.redis_server import free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    urls = [f"{base}/openai/v1", f"{base}/anthropic", f"{base}/gemini"]
    proc = subprocess.Popen(
        [LLM_ORCH, "simulate", "--port", str(port)],
        env=cli_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        text = read_until(proc, urls, timeout=30)
        for url in urls:
            assert url in text, text
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # listening by the time the URLs are printed
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def test_classify_via_worker_without_the_worker_extra_is_one_line(sim, redis_url, tmp_path):
    """The ``worker`` runner's entry point is installed with the project, Celery only with the extra."""
    shadow = tmp_path / "no_celery" / "celery"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'celery'\", name='celery')\n")
    signals = write_jsonl(tmp_path / "s.jsonl", [{"id": "1", "text": "The export crashes."}])
    env = cli_env(PYTHONPATH=f"{shadow.parent}{os.pathsep}{ROOT}")
    config = write_config(tmp_path, sim, redis={"url": redis_url})
    proc = llm_orch("--config", config, "classify", str(signals), "--via", "worker", env=env)
    assert_one_line_error(proc, "celery", "pip install -e '.[worker]'")
