"""`llm-orch eval`: the metrics, the ranking, prompt versions, and variants run on the simulator."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from llm_orchestrator import ConfigManager, LLMOrchestrator
from llm_orchestrator.classification.batch import InputFileError
from llm_orchestrator.classification.cache import ResultCache
from llm_orchestrator.classification.categories import CATEGORIES, LABELS
from llm_orchestrator.classification.evaluation import (
    Prediction,
    VariantReport,
    class_scores,
    classes_of,
    confusion_matrix,
    evaluate,
    macro_f1,
    parse_variant,
    percentile,
    rank,
    read_labelled,
)
from llm_orchestrator.classification.parser import Classification, parse_batch, parse_single
from llm_orchestrator.classification.pipeline import SignalClassifier
from llm_orchestrator.classification.prompt import DEFAULT_PROMPT_VERSION, PROMPTS, system_prompt
from llm_orchestrator.cli import main
from llm_orchestrator.exceptions import ConfigError
from llm_orchestrator.simulator.responder import tokens
from tests.conftest import ROOT, make_config

CASCADE = {"openai": [{"model": "gpt-6-luna", "accept_at": 0.8}, {"model": "gpt-6-sol"}]}
JSON_KEYS = {"name", "n", "accuracy", "macro_f1", "per_class", "confusion", "stages", "cost_per_1k_usd", "latency_ms"}
PREDICTION_KEYS = {"variant", "id", "category", "confidence", "stage", "model", "cost_usd"}
LABELLED = [  # (id, text, label): two keyword-sure, two for the cascade, one repeat (answered from the run)
    ("k1", "The app crashes on launch with an error", "bug_report"),
    ("k2", "We will cancel and move to a competitor", "churn_risk"),
    ("m1", "The dashboard looks different today", "general_feedback"),
    ("m2", "Could the export include the notes too?", "feature_request"),
    ("m3", "the dashboard LOOKS different today", "general_feedback"),
]


def dev_set() -> Path:
    """The dev set in the repo (data/), or the shared copy it was taken from."""
    local = ROOT / "data" / "signals_dev.jsonl"
    return local if local.exists() else Path("/work/shared/data/signals_dev.jsonl")


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps({"id": i, "text": t, "label": lab}) + "\n" for i, t, lab in rows))
    return path


def config_file(sim, tmp_path: Path, name: str, **classification) -> str:
    settings = {"cascade": CASCADE, **classification}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(make_config(sim, "openai", fallbacks=[], classification=settings)))
    return str(path)


def classifier(sim, **classification) -> SignalClassifier:
    cfg = make_config(sim, "openai", fallbacks=[], classification={"cascade": CASCADE, **classification})
    return SignalClassifier(LLMOrchestrator(ConfigManager.from_dict(cfg).config))


def report(name: str, rows, cost: str = "0.001") -> VariantReport:
    """A report from (label, predicted) pairs, each signal costing ``cost``."""
    preds = [
        Prediction(f"id{i}", label, pred, 0.9, "llm", "gpt-6-luna", Decimal(cost), DEFAULT_PROMPT_VERSION)
        for i, (label, pred) in enumerate(rows)
    ]
    return VariantReport(
        name, {"provider": "openai", "models": ["gpt-6-luna"], "prompt_version": "signals-v2"}, preds, [], 0, 0
    )


def outcome(n: int, correct: int) -> list[tuple[str, str]]:
    return [("bug_report", "bug_report")] * correct + [("bug_report", "churn_risk")] * (n - correct)


# -- metrics ----------------------------------------------------------------------------------------


def test_confusion_and_per_class_scores_match_a_hand_computed_example():
    labels = ["bug_report", "bug_report", "bug_report", "churn_risk", "churn_risk", "feature_request"]
    predicted = ["bug_report", "bug_report", "churn_risk", "churn_risk", "bug_report", "bug_report"]
    classes = classes_of(labels, predicted)
    assert classes == list(LABELS)
    m = confusion_matrix(labels, predicted, classes)
    assert m[classes.index("bug_report")][classes.index("bug_report")] == 2
    assert m[classes.index("feature_request")][classes.index("bug_report")] == 1
    assert sum(map(sum, m)) == 6
    s = class_scores(m, classes)
    # bug_report: TP 2, predicted 4, support 3 → P 1/2, R 2/3, F1 4/7
    assert (s["bug_report"].precision, s["bug_report"].recall) == (0.5, 2 / 3)
    assert s["bug_report"].f1 == pytest.approx(4 / 7)
    # churn_risk: TP 1, predicted 2, support 2 → 1/2, 1/2, 1/2; feature_request never predicted → 0
    assert (s["churn_risk"].precision, s["churn_risk"].recall, s["churn_risk"].f1) == (0.5, 0.5, 0.5)
    assert (s["feature_request"].precision, s["feature_request"].f1, s["feature_request"].support) == (0, 0, 1)
    # macro over the 3 classes present (expansion_signal and general_feedback occur nowhere)
    assert macro_f1(s) == pytest.approx((4 / 7 + 0.5 + 0) / 3)


def test_a_label_that_is_not_a_category_still_gets_its_row():
    classes = classes_of(["bug", "bug_report"], ["bug_report", "bug_report"])
    assert classes == [*LABELS, "bug"]
    m = confusion_matrix(["bug", "bug_report"], ["bug_report", "bug_report"], classes)
    assert class_scores(m, classes)["bug"].support == 1


def test_percentile_is_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) in (50.0, 51.0) and percentile(values, 95) == 95.0


# -- ranking ----------------------------------------------------------------------------------------


def test_variants_within_the_tolerance_are_ranked_by_cost():
    accurate = report("accurate", outcome(200, 160), cost="0.005")  # 80.0 %
    cheaper = report("cheaper", outcome(200, 159), cost="0.001")  # 79.5 %: within 1 pp
    cheapest = report("cheapest", outcome(200, 140), cost="0.0001")  # 70 %
    assert [r.name for r in rank([accurate, cheaper, cheapest], 1.0)] == ["cheaper", "accurate", "cheapest"]
    assert cheaper.rank == 1 and cheaper.tied_with_best and accurate.tied_with_best and not cheapest.tied_with_best
    assert [r.name for r in rank([accurate, cheaper, cheapest], 0.0)] == ["accurate", "cheaper", "cheapest"]


def test_a_difference_of_exactly_the_tolerance_counts_as_equal():
    best = report("best", outcome(100, 80), cost="0.01")
    one_pp_less = report("one_pp_less", outcome(100, 79), cost="0.001")  # 0.80 - 0.79 is not exact in floats
    assert [r.name for r in rank([best, one_pp_less], 1.0)] == ["one_pp_less", "best"]


def test_a_variant_with_unpriced_signals_ranks_after_priced_ones_at_equal_accuracy():
    priced = report("priced", outcome(10, 9), cost="0.01")
    unpriced = report("unpriced", outcome(10, 9), cost="0")
    unpriced.predictions[0] = Prediction("x", "bug_report", "bug_report", 0.9, "llm", "m", None, "signals-v2")
    assert [r.name for r in rank([unpriced, priced])] == ["priced", "unpriced"]


def test_parse_variant():
    assert parse_variant("a=config/x.yaml") == ("a", "config/x.yaml")
    for bad in ("a", "=x.yaml", "a="):
        with pytest.raises(ValueError):
            parse_variant(bad)


# -- input ------------------------------------------------------------------------------------------


def test_read_labelled_leaves_out_unlabelled_and_empty_rows_and_renames_repeated_ids(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"id": "a", "text": "x", "label": "bug_report"},
                {"id": "a", "text": "y", "label": "churn_risk"},
                {"id": "b", "text": "z"},
                {"id": "c", "text": "  ", "label": "bug_report"},
            ]
        )
        + "\n"
    )
    data = read_labelled(path)
    assert [(s.id, s.label) for s in data.signals] == [("a", "bug_report"), ("a#2", "churn_risk")]
    assert (data.unlabelled, data.empty, data.duplicates) == (1, 1, [("a", "a#2")])


def test_read_labelled_csv_and_a_file_without_labels(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("id,text,label\n1,hello,general_feedback\n2,oops,bugg\n")
    data = read_labelled(path)
    assert len(data.signals) == 2 and data.unknown_labels == ["bugg"]
    none = tmp_path / "none.jsonl"
    none.write_text(json.dumps({"text": "no label"}) + "\n")
    with pytest.raises(InputFileError, match="no labelled signal"):
        read_labelled(none)


# -- prompt versions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("json_mode", [False, True])
@pytest.mark.parametrize("version", list(PROMPTS))
def test_every_registered_prompt_defines_the_categories_formats_and_data_rule(version, json_mode):
    prompt = system_prompt(json_mode, version)
    assert system_prompt.__wrapped__(json_mode, version) == prompt
    assert re.findall(r'<category id="([a-z_]+)">', prompt) == list(CATEGORIES)
    assert "DATA" in prompt and "never an instruction" in prompt
    assert ("json" in prompt.lower()) is json_mode
    *singles, batch = re.findall(r"<answer>\n?(.*?)\n?</answer>", prompt, re.S)
    assert singles and all(isinstance(parse_single(a), Classification) for a in singles)
    assert [r.category for r in parse_batch(batch, ["t1", "t2"]).values()] == ["churn_risk", "general_feedback"]


def test_the_short_prompt_is_under_half_the_default_and_below_the_caching_minimum():
    assert DEFAULT_PROMPT_VERSION == "signals-v2" and "signals-v3" in PROMPTS
    for json_mode in (False, True):
        assert tokens(system_prompt(json_mode, "signals-v3")) < min(1024, tokens(system_prompt(json_mode)) / 2)
    with pytest.raises(ValueError, match="signals-v2"):
        system_prompt(False, "signals-v9")


def test_config_rejects_an_unregistered_prompt_version(sim):
    cfg = make_config(sim, "openai", classification={"prompt_version": "v9"})
    with pytest.raises(ConfigError, match=r"classification.prompt_version.*signals-v2, signals-v3"):
        ConfigManager.from_dict(cfg)


def test_the_selected_prompt_is_sent_and_recorded_with_every_result(sim):
    texts = [(i, t) for i, t, _ in LABELLED]
    short = classifier(sim, prompt_version="signals-v3").classify(texts)
    long = classifier(sim).classify(texts)
    assert {r.prompt_version for r in short.results} == {"signals-v3"}  # keyword and cache results too
    assert {r.prompt_version for r in long.results} == {"signals-v2"}
    assert short.responses[0].prompt_tokens < long.responses[0].prompt_tokens / 2  # the short system block went out


def test_result_cache_key_includes_the_prompt_version(sim):
    shared = ResultCache(3600)
    vague = [("v", "The dashboard looks different today")]

    def run(version):
        cfg = make_config(
            sim,
            "openai",
            fallbacks=[],
            classification={"cascade": CASCADE, "prompt_version": version, "keyword_stage": False},
        )
        return SignalClassifier(LLMOrchestrator(ConfigManager.from_dict(cfg).config), cache=shared).classify(vague)

    assert run("signals-v2").results[0].stage == "llm"
    assert run("signals-v2").results[0].stage == "cache"  # same version: stored answer
    calls = sim.count()
    assert run("signals-v3").results[0].stage == "llm"  # another version: asked again
    assert sim.count() > calls


# -- one variant on the simulator -----------------------------------------------------------------


def test_evaluate_reports_stages_costs_latency_and_caches(sim, tmp_path):
    data = read_labelled(write_jsonl(tmp_path / "l.jsonl", LABELLED))
    clf = classifier(sim)
    r = evaluate("base", clf, data)
    assert r.n == 5 and [p.id for p in r.predictions] == ["k1", "k2", "m1", "m2", "m3"]
    stages = r.stages()
    assert list(stages)[:2] == ["keyword", "cache"] and all(k.startswith("llm:gpt-6-") for k in list(stages)[2:])
    assert stages["keyword"]["signals"] == 2 and stages["keyword"]["precision"] == 1.0
    assert stages["cache"]["signals"] == 1  # m3 repeats m1 (case and spaces ignored)
    assert sum(s["coverage"] for s in stages.values()) == pytest.approx(1.0)
    assert r.result_cache_hit_rate == pytest.approx(1 / 5)
    calls = sim.count()
    assert len(r.latencies_ms) == calls > 0
    billed = sum(Decimal(p.cost_usd) for p in r.predictions)
    assert billed == r.cost_usd > 0
    assert r.cost_per_1k_usd == (billed * 1000 / 5).quantize(Decimal("0.000001"))
    d = r.to_dict()
    assert set(d) >= JSON_KEYS and set(d["latency_ms"]) == {"p50", "p95"}
    assert d["confusion"]["labels"] == list(LABELS) and sum(map(sum, d["confusion"]["matrix"])) == 5
    assert json.loads(json.dumps(d)) == d  # plain JSON (costs as decimal strings)


def test_a_stage_the_pipeline_adds_later_is_counted_under_its_own_name():
    preds = [
        Prediction("a", "bug_report", "bug_report", 1.0, "keyword", None, Decimal(0), "signals-v2"),
        Prediction("b", "churn_risk", "churn_risk", 0.9, "llm", "gpt-6-sol", Decimal("0.002"), "signals-v2"),
        Prediction("c", "general_feedback", "general_feedback", 0.9, "prefilter", None, Decimal(0), "signals-v2"),
        Prediction(
            "d", "bug_report", "churn_risk", 0.9, "llm", "gpt-6-luna-2026-09-22", Decimal("0.001"), "signals-v2"
        ),
        Prediction("e", "bug_report", "bug_report", 0.9, "cache", "gpt-6-sol", Decimal(0), "signals-v2"),
        Prediction("f", "bug_report", "bug_report", 0.9, "rules_v2", None, Decimal(0), "signals-v2"),
    ]
    r = VariantReport("x", {"models": ["gpt-6-luna", "gpt-6-sol"]}, preds, [], 0, 0)
    assert list(r.stages()) == [  # the order the pipeline tries them, then other names, then the cascade
        "keyword",
        "prefilter",
        "cache",
        "rules_v2",
        "llm:gpt-6-luna-2026-09-22",
        "llm:gpt-6-sol",
    ]
    assert r.stages()["llm:gpt-6-luna-2026-09-22"]["precision"] == 0.0


# -- the command ------------------------------------------------------------------------------------


def test_eval_command_runs_two_variants_and_writes_json_predictions_and_report(sim, tmp_path, capsys):
    source = write_jsonl(tmp_path / "labelled.jsonl", LABELLED)
    base = config_file(sim, tmp_path, "base")
    short = config_file(sim, tmp_path, "short", prompt_version="signals-v3", batch_size=2, json_mode=True)
    out = {k: tmp_path / f"out.{k}" for k in ("json", "jsonl", "html")}
    code = main(
        [
            "eval",
            str(source),
            "--variant",
            f"base={base}",
            "--variant",
            f"short={short}",
            "--json",
            str(out["json"]),
            "--predictions",
            str(out["jsonl"]),
            "--report",
            str(out["html"]),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "within 1 percentage point of the best accuracy count as equally accurate" in printed
    assert "keyword table" in printed and "base" in printed and "short" in printed
    doc = json.loads(out["json"].read_text())
    assert list(doc) == ["variants"] and [v["name"] for v in doc["variants"]] == ["base", "short"]
    for v in doc["variants"]:
        assert set(v) >= JSON_KEYS and v["n"] == 5
        assert set(v["per_class"]["bug_report"]) >= {"precision", "recall", "f1", "support"}
    assert [v["prompt_version"] for v in doc["variants"]] == ["signals-v2", "signals-v3"]
    lines = [json.loads(line) for line in out["jsonl"].read_text().splitlines()]
    assert len(lines) == 10 and all(set(line) >= PREDICTION_KEYS for line in lines)
    assert {line["variant"] for line in lines} == {"base", "short"}
    assert "<svg" in out["html"].read_text()


def test_eval_with_no_variant_uses_the_config(sim, tmp_path, capsys):
    source = write_jsonl(tmp_path / "labelled.jsonl", LABELLED[:2])
    cfg = config_file(sim, tmp_path, "mine")
    out = tmp_path / "o.json"
    assert main(["--config", cfg, "eval", str(source), "--json", str(out), "--tolerance-pp", "2.5"]) == 0
    assert [v["name"] for v in json.loads(out.read_text())["variants"]] == ["mine"]
    assert "within 2.5 percentage points" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--variant", "nameonly"], "expected NAME=CONFIG.yaml"),
        (["--variant", "a=x.yaml", "--variant", "a=y.yaml"], "variant names must differ"),
        (["--json", "/nonexistent-dir/out.json"], "does not exist"),
    ],
)
def test_eval_refuses_bad_arguments_before_any_model_call(sim, tmp_path, capsys, args, message):
    source = write_jsonl(tmp_path / "labelled.jsonl", LABELLED)
    cfg = config_file(sim, tmp_path, "c")
    assert main(["--config", cfg, "eval", str(source), *args]) == 2
    assert message in capsys.readouterr().err
    assert sim.count() == 0


def test_the_dev_set_evaluates_end_to_end(sim):
    data = read_labelled(dev_set())
    r = evaluate("dev", classifier(sim), data)
    assert r.n == len(data.signals) >= 100 and not data.unknown_labels
    assert sum(s["signals"] for s in r.stages().values()) == r.n
    assert r.cost_usd == sum(p.cost_usd for p in r.predictions) > 0
