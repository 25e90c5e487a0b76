"""``llm-orch``: the command line.

Subcommands: ``simulate``, ``models refresh|list``, ``costs export|rollup|report``, ``stats``,
``classify``, ``eval``, ``prefilter train``, ``flower``. Every command takes ``--config PATH``
(default ``$LLM_ORCH_CONFIG``, then ``config/config.yaml``). Heavy imports (SDKs, Celery, Redis,
rich) happen inside each command, not at start, so ``--help`` is instant.

A user error (bad config, bad input file, bad date, Redis unreachable, Ctrl-C) is one line on
stderr and an exit code != 0, never a traceback: 2 for bad input or config, 1 for a failure
while running, 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from rich.console import Console

    from llm_orchestrator.orchestrator import LLMOrchestrator
from urllib.parse import urlsplit

from llm_orchestrator.exceptions import ConfigError, LLMOrchestratorError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
DEFAULT_REDIS_PORT = 6379
DUPLICATES_SHOWN = 3  # renamed ids named in the summary
_URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]*@")


def _console() -> Console:
    """A console that prints whole tables when output is piped (no 80-column truncation)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200)


def _orchestrator(args: argparse.Namespace) -> LLMOrchestrator:
    from llm_orchestrator.orchestrator import LLMOrchestrator

    return LLMOrchestrator.from_yaml(args.config)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run the provider simulator in the foreground."""
    from llm_orchestrator.simulator import run

    run(host=args.host, port=args.port)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Refresh or list the model registry (every configured provider, or ``--provider``)."""
    orch = _orchestrator(args)
    registry = orch.registry
    if registry is None:  # only when a caller injected none; the CLI always builds one
        print("this orchestrator has no model registry", file=sys.stderr)
        return EXIT_FAILED
    if args.action == "refresh":
        names = [args.provider] if args.provider else list(registry.adapters)
        failed = 0
        for name in names:
            try:
                models = registry.refresh_models(name)[name]
            except ConfigError:
                raise
            except LLMOrchestratorError as e:  # one provider failing does not stop the others
                failed += 1
                print(f"{name}: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            print(f"{name}: {len(models)} models", flush=True)
        return EXIT_FAILED if failed else 0
    models = registry.list_models(args.provider, include_deprecated=args.include_deprecated)
    prices = _model_prices(orch, models)
    if args.json:
        print(json.dumps([{**m.to_dict(), **prices[(m.provider, m.id)]} for m in models], indent=2))
        return 0
    from rich.table import Table

    table = Table(
        "provider",
        "model",
        "$/1M in",
        "$/1M cached in",
        "$/1M out",
        "cost tier",
        "deprecated",
        "discovered_at",
        "last_seen_at",
    )
    for m in models:
        price = prices[(m.provider, m.id)]["price_per_1m"] or {}
        table.add_row(
            m.provider,
            m.id,
            price.get("input", "-"),
            price.get("cached_input", "-"),
            price.get("output", "-"),
            prices[(m.provider, m.id)]["cost_tier"] or "unpriced",
            "yes" if m.deprecated else "",
            _iso(m.discovered_at),
            _iso(m.last_seen_at),
        )
    _console().print(table)
    if not models:
        print("no models cached; run `llm-orch models refresh` first", file=sys.stderr)
    return 0


def _model_prices(orch: Any, models: list[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each listed model's list prices (USD per 1M tokens, as decimal strings) and cost tier, from the
    price table the ledger uses (a dated snapshot at its family's price); None for an unpriced model."""
    from llm_orchestrator.pricing import cost_tiers, load_prices, price_for

    prices = orch.cost_tracker.prices if orch.cost_tracker is not None else load_prices()
    tiers = cost_tiers(prices)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for m in models:
        price = price_for(prices, m.provider, m.id)
        out[(m.provider, m.id)] = {
            "price_per_1m": None
            if price is None
            else {
                "input": str(price.rates.input),
                "cached_input": str(price.rates.cached_input),
                "output": str(price.rates.output),
            },
            "cost_tier": None if price is None else tiers.get((price.provider, price.model)),
        }
    return out


def cmd_costs(args: argparse.Namespace) -> int:
    """Export the ledger to CSV, roll up a day, print the daily rollup, or replay the spool."""
    orch = _orchestrator(args)
    tracker = orch.cost_tracker
    if tracker is None:
        print("cost tracking is disabled in the config", file=sys.stderr)
        return EXIT_FAILED
    if args.action == "replay":
        if tracker.spool is None:
            print("nothing to replay: the config has no redis.url (the ledger is in memory)")
            return 0
        n = tracker.replay_spool()
        print(f"replayed {n} ledger rows from {tracker.spool.path}")
        return 0
    if args.action == "export":
        n = tracker.export_csv(args.output, since=args.since, until=args.until)
        print(f"wrote {n} rows to {args.output}")
        return 0
    day = args.date or (datetime.now(timezone.utc) - timedelta(days=1)).date()
    rows = tracker.rollup(day)
    if args.action == "rollup" or args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.table import Table

    table = Table("date", "tenant", "provider", "model", "requests", "prompt", "completion", "cached", "cost_usd")
    for r in rows:
        table.add_row(
            r["date"],
            r.get("tenant") or "",
            r["provider"],
            r["model"],
            str(r["requests"]),
            str(r["prompt_tokens"]),
            str(r["completion_tokens"]),
            str(r["cached_tokens"]),
            r["cost_usd"],
        )
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
        return EXIT_FAILED
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

    from llm_orchestrator.classification.batch import plan_file, run_plan, runner_named

    source = Path(args.input)
    output = Path(args.output or source.with_name(source.stem + ".classified.jsonl"))
    plan = plan_file(source, output, args.text_column)  # every input check before any model call
    console = _console()
    if plan.summary.partial_line_dropped:
        console.print(
            f"dropped a partial last line of {output} (a run stopped while writing); its signal is classified again",
            soft_wrap=True,
        )
    runner = runner_named(args.via, _orchestrator(args))
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task(f"classifying ({args.via})", total=len(plan.todo) + len(plan.empty))
        summary = run_plan(runner, plan, on_rows=lambda n: progress.advance(bar, n))
    _print_summary(console, summary, output)
    return 0


def _print_summary(console: Any, summary: Any, output: Any) -> None:
    from rich.table import Table

    console.print(
        f"{summary.rows} classified, {summary.skipped} already in {output}"
        f"{f', {summary.empty} skipped (empty text)' if summary.empty else ''}",
        soft_wrap=True,
    )
    if summary.duplicates:
        shown = ", ".join(f"{old} → {new}" for old, new in summary.duplicates[:DUPLICATES_SHOWN])
        n = len(summary.duplicates)
        more = f", … ({n - DUPLICATES_SHOWN} more)" if n > DUPLICATES_SHOWN else ""
        console.print(
            f"{n} duplicate id{'s' if n > 1 else ''} in the input, each row classified under a new id: {shown}{more}",
            soft_wrap=True,
        )
    table = Table("category", "signals")
    for category, n in sorted(summary.categories.items()):
        table.add_row(category, str(n))
    console.print(table)
    per_1k = summary.cost / summary.rows * 1000 if summary.rows else 0
    hit = summary.cached_tokens / summary.prompt_tokens if summary.prompt_tokens else 0
    stages = ", ".join(f"{k} {v}" for k, v in sorted(summary.stages.items()))
    console.print(
        f"stages: {stages}; cost ${summary.cost} (${per_1k:.6f} per 1,000 signals"
        f"{f'; {summary.unpriced} signals on unpriced models' if summary.unpriced else ''}); "
        f"prompt cache hit rate {hit:.0%} of prompt tokens; {len(summary.latencies_ms)} model calls, "
        f"latency p50 {summary.percentile(50) or 0:.1f} ms, p95 {summary.percentile(95) or 0:.1f} ms"
    )
    if summary.accuracy is not None:
        console.print(f"accuracy {summary.accuracy:.1%} on {summary.labelled} labelled signals")
        labels = sorted({label for label, _ in summary.confusion} | set(summary.categories))
        matrix = Table("label \\ predicted", *labels, title="confusion matrix")
        for label in labels:
            matrix.add_row(label, *(str(summary.confusion[(label, p)] or "") for p in labels))
        console.print(matrix)


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate the classifier on a labelled .jsonl/.csv file, one or more config variants side by side."""
    from functools import partial
    from pathlib import Path

    from rich.progress import Progress

    from llm_orchestrator.classification import evaluation, report_html
    from llm_orchestrator.classification.batch import check_output

    try:
        variants = [evaluation.parse_variant(v) for v in args.variant]
    except ValueError as e:
        return _fail(f"error: --variant {e}", EXIT_BAD_INPUT)
    variants = variants or [(Path(args.config).stem if args.config else "default", args.config)]
    names = [name for name, _ in variants]
    tolerance = evaluation.DEFAULT_TOLERANCE_PP if args.tolerance_pp is None else args.tolerance_pp
    if len(set(names)) < len(names) or not 0 <= tolerance <= 100:  # percentage points
        return _fail("error: variant names must differ and --tolerance-pp must be 0-100", EXIT_BAD_INPUT)
    source = Path(args.input)
    data = evaluation.read_labelled(source, args.text_column)  # every check before any model call
    for out in (args.json, args.predictions, args.report):
        if out:
            check_output(source, Path(out))
    classifiers = [(name, evaluation.classifier_for(path)) for name, path in variants]
    console = _console()
    evaluation.print_input(console, data, source)
    reports = []
    try:
        for name, classifier in classifiers:
            with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
                bar = progress.add_task(f"{name}: classifying", total=len(data.signals))
                reports.append(evaluation.evaluate(name, classifier, data, partial(progress.advance, bar)))
    finally:
        for _, classifier in classifiers:
            classifier.orch.close()
    ranked = evaluation.rank(reports, tolerance)
    evaluation.print_results(console, ranked, tolerance)
    if args.json:
        Path(args.json).write_text(json.dumps(evaluation.results_json(reports), indent=2) + "\n", encoding="utf-8")
    if args.predictions:
        evaluation.write_predictions(Path(args.predictions), reports)
    if args.report:
        report_html.write(Path(args.report), ranked, source=str(source), tolerance_pp=tolerance)
    written = [f for f in (args.json, args.predictions, args.report) if f]
    if written:
        console.print(f"wrote {', '.join(written)}", soft_wrap=True)
    return 0


def cmd_prefilter(args: argparse.Namespace) -> int:
    """Train the learned prefilter on labelled signals or high-confidence results; write JSON."""
    from pathlib import Path

    from llm_orchestrator.classification import prefilter
    from llm_orchestrator.classification.batch import check_output

    if args.target_precision is None:
        args.target_precision = prefilter.DEFAULT_TARGET_PRECISION
    if args.min_confidence is None:
        args.min_confidence = prefilter.DEFAULT_MIN_CONFIDENCE
    if not 0 < args.target_precision <= 1 or not 0 <= args.min_confidence <= 1:
        return _fail("error: --target-precision must be in (0, 1] and --min-confidence in [0, 1]", EXIT_BAD_INPUT)
    source, output = Path(args.input), Path(args.output)
    check_output(source, output)
    rows = prefilter.read_training_rows(
        source,
        min_confidence=args.min_confidence,
        signals=Path(args.signals) if args.signals else None,
        text_column=args.text_column,
    )
    try:
        model = prefilter.train(rows, target_precision=args.target_precision)
    except prefilter.PrefilterError as e:
        return _fail(f"error: {e}", EXIT_BAD_INPUT)
    model.save(output)
    t = model.training
    decides = (
        "never decides (target not reached)"
        if model.threshold >= prefilter.NEVER
        else f"decides at probability >= {model.threshold:.3f}"
    )
    print(
        f"wrote {output}: {t['rows']} rows ({t['source']}, {t['skipped_rows']} skipped), {len(model.terms)} terms; "
        f"{decides}; held out: {t['held_out_correct']}/{t['held_out_decided']} right, "
        f"coverage {t['held_out_coverage']:.1%}"
    )
    return 0


def cmd_flower(args: argparse.Namespace) -> int:
    """Start Flower in place of this process (``exec``: a supervisor's signals reach Flower
    itself, so stopping the wrapper never leaves Flower running). Refuses to start without
    basic auth unless ``--insecure-local``, and refuses credentials not in ``user:password`` form."""
    import os

    auth = os.environ.get("FLOWER_BASIC_AUTH")
    if not auth and not args.insecure_local:
        print(
            "refusing to start Flower without FLOWER_BASIC_AUTH=user:pass "
            "(use --insecure-local to bind 127.0.0.1 without auth)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if auth and not _basic_auth_ok(auth):
        print(
            "refusing to start Flower: FLOWER_BASIC_AUTH must be user:password (several: "
            "user1:password1,user2:password2), each with a non-empty user and password",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    cmd = [sys.executable, "-m", "celery", "-A", "worker.app", "flower", f"--port={args.port}", "--read_only=true"]
    cmd.append("--address=127.0.0.1" if args.insecure_local else f"--address={args.address}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, cmd)  # noqa: S606 - this interpreter, fixed arguments, no shell
    return 0  # pragma: no cover - execv does not return


def _basic_auth_ok(value: str) -> bool:
    """``user:password`` pairs separated by commas, each with a non-empty user and password."""
    for pair in value.split(","):
        user, colon, password = pair.partition(":")
        if not (colon and user.strip() and password):
            return False
    return True


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def _instant(value: str) -> datetime:
    """``--since`` / ``--until`` of ``costs export``: ISO 8601, UTC when no zone is given."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-11-22 or 2026-11-22T08:00:00+00:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = _Parser(prog="llm-orch", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", default=None, help="YAML config (default $LLM_ORCH_CONFIG, then config/config.yaml)"
    )
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
    p.add_argument(
        "action",
        choices=["export", "rollup", "report", "replay"],
        help="replay: write rows spooled while Redis was unreachable into the ledger (once each)",
    )
    p.add_argument("--output", default="costs-export.csv")
    p.add_argument("--since", type=_instant, default=None, help="ISO 8601 time (UTC if no zone)")
    p.add_argument("--until", type=_instant, default=None)
    p.add_argument("--date", type=_day, default=None, help="YYYY-MM-DD (default: yesterday, UTC)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_costs)

    p = sub.add_parser("stats", help="latency, cost, cache hits, errors, fallbacks and breaker opens over a window")
    p.add_argument("--since", type=_window, default="24h", help="window: 1h, 24h, 7d (any N followed by s/m/h/d)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("classify", help="classify a .jsonl/.csv file of product signals")
    p.add_argument("input")
    p.add_argument("--output", default=None, help="JSONL results (default INPUT.classified.jsonl); resumable")
    p.add_argument(
        "--via",
        choices=["local", "worker"],
        default="local",
        help="local: in this process; worker: llm.classify_batch jobs through the config's redis.url",
    )
    p.add_argument("--text-column", default="text")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("eval", help="evaluate the classifier on labelled signals; A/B config variants, HTML report")
    p.add_argument("input", help=".jsonl/.csv with text, id and label")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=CONFIG.yaml",
        help="a config to evaluate under NAME (repeatable; default: --config)",
    )
    p.add_argument(
        "--tolerance-pp",
        type=float,
        default=None,
        help="accuracies within this many percentage points count as equal when ranking by cost (1)",
    )
    p.add_argument("--json", default=None, metavar="FILE", help="metrics per variant as JSON")
    p.add_argument("--predictions", default=None, metavar="FILE", help="one JSON line per signal per variant")
    p.add_argument("--report", default=None, metavar="FILE.html", help="self-contained HTML report")
    p.add_argument("--text-column", default="text")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("prefilter", help="learned prefilter: train a small text model (needs the prefilter extra)")
    p.add_argument("action", choices=["train"])
    p.add_argument("input", help="labelled .jsonl/.csv (label), or a classify output .jsonl (category, confidence)")
    p.add_argument("--output", required=True, metavar="MODEL.json")
    p.add_argument("--target-precision", type=float, default=None, help="held-out precision to reach (0.97)")
    p.add_argument("--min-confidence", type=float, default=None, help="results rows used from this confidence (0.9)")
    p.add_argument("--signals", default=None, help="the classified input, for results files without texts")
    p.add_argument("--text-column", default="text")
    p.set_defaults(func=cmd_prefilter)

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
        return _fail(f"config error: {e}", EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except LLMOrchestratorError as e:
        return _fail(f"error: {type(e).__name__}: {e}", EXIT_FAILED)
    except Exception as e:
        return _user_error(e, args)


def _user_error(e: Exception, args: argparse.Namespace) -> int:
    """One line for the errors a user causes or meets; anything else is a bug and re-raised."""
    from llm_orchestrator.classification.batch import InputFileError, Interrupted

    if isinstance(e, Interrupted):
        return _fail(str(e), EXIT_INTERRUPTED)
    if isinstance(e, InputFileError):
        return _fail(f"error: {e}", EXIT_BAD_INPUT)
    if isinstance(e, _redis_errors()):
        unreachable = isinstance(e, _redis_connection_errors())
        reason = _URL_CREDENTIALS.sub(r"\1", str(e))  # a client may quote a URL: never its password
        return _fail(
            f"Redis at {_redis_location(args)} {'unreachable' if unreachable else 'error'}: {reason}", EXIT_FAILED
        )
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        return _fail(f"error: {where}{e.strerror or e}", EXIT_FAILED)
    raise e


def _fail(line: str, code: int) -> int:
    print(line, file=sys.stderr)
    return code


def _redis_errors() -> tuple[type[BaseException], ...]:
    """Redis and broker errors, from the modules this process loaded (none imported here)."""
    found: list[type[BaseException]] = []
    if "redis" in sys.modules:
        found.append(sys.modules["redis"].RedisError)
    if "kombu.exceptions" in sys.modules:
        found.append(sys.modules["kombu.exceptions"].OperationalError)
    return tuple(found)


def _redis_connection_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    if "redis" in sys.modules:
        found += [sys.modules["redis"].ConnectionError, sys.modules["redis"].TimeoutError]
    if "kombu.exceptions" in sys.modules:
        found.append(sys.modules["kombu.exceptions"].OperationalError)
    return tuple(found)


def _redis_location(args: argparse.Namespace) -> str:
    """``redis://host:port`` of the config's ``redis.url``: never the password or user."""
    from llm_orchestrator.config.manager import ConfigManager

    try:
        url = ConfigManager.load(args.config).config.redis.url
    except ConfigError:
        url = None
    if not url:
        return "the configured URL"
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    port: int | str
    try:
        port = parts.port or DEFAULT_REDIS_PORT
    except ValueError:
        port = "?"
    return f"{parts.scheme}://{host}:{port}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
