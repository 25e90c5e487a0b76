"""The evaluation report as one self-contained HTML file (``llm-orch eval --report FILE.html``).

Inline CSS and inline SVG only: no script, font, image or style sheet is fetched, so the file
opens the same offline, in a mail attachment or in a CI artefact. Every text that comes from the
data or the configs (variant names, signal ids, labels, model names) is HTML-escaped.

Sections: the ranked summary table; cost vs accuracy (scatter); stage mix (stacked bars);
per-class F1 (grouped bars); one confusion-matrix heatmap per variant; the first misclassified
signal ids per variant.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from llm_orchestrator.classification.batch import percentile
from llm_orchestrator.classification.evaluation import (
    SIMULATOR_NOTE,
    VariantReport,
    ranking_rule,
    stage_rank,
)

VARIANT_COLOURS = ("#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626")
STAGE_COLOURS = {"keyword": "#16a34a", "cache": "#0ea5e9", "prefilter": "#a855f7"}
MODEL_COLOURS = ("#f59e0b", "#ea580c", "#b91c1c", "#7f1d1d", "#facc15")  # cascade stages, cheap first
OTHER_STAGE_COLOURS = ("#64748b", "#94a3b8", "#475569", "#cbd5e1")
MISSES_SHOWN = 25  # misclassified signal ids listed per variant
CELL = 58  # confusion-matrix cell, px
FONT = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif"
CSS = """
body{FONT;margin:24px;color:#0f172a;background:#fff;max-width:1150px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e2e8f0}
h3{font-size:14px;margin:16px 0 6px} p.note{color:#475569;font-size:13px;margin:4px 0}
table{border-collapse:collapse;font-size:13px;margin:6px 0} th,td{border:1px solid #e2e8f0;padding:4px 8px}
th{background:#f1f5f9;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.grid{display:flex;flex-wrap:wrap;gap:24px} svg text{FONT}
""".replace("FONT", FONT)


def esc(value: object) -> str:
    """Any value as HTML text, quotes included (safe in element text and in attributes)."""
    return html.escape(str(value), quote=True)


def render(ranked: Sequence[VariantReport], *, source: str, tolerance_pp: float) -> str:
    """The whole report for ``ranked`` variants (as :func:`evaluation.rank` returns them)."""
    colours = {r.name: VARIANT_COLOURS[i % len(VARIANT_COLOURS)] for i, r in enumerate(ranked)}
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Classifier evaluation: {esc(source)}</title><style>{CSS}</style></head><body>",
        "<h1>Signal classifier evaluation</h1>",
        f'<p class="note">{esc(source)} · {ranked[0].n if ranked else 0} labelled signals · '
        f"{len(ranked)} variant{'s' if len(ranked) != 1 else ''} · {esc(made)}</p>",
        f'<p class="note">{esc(ranking_rule(tolerance_pp))} “=” marks the variants tied with the best.</p>',
        f'<p class="note">{esc(SIMULATOR_NOTE)}</p>',
        "<h2>Summary</h2>",
        _summary_table(ranked, colours),
        '<div class="grid"><div><h2>Cost vs accuracy</h2>',
        _scatter(ranked, colours),
        "</div>",
        "<div><h2>Stage mix</h2>",
        _stage_mix(ranked),
        "</div></div>",
        "<h2>Per-class F1</h2>",
        _f1_bars(ranked, colours),
        '<h2>Confusion matrices</h2><p class="note">Rows: label; columns: prediction; colour: share of the row '
        "(green on the diagonal, red off it).</p>",
        '<div class="grid">',
        *(_heatmap(r) for r in ranked),
        "</div>",
        "<h2>Misclassified signals</h2>",
        *(_misses(r) for r in ranked),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write(path: Path, ranked: Sequence[VariantReport], *, source: str, tolerance_pp: float) -> None:
    """Write :func:`render`'s report to ``path`` (UTF-8)."""
    Path(path).write_text(render(ranked, source=source, tolerance_pp=tolerance_pp), encoding="utf-8")


# -- tables -----------------------------------------------------------------------------------------


def _summary_table(ranked: Sequence[VariantReport], colours: dict[str, str]) -> str:
    head = (
        "rank",
        "variant",
        "prompt",
        "provider / models",
        "accept_at",
        "batch",
        "json",
        "n",
        "accuracy",
        "macro-F1",
        "$ per 1k signals",
        "p50 ms",
        "p95 ms",
        "model calls",
        "result cache",
        "prompt cache",
    )
    rows = []
    for r in ranked:
        s = r.setup
        cost = f"{r.cost_per_1k_usd}" + (f" (+{r.unpriced} unpriced)" if r.unpriced else "")
        cells = [
            f"{r.rank}{' =' if r.tied_with_best else ''}",
            f'<span class="swatch" style="background:{colours[r.name]}"></span>{esc(r.name)}',
            esc(s["prompt_version"]),
            esc(f"{s['provider']}: {' → '.join(s['models'])}"),
            esc(", ".join(f"{a:g}" for a in s["accept_at"]) or "-"),
            esc(s["batch_size"]),
            "yes" if s["json_mode"] else "no",
            str(r.n),
            f"{r.accuracy:.1%}",
            f"{r.macro_f1:.3f}",
            esc(cost),
            _ms(percentile(r.latencies_ms, 50)),
            _ms(percentile(r.latencies_ms, 95)),
            str(len(r.latencies_ms)),
            f"{r.result_cache_hit_rate:.0%}",
            f"{r.prompt_cache_hit_rate:.0%}",
        ]
        rows.append(
            "<tr>"
            + "".join(f'<td class="num">{c}</td>' if i >= 7 else f"<td>{c}</td>" for i, c in enumerate(cells))
            + "</tr>"
        )
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _misses(r: VariantReport) -> str:
    wrong = [p for p in r.predictions if p.category != p.label]
    if not wrong:
        return f"<h3>{esc(r.name)}: none</h3>"
    rows = "".join(
        f"<tr><td>{esc(p.id)}</td><td>{esc(p.label)}</td><td>{esc(p.category)}</td>"
        f'<td class="num">{p.confidence:g}</td><td>{esc(p.stage_key)}</td></tr>'
        for p in wrong[:MISSES_SHOWN]
    )
    more = f'<p class="note">… and {len(wrong) - MISSES_SHOWN} more</p>' if len(wrong) > MISSES_SHOWN else ""
    return (
        f"<h3>{esc(r.name)}: {len(wrong)} of {r.n}</h3><table><thead><tr><th>id</th><th>label</th>"
        f"<th>predicted</th><th>confidence</th><th>stage</th></tr></thead><tbody>{rows}</tbody></table>{more}"
    )


# -- charts -----------------------------------------------------------------------------------------


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{esc(label)}">' + "".join(body) + "</svg>"
    )


def _short(name: str, limit: int = 20) -> str:
    """A name cut to fit a chart's margin (the full name is in the element's tooltip)."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _text(
    x: float, y: float, value: object, *, size: int = 12, anchor: str = "start", fill: str = "#0f172a", extra: str = ""
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{extra}>'
        f"{esc(value)}</text>"
    )


def _scatter(ranked: Sequence[VariantReport], colours: dict[str, str]) -> str:
    width, height, left, right, top, bottom = 520, 340, 60, 130, 16, 44
    costs = [float(r.cost_per_1k_usd) for r in ranked]
    accs = [r.accuracy for r in ranked]
    x_step = _nice_step(max(costs, default=0.0) * 1.15 / 4) if max(costs, default=0.0) > 0 else 0.25
    x_max = 4 * x_step
    y_step = _nice_step(max(0.02, (max(accs, default=1.0) - min(accs, default=0.0) + 0.04) / 4))
    y_step = min(y_step, 0.25)
    y_min = min(max(0.0, (min(accs, default=0.0) - 0.02) // y_step * y_step), 1 - 4 * y_step)
    y_max = y_min + 4 * y_step
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(v: float) -> float:
        return left + v / x_max * plot_w

    def sy(v: float) -> float:
        return top + (1 - (v - y_min) / (y_max - y_min)) * plot_h

    body = [f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#f8fafc" stroke="#cbd5e1"/>']
    for i in range(5):
        xv, yv = x_step * i, y_min + y_step * i
        body.append(_text(sx(xv), height - bottom + 16, f"{xv:g}", size=11, anchor="middle"))
        body.append(_text(left - 6, sy(yv) + 4, f"{yv:.0%}" if y_step >= 0.01 else f"{yv:.1%}", size=11, anchor="end"))
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" stroke="#e2e8f0"/>')
    body.append(_text(left + plot_w / 2, height - 6, "USD per 1,000 signals (list prices)", size=12, anchor="middle"))
    body.append(
        _text(
            14,
            top + plot_h / 2,
            "accuracy",
            size=12,
            anchor="middle",
            extra=f' transform="rotate(-90 14 {top + plot_h / 2:.1f})"',
        )
    )
    points = [(sx(cost), sy(acc)) for cost, acc in zip(costs, accs, strict=True)]
    taken = [(x - 8, x + 8, y - 8, y + 8) for x, y in points]  # boxes labels must avoid: points, then labels
    for r, (x, y), acc in zip(ranked, points, accs, strict=True):
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="{colours[r.name]}" stroke="#fff" stroke-width="2">'
            f"<title>{esc(r.name)}: {acc:.1%}, ${esc(r.cost_per_1k_usd)} per 1k</title></circle>"
        )
        label = _short(r.name)
        box = (x + 10, x + 10 + 7.0 * len(label), y - 7, y + 7)
        for _ in range(len(taken)):  # points close together: stack their labels below
            if not any(box[0] < t[1] and t[0] < box[1] and box[2] < t[3] and t[2] < box[3] for t in taken):
                break
            box = (box[0], box[1], box[2] + 14, box[3] + 14)
        taken.append(box)
        body.append(_text(box[0], box[3] - 3, label, size=12, fill=colours[r.name]))
    return _svg(width, height, body, "cost per 1,000 signals against accuracy, one point per variant")


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least ``raw``."""
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))


def _stage_colours(ranked: Sequence[VariantReport]) -> dict[str, str]:
    """A colour per stage of any variant, in pipeline order (cascade models cheap first)."""
    cascade: list[str] = []
    for r in sorted(ranked, key=lambda r: -len(r.setup.get("models", []))):  # the longest cascade sets the order
        cascade += [m for m in r.setup.get("models", []) if m not in cascade]
    keys = sorted({key for r in ranked for key in r.stages()}, key=lambda k: stage_rank(k, cascade))
    colours: dict[str, str] = {}
    others = models = 0
    for key in keys:
        if key in STAGE_COLOURS:
            colours[key] = STAGE_COLOURS[key]
        elif key.startswith("llm:"):
            colours[key] = MODEL_COLOURS[models % len(MODEL_COLOURS)]
            models += 1
        else:
            colours[key] = OTHER_STAGE_COLOURS[others % len(OTHER_STAGE_COLOURS)]
            others += 1
    return colours


def _stage_mix(ranked: Sequence[VariantReport]) -> str:
    colours = _stage_colours(ranked)
    left, bar_w, bar_h, gap = 150, 420, 26, 14
    legend_rows = (len(colours) + 1) // 2
    height = 10 + len(ranked) * (bar_h + gap) + legend_rows * 20 + 10
    body = []
    for i, r in enumerate(ranked):
        y = 10 + i * (bar_h + gap)
        body.append(_text(left - 8, y + bar_h / 2 + 4, _short(r.name, 18), anchor="end"))
        x = float(left)
        for key, s in r.stages().items():
            w = s["coverage"] * bar_w
            body.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colours[key]}">'
                f"<title>{esc(key)}: {s['signals']} signals ({s['coverage']:.1%}), precision "
                f"{s['precision']:.1%}</title></rect>"
            )
            if w >= 34:
                body.append(
                    _text(x + w / 2, y + bar_h / 2 + 4, f"{s['coverage']:.0%}", size=11, anchor="middle", fill="#fff")
                )
            x += w
    legend_y = 10 + len(ranked) * (bar_h + gap)
    for i, (key, colour) in enumerate(colours.items()):
        lx, ly = left + (i % 2) * 220, legend_y + (i // 2) * 20
        body.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{colour}"/>')
        body.append(_text(lx + 18, ly + 11, key, size=12))
    return _svg(left + bar_w + 20, height, body, "share of signals decided by each stage, per variant")


def _f1_bars(ranked: Sequence[VariantReport], colours: dict[str, str]) -> str:
    classes: list[str] = []
    for r in ranked:
        classes += [c for c, s in r.per_class.items() if (s.support or s.predicted) and c not in classes]
    left, bar_w, bar_h = 150, 520, 14
    group_h = len(ranked) * bar_h + 14
    height = 10 + len(classes) * group_h + 24
    axis_y = 10 + len(classes) * group_h
    body = []
    for k in range(5):
        x = left + bar_w * k / 4
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="6" y2="{axis_y}" stroke="#e2e8f0"/>')
        body.append(_text(x, axis_y + 14, f"{k / 4:.2f}", size=10, anchor="middle"))
    for i, c in enumerate(classes):
        y0 = 10 + i * group_h
        body.append(_text(left - 8, y0 + len(ranked) * bar_h / 2 + 4, c, anchor="end"))
        for j, r in enumerate(ranked):
            f1 = r.per_class[c].f1 if c in r.per_class else 0.0
            y = y0 + j * bar_h
            body.append(
                f'<rect x="{left}" y="{y}" width="{f1 * bar_w:.1f}" height="{bar_h - 2}" '
                f'fill="{colours[r.name]}"><title>{esc(r.name)} · {esc(c)}: F1 {f1:.3f}</title></rect>'
            )
            body.append(_text(left + f1 * bar_w + 4, y + bar_h - 4, f"{f1:.2f}", size=10))
    legend = "".join(
        f'<span style="margin-right:16px"><span class="swatch" style="background:{colours[r.name]}">'
        f"</span>{esc(r.name)}</span>"
        for r in ranked
    )
    return f'<p class="note">{legend}</p>' + _svg(left + bar_w + 50, height, body, "F1 per class, one bar per variant")


def _heatmap(r: VariantReport) -> str:
    classes = [c for c, s in r.per_class.items() if s.support or s.predicted] or list(r.classes)
    index = {c: i for i, c in enumerate(r.classes)}
    matrix = r.confusion
    left, top = 130, 110
    size = len(classes) * CELL
    body = []
    for j, c in enumerate(classes):  # column headers, slanted
        x, y = left + j * CELL + CELL / 2, top - 8
        body.append(_text(x, y, c, size=11, extra=f' transform="rotate(-40 {x:.1f} {y:.1f})"'))
    for i, label in enumerate(classes):
        row = matrix[index[label]]
        support = sum(row)
        y = top + i * CELL
        body.append(_text(left - 8, y + CELL / 2 + 4, label, size=11, anchor="end"))
        for j, pred in enumerate(classes):
            n = row[index[pred]]
            share = n / support if support else 0.0
            fill = _shade(share, diagonal=i == j)
            x = left + j * CELL
            body.append(
                f'<rect x="{x}" y="{y}" width="{CELL - 2}" height="{CELL - 2}" fill="{fill}"><title>'
                f"label {esc(label)}, predicted {esc(pred)}: {n} ({share:.0%} of the row)</title></rect>"
            )
            if n:
                body.append(
                    _text(
                        x + CELL / 2 - 1,
                        y + CELL / 2 + 4,
                        n,
                        size=13,
                        anchor="middle",
                        fill="#fff" if share > 0.55 else "#0f172a",
                    )
                )
    title = f"<h3>{esc(r.name)}: accuracy {r.accuracy:.1%}, macro-F1 {r.macro_f1:.3f}</h3>"
    return "<div>" + title + _svg(left + size + 100, top + size + 10, body, f"confusion matrix of {r.name}") + "</div>"


def _shade(share: float, diagonal: bool) -> str:
    """White → green (diagonal) or white → red (errors), by the share of the row."""
    end = (22, 128, 61) if diagonal else (185, 28, 28)
    start = (248, 250, 252)
    rgb = (round(s + (e - s) * share) for s, e in zip(start, end, strict=True))
    return "#" + "".join(f"{v:02x}" for v in rgb)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
