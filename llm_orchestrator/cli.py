"""``llm-orch``: the command line.

Subcommands: ``simulate``, ``models refresh|list``, ``costs export|rollup|report``, ``stats``,
``classify``, ``flower``. Every command takes ``--config PATH`` (default ``$LLM_ORCH_CONFIG``,
then ``config/config.yaml``). Heavy imports happen inside each command, not at start.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone

from llm_orchestrator.exceptions import ConfigError, LLMOrchestratorError


def _console():  # noqa: ANN202 - rich is imported only when a table is printed
    """A console that prints whole tables when output is piped (no 80-column truncation)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200)


def _orchestrator(args: argparse.Namespace):  # noqa: ANN202 - avoid importing at start
    from llm_orchestrator.orchestrator import LLMOrchestrator

    return LLMOrchestrator.from_yaml(args.config)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run the provider simulator in the foreground."""
    from llm_orchestrator.simulator import run

    run(host=args.host, port=args.port)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Refresh or list the model registry."""
    orch = _orchestrator(args)
    if args.action == "refresh":
        found = orch.registry.refresh_models(args.provider)
        for provider, models in found.items():
            print(f"{provider}: {len(models)} models")
        return 0
    models = orch.registry.list_models(args.provider, include_deprecated=args.include_deprecated)
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=2))
        return 0
    from rich.table import Table

    table = Table("provider", "model", "deprecated", "discovered_at", "last_seen_at")
    for m in models:
        table.add_row(m.provider, m.id, "yes" if m.deprecated else "", _iso(m.discovered_at), _iso(m.last_seen_at))
    _console().print(table)
    if not models:
        print("no models cached; run `llm-orch models refresh` first", file=sys.stderr)
    return 0


def cmd_costs(args: argparse.Namespace) -> int:
    """Export the ledger to CSV, roll up a day, or print the daily rollup."""
    orch = _orchestrator(args)
    tracker = orch.cost_tracker
    if tracker is None:
        print("cost tracking is disabled in the config", file=sys.stderr)
        return 1
    if args.action == "export":
        n = tracker.export_csv(args.output, since=_parse_time(args.since), until=_parse_time(args.until))
        print(f"wrote {n} rows to {args.output}")
        return 0
    day = date.fromisoformat(args.date) if args.date else (datetime.now(timezone.utc) - timedelta(days=1)).date()
    rows = tracker.rollup(day)
    if args.action == "rollup" or args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.table import Table

    table = Table("date", "tenant", "provider", "model", "requests", "prompt", "completion", "cached", "cost_usd")
    for r in rows:
        table.add_row(r["date"], r.get("tenant") or "", r["provider"], r["model"], str(r["requests"]),
                      str(r["prompt_tokens"]), str(r["completion_tokens"]), str(r["cached_tokens"]), r["cost_usd"])
    _console().print(table)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    """Latency percentiles, costs, cache hit rate, errors, fallbacks and breaker opens over a window."""
    import redis

    from llm_orchestrator.config.manager import ConfigManager
    from llm_orchestrator.observability.stats import build_report, print_report

    config = ConfigManager.load(args.config).config
    if not config.redis.url:
        print("stats are read from Redis: set redis.url in the config", file=sys.stderr)
        return 1
    client = redis.Redis.from_url(config.redis.url, socket_connect_timeout=5, socket_timeout=30)
    report = build_report(client, config.redis.key_prefix, args.since)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report, _console())
    return 0


def _window(text: str) -> int:
    from llm_orchestrator.observability.stats import parse_window

    try:
        return parse_window(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_classify(args: argparse.Namespace) -> int:
    """Classify a .jsonl/.csv file of signals and print a summary (and accuracy when labelled)."""
    from pathlib import Path

    from rich.progress import Progress
    from rich.table import Table

    from llm_orchestrator.classification.batch import classify_file, read_signals, runner_named

    source = Path(args.input)
    output = Path(args.output or source.with_name(source.stem + ".classified.jsonl"))
    total = sum(1 for _ in read_signals(source, args.text_column))
    runner = runner_named(args.via, _orchestrator(args))
    with Progress(console=_console(), transient=True) as progress:
        bar = progress.add_task(f"classifying ({args.via})", total=total)
        summary = classify_file(runner, source, output, args.text_column,
                                on_rows=lambda n: progress.advance(bar, n))
    console = _console()
    console.print(f"{summary.rows} classified, {summary.skipped} already in {output}", soft_wrap=True)
    table = Table("category", "signals")
    for category, n in sorted(summary.categories.items()):
        table.add_row(category, str(n))
    console.print(table)
    per_1k = summary.cost / summary.rows * 1000 if summary.rows else 0
    hit = summary.cached_tokens / summary.prompt_tokens if summary.prompt_tokens else 0
    stages = ", ".join(f"{k} {v}" for k, v in sorted(summary.stages.items()))
    console.print(f"stages: {stages}; cost ${summary.cost} (${per_1k:.6f} per 1,000 signals"
                  f"{f'; {summary.unpriced} signals on unpriced models' if summary.unpriced else ''}); "
                  f"prompt cache hit rate {hit:.0%} of prompt tokens; {len(summary.latencies_ms)} model calls, "
                  f"latency p50 {summary.percentile(50) or 0:.1f} ms, p95 {summary.percentile(95) or 0:.1f} ms")
    if summary.accuracy is not None:
        console.print(f"accuracy {summary.accuracy:.1%} on {summary.labelled} labelled signals")
        labels = sorted({label for label, _ in summary.confusion} | set(summary.categories))
        matrix = Table("label \\ predicted", *labels, title="confusion matrix")
        for label in labels:
            matrix.add_row(label, *(str(summary.confusion[(label, p)] or "") for p in labels))
        console.print(matrix)
    return 0


def cmd_flower(args: argparse.Namespace) -> int:
    """Start Flower, refusing to do so without basic auth unless ``--insecure-local``."""
    import os
    import subprocess

    if not os.environ.get("FLOWER_BASIC_AUTH") and not args.insecure_local:
        print("refusing to start Flower without FLOWER_BASIC_AUTH=user:pass "
              "(use --insecure-local to bind 127.0.0.1 without auth)", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "celery", "-A", "worker.app", "flower", f"--port={args.port}", "--read_only=true"]
    cmd.append("--address=127.0.0.1" if args.insecure_local else f"--address={args.address}")
    return subprocess.call(cmd)


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="llm-orch", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="YAML config (default $LLM_ORCH_CONFIG, then config/config.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="run the local provider simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8900)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("models", help="model registry")
    p.add_argument("action", choices=["refresh", "list"])
    p.add_argument("--provider", default=None)
    p.add_argument("--include-deprecated", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("costs", help="cost ledger")
    p.add_argument("action", choices=["export", "rollup", "report"])
    p.add_argument("--output", default="costs-export.csv")
    p.add_argument("--since", default=None, help="ISO 8601 time (UTC if no zone)")
    p.add_argument("--until", default=None)
    p.add_argument("--date", default=None, help="YYYY-MM-DD (default: yesterday, UTC)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_costs)

    p = sub.add_parser("stats", help="latency, cost, cache hits, errors, fallbacks and breaker opens over a window")
    p.add_argument("--since", type=_window, default="24h", help="window: 1h, 24h, 7d (any N followed by s/m/h/d)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("classify", help="classify a .jsonl/.csv file of product signals")
    p.add_argument("input")
    p.add_argument("--output", default=None, help="JSONL results (default INPUT.classified.jsonl); resumable")
    p.add_argument("--via", choices=["local", "worker"], default="local")
    p.add_argument("--text-column", default="text")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("flower", help="start Flower with basic auth")
    p.add_argument("--port", type=int, default=5555)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--insecure-local", action="store_true")
    p.set_defaults(func=cmd_flower)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llm-orch`` console script."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except LLMOrchestratorError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
