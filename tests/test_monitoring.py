"""The monitoring an operator deploys: Prometheus rules (checked and unit-tested by promtool), the
example scrape config and the Grafana dashboard.

promtool comes from Debian's ``prometheus`` package (``scripts/ensure-promtool``, run by
``make deps``); the tests that need it skip, saying so, where it is missing. That every metric these
files name is really served by a worker is checked in ``tests/test_metrics_default.py`` (it needs a
running worker), with :func:`referenced_metric_names` from here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_FILES = (PROMETHEUS / "recording.yml", PROMETHEUS / "alerts.yml")
RULES_TEST = PROMETHEUS / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "llm-orchestrator.json"
WORKER_JOB = "llm-orchestrator-worker"
GRID_WIDTH = 24  # Grafana's dashboard grid has 24 columns
# Grafana's own variables, and ours, replaced by something Prometheus accepts for a syntax check.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$provider": ".*", "$model": ".*"}
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (scripts/ensure-promtool installs Debian's prometheus package, which has it)",
)

# A series name in PromQL; a recorded one holds colons (level:metric:operation).
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=PROMETHEUS)


# -- what the files hold ------------------------------------------------------------------------


def rules() -> list[dict[str, Any]]:
    """Every rule (recording and alerting) of recording.yml and alerts.yml."""
    return [
        rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]
    ]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_targets() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables) of every panel target."""
    return [(panel["title"], target["expr"]) for panel in dashboard()["panels"] for target in panel["targets"]]


def dashboard_variable_queries() -> list[str]:
    """The template variables' queries (Grafana's ``label_values(...)``, not PromQL)."""
    return [v["definition"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]


def as_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def series_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names ``llm_orch_*`` as written, recorded names ``x:llm_orch_*:y``) in ``expr``.

    Quoted label values are dropped first. A name is taken whole, so ``…_bucket``, ``…_count`` and
    ``…_total`` stay as written and are compared with the sample names a worker serves.
    """
    words = _IDENTIFIER.findall(_STRING.sub('""', expr))
    plain = {w for w in words if w.startswith("llm_orch_")}
    recorded = {w for w in words if ":" in w and "llm_orch_" in w}
    return plain, recorded


def referenced_metric_names() -> set[str]:
    """Every ``llm_orch_*`` sample name the rules and the dashboard (its variables too) read."""
    exprs = [rule["expr"] for rule in rules()] + [e for _, e in dashboard_targets()] + dashboard_variable_queries()
    return set().union(*(series_names(e)[0] for e in exprs))


def alert_names() -> list[str]:
    return [rule["alert"] for rule in rules() if "alert" in rule]


# -- Prometheus rules -----------------------------------------------------------------------------


@needs_promtool
def test_rule_files_pass_promtool_check():
    done = promtool("check", "rules", *RULE_FILES)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_alert_unit_tests_pass():
    done = promtool("test", "rules", RULES_TEST)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


@needs_promtool
def test_example_prometheus_config_loads_both_rule_files():
    done = promtool("check", "config", PROMETHEUS / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == [p.name for p in RULE_FILES]
    assert [job["job_name"] for job in config["scrape_configs"]] == [WORKER_JOB]


def test_every_alert_is_tested_firing_and_not_firing():
    cases = [case for test in yaml.safe_load(RULES_TEST.read_text())["tests"] for case in test["alert_rule_test"]]
    for name in alert_names():
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name} is never shown firing"
        assert any(not case["exp_alerts"] for case in mine), f"{name} is never shown quiet"
    assert {case["alertname"] for case in cases} == set(alert_names())


def test_alerts_cover_what_operators_asked_for():
    by_name = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    assert set(by_name) == {
        "LLMOrchHighErrorRate",
        "LLMOrchHighLatencyP99",
        "LLMOrchBreakerOpen",
        "LLMOrchTenantBudgetWarning",
        "LLMOrchTenantBudgetExhausted",
        "LLMOrchManyRetries",
        "LLMOrchErrorTypeSpike",
        "LLMOrchQueueBacklogGrowing",
        "LLMOrchWorkerDown",
        "LLMOrchWorkerMetricsAbsent",
    }
    assert re.search(r"\)\s*> 0\.05\s", by_name["LLMOrchHighErrorRate"]["expr"])  # the seeds' thresholds
    assert re.search(r"histogram_quantile\(0\.99, .*\) > 10\s", by_name["LLMOrchHighLatencyP99"]["expr"])
    assert f'up{{job="{WORKER_JOB}"}}' in by_name["LLMOrchWorkerDown"]["expr"]
    for rule in by_name.values():
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_latency_quantiles_are_recorded():
    recorded = {rule["record"]: rule["expr"] for rule in rules() if "record" in rule}
    for q in ("50", "95", "99"):
        expr = recorded[f"provider_model:llm_orch_request_latency_seconds:p{q}_5m"]
        assert expr.startswith(f"histogram_quantile(0.{q},") and 'outcome="ok"' in expr


def test_recorded_series_read_anywhere_are_defined():
    defined = {rule["record"] for rule in rules() if "record" in rule}
    exprs = [rule["expr"] for rule in rules()] + [expr for _, expr in dashboard_targets()]
    used = set().union(*(series_names(e)[1] for e in exprs))
    assert used <= defined


def test_names_are_read_whole_from_expressions():
    plain, recorded = series_names(
        'sum(rate(llm_orch_request_latency_seconds_bucket{model=~"llm_orch_not_a_metric"}[5m]))'
        " / provider_model:llm_orch_requests:rate5m and on (instance) llm_orch_requests_total"
    )
    assert plain == {"llm_orch_request_latency_seconds_bucket", "llm_orch_requests_total"}
    assert recorded == {"provider_model:llm_orch_requests:rate5m"}


# -- Grafana dashboard ----------------------------------------------------------------------------


def test_dashboard_is_a_grafana_dashboard_model():
    dash = dashboard()
    assert {"title", "uid", "schemaVersion", "panels", "templating", "time"} <= set(dash)
    assert isinstance(dash["schemaVersion"], int) and dash["uid"] == "llm-orchestrator"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dash["panels"]:
        assert panel["type"] in ("timeseries", "stat", "bargauge", "state-timeline") and panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("x", "y", "w", "h")) and grid["x"] + grid["w"] <= GRID_WIDTH
        mine = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids and len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"] == panel["datasource"]
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval", "__interval", "__range"}
            assert used <= set(variables), f"{panel['title']}: unknown variable in {target['expr']}"


def test_dashboard_shows_what_operators_asked_for():
    by_title = dict(dashboard_targets())
    exprs = " ".join(by_title.values())
    assert "llm_orch_requests_total" in by_title["Provider calls by outcome"]
    assert "by (error_type)" in by_title["Errors by type"] and "llm_orch_errors_total" in by_title["Errors by type"]
    latency = [e for t, e in dashboard_targets() if t.startswith("Latency")]
    assert [e.split(",")[0] for e in latency] == [f"histogram_quantile({q}" for q in ("0.5", "0.95", "0.99")]
    assert "by (provider, model)" in by_title["Cost by model (USD per hour)"]
    assert "by (tenant)" in by_title["Cost by tenant in range (USD)"]
    assert 'kind="cached"' in by_title["Prompt-cache hit rate"]
    assert "llm_orch_breaker_state" in by_title["Circuit breaker state"]
    assert "llm_orch_queue_depth" in by_title["Queue depth"]
    assert "llm_orch_tenant_budget_used_ratio" in exprs


@needs_promtool
def test_dashboard_expressions_are_valid_promql(tmp_path):
    """promtool parses each panel's query, written as a recording rule."""
    targets = dashboard_targets()
    rules_file = tmp_path / "dashboard_rules.yml"
    rules_file.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "dashboard",
                        "rules": [
                            {"record": f"dashboard:query_{i}:check", "expr": as_promql(expr)}
                            for i, (_, expr) in enumerate(targets)
                        ],
                    }
                ]
            }
        )
    )
    done = promtool("check", "rules", rules_file)
    assert done.returncode == 0 and f"SUCCESS: {len(targets)} rules found" in done.stdout, done.stdout + done.stderr


# -- scripts/ensure-promtool --------------------------------------------------------------------------


def test_ensure_promtool_says_why_and_succeeds_when_it_cannot_install(tmp_path):
    script = ROOT / "scripts" / "ensure-promtool"
    assert script.stat().st_mode & 0o111  # executable, as `make deps` runs it
    done = subprocess.run(
        ["/bin/bash", str(script)], env={"PATH": str(tmp_path)}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "rule tests will be skipped" in done.stderr


@needs_promtool
def test_ensure_promtool_is_quiet_when_promtool_is_there():
    done = subprocess.run([str(ROOT / "scripts" / "ensure-promtool")], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
