"""A monitor run's HTML report: one self-contained file (inline CSS and SVG; no script, no external resource).

For each signal: a card with its status and row counts, the metric of every feature against its threshold (a bar
chart, alerted features first), a table (metric, value, threshold, alert, and a sparkline of the metric over the
monitor's past runs), the reference and production distributions of each feature overlaid (from the engine's
histogram files: equal-width bins for numerical features, the largest categories for categorical ones; a data
quality feature borrows the histogram a drift signal of the same run computed for it), and larger history charts of
the alerted metrics with their threshold. ``python -m mlyard.monitoring.report DIR`` rebuilds ``DIR/report.html``
from ``DIR/signals.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from mlyard.monitoring.tracking import Point, metric_key

BLUE, ORANGE, RED, GREEN, GREY, INK = "#4c78a8", "#f58518", "#d62728", "#2ca02c", "#9aa5b1", "#1f2933"
MAX_CATEGORIES = 12
MAX_HISTORY_CHARTS = 12
ALERT_BADGE = '<span class="badge alerted">alert</span>'

CSS = """
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;color:#1f2933;
background:#f5f7fa;margin:0}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px}h3{font-size:15px;margin:20px 0 8px}
.muted{color:#616e7c}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 3px rgba(0,0,0,.08);min-width:210px}
.card b{font-size:15px}.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;color:#fff;
font-weight:600;text-transform:uppercase;letter-spacing:.03em}
.passed{background:#2ca02c}.alerted{background:#d62728}.error{background:#7b8794}.ok{background:#2ca02c}
.all_null{background:#7b8794}
section{background:#fff;border-radius:8px;padding:8px 20px 20px;margin:20px 0;box-shadow:0 1px 3px rgba(0,0,0,.08)}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:5px 8px;
border-bottom:1px solid #e4e7eb}th{color:#616e7c;font-weight:600}td.num{text-align:right;font-variant-numeric:
tabular-nums}tr.alert td{background:#fdecea}.grid{display:flex;flex-wrap:wrap;gap:14px}
.fig{border:1px solid #e4e7eb;border-radius:6px;padding:6px 8px}.fig .t{font-size:12px;font-weight:600}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;border-radius:2px}
.note{font-size:12px;color:#616e7c}
"""


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    value = float(value)
    return f"{value:.4g}" if value == 0 or abs(value) >= 1e-3 else f"{value:.2e}"


def _svg(width: int, height: int, body: Iterable[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">' + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, *, size: int = 11, anchor: str = "start", fill: str = INK,
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}" font-family="sans-serif">{escape(text)}</text>')


# -- charts ---------------------------------------------------------------------------------------


def _axis(value: Any) -> str:
    """An axis label: thousands with separators, small numbers with four significant digits."""
    if value is None:
        return ""
    value = float(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else _fmt(value)


def _categories(histogram: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The largest categories (the engine lists them largest first), in their natural order when all are numbers."""
    chosen = [b for b in histogram if b.get("category") != "Other"][:MAX_CATEGORIES]
    try:
        return sorted(chosen, key=lambda b: float(str(b.get("category"))))
    except ValueError:
        return chosen


def distribution_chart(histogram: Sequence[Mapping[str, Any]], title: str, *, width: int = 340,
                       height: int = 170) -> str:
    """Reference (blue bars) and production (an orange outline, or orange bars beside them for categories)
    shares per bin or category."""
    numerical = bool(histogram) and "lowerBound" in histogram[0]
    bins = list(histogram) if numerical else _categories(histogram)
    total_b = sum(int(b.get("baselineCount") or 0) for b in histogram) or 1
    total_p = sum(int(b.get("targetCount") or 0) for b in histogram) or 1
    shares = [(int(b.get("baselineCount") or 0) / total_b, int(b.get("targetCount") or 0) / total_p) for b in bins]
    top = max((max(a, b) for a, b in shares), default=0) or 1.0
    left, right, top_pad, bottom = 34, 8, 8, 22
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    base = top_pad + plot_h
    step = plot_w / max(len(bins), 1)
    body = [f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="{GREY}"/>']
    for frac in (0.5, 1.0):
        y = top_pad + plot_h * (1 - frac)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#eef0f3"/>')
        body.append(_text(left - 4, y + 4, f"{top * frac:.0%}", size=9, anchor="end", fill="#7b8794"))
    if numerical:
        outline = [(float(left), float(base))]
        for i, (share_b, share_p) in enumerate(shares):
            x = left + i * step
            hb, hp = plot_h * share_b / top, plot_h * share_p / top
            body.append(f'<rect x="{x + 0.5:.1f}" y="{base - hb:.1f}" width="{max(step - 1, 0.5):.1f}" '
                        f'height="{hb:.1f}" fill="{BLUE}" fill-opacity="0.6"/>')
            outline += [(x, base - hp), (x + step, base - hp)]
        outline.append((float(left + len(shares) * step), float(base)))
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in outline)
        body.append(f'<polyline fill="none" stroke="{ORANGE}" stroke-width="2" points="{coords}"/>')
        if bins:
            body.append(_text(left, height - 6, _axis(bins[0].get("lowerBound")), size=9, fill="#52606d"))
            body.append(_text(width - right, height - 6, _axis(bins[-1].get("upperBound")), size=9, anchor="end",
                              fill="#52606d"))
    else:
        bar = max(step / 2 - 2, 1)
        room = max(int(step / 5.5), 3)  # characters a label may take under its pair of bars
        for i, (share_b, share_p) in enumerate(shares):
            x = left + i * step
            for j, (share, color) in enumerate(((share_b, BLUE), (share_p, ORANGE))):
                h = plot_h * share / top
                body.append(f'<rect x="{x + 1 + j * bar:.1f}" y="{base - h:.1f}" width="{bar:.1f}" '
                            f'height="{h:.1f}" fill="{color}" fill-opacity="0.85"/>')
            label = str(bins[i].get("category"))
            body.append(_text(x + step / 2, base + 12, label if len(label) <= room else label[:room - 1] + "…",
                              size=9, anchor="middle", fill="#52606d"))
    return f'<div class="fig"><div class="t">{escape(title)}</div>' + _svg(width, height, body, title) + "</div>"


def threshold_chart(rows: Sequence[tuple[str, float | None, float | None, bool]], title: str,
                    *, width: int = 1100) -> str:
    """One bar per (label, value, threshold, alert) with the threshold marked on it."""
    rows = [r for r in rows if r[1] is not None]
    if not rows:
        return ""
    bar_h, gap, left, right, top = 14, 6, 300, 70, 24
    height = top + len(rows) * (bar_h + gap) + 10
    scale = max(max(abs(r[1] or 0), abs(r[2] or 0)) for r in rows) * 1.08 or 1.0
    plot_w = width - left - right
    body = [_text(left, 14, "value (bar) and threshold (mark)", size=11, fill="#7b8794")]
    for i, (label, value, threshold, alert) in enumerate(rows):
        y = top + i * (bar_h + gap)
        w = plot_w * abs(value or 0) / scale
        body.append(_text(left - 8, y + bar_h - 3, label[:48], size=11, anchor="end"))
        body.append(f'<rect x="{left}" y="{y}" width="{plot_w}" height="{bar_h}" fill="#f0f2f5" rx="2"/>')
        body.append(f'<rect x="{left}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h}" rx="2" '
                    f'fill="{RED if alert else BLUE}"/>')
        if threshold is not None:
            tx = left + plot_w * abs(threshold) / scale
            body.append(f'<line x1="{tx:.1f}" y1="{y - 2}" x2="{tx:.1f}" y2="{y + bar_h + 2}" stroke="{INK}" '
                        'stroke-width="2"/>')
        body.append(_text(left + plot_w + 6, y + bar_h - 3, _fmt(value), size=11,
                          fill=RED if alert else INK, weight="bold" if alert else "normal"))
    return _svg(width, height, body, title)


def _line(points: Sequence[tuple[float, float]], x0: float, y0: float, w: float, h: float,
          lo: float, hi: float) -> list[tuple[float, float]]:
    span = (hi - lo) or 1.0
    n = len(points)
    return [(x0 + (w * i / (n - 1) if n > 1 else w / 2), y0 + h - h * (v - lo) / span) for i, (_, v) in
            enumerate(points)]


def _polyline(points: Sequence[tuple[float, float]], stroke_width: float) -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline fill="none" stroke="{BLUE}" stroke-width="{stroke_width}" points="{coords}"/>'


def sparkline(values: Sequence[float], threshold: float | None, alert: bool, *, width: int = 120,
              height: int = 26) -> str:
    """The metric over past runs (the last point is this run), the threshold dashed."""
    if len(values) < 2:
        return '<span class="note">first run</span>'
    lo = min([*values, threshold if threshold is not None else values[0]])
    hi = max([*values, threshold if threshold is not None else values[0]])
    pts = _line([(0, v) for v in values], 3, 3, width - 6, height - 6, lo, hi)
    body = []
    if threshold is not None:
        ty = _line([(0, threshold)], 3, 3, width - 6, height - 6, lo, hi)[0][1]
        body.append(f'<line x1="3" y1="{ty:.1f}" x2="{width - 3}" y2="{ty:.1f}" stroke="{GREY}" '
                    'stroke-dasharray="3 2"/>')
    body.append(_polyline(pts, 1.5))
    x, y = pts[-1]
    body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.8" fill="{RED if alert else BLUE}"/>')
    return _svg(width, height, body, "history")


def history_chart(points: Sequence[tuple[float, float]], threshold: float | None, title: str, *, width: int = 340,
                  height: int = 170) -> str:
    """A metric over the monitor's runs (x: run start time), with its threshold."""
    values = [v for _, v in points]
    lo = min([*values, *([threshold] if threshold is not None else [])])
    hi = max([*values, *([threshold] if threshold is not None else [])])
    lo, hi = (lo - 0.05 * ((hi - lo) or 1), hi + 0.05 * ((hi - lo) or 1))
    left, right, top, bottom = 46, 10, 10, 24
    pw, ph = width - left - right, height - top - bottom
    pts = _line(points, left, top, pw, ph, lo, hi)
    body = [f'<line x1="{left}" y1="{top + ph}" x2="{width - right}" y2="{top + ph}" stroke="{GREY}"/>',
            _text(left - 4, top + 8, _fmt(hi), size=9, anchor="end", fill="#7b8794"),
            _text(left - 4, top + ph, _fmt(lo), size=9, anchor="end", fill="#7b8794")]
    if threshold is not None:
        ty = _line([(0, threshold)], left, top, pw, ph, lo, hi)[0][1]
        body.append(f'<line x1="{left}" y1="{ty:.1f}" x2="{width - right}" y2="{ty:.1f}" stroke="{RED}" '
                    'stroke-dasharray="5 3"/>')
        body.append(_text(width - right, ty - 3, f"threshold {_fmt(threshold)}", size=9, anchor="end", fill=RED))
    body.append(_polyline(pts, 2))
    for x, y in pts:
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{BLUE}"/>')
    first, last = points[0][0], points[-1][0]
    for x, at, anchor in ((left, first, "start"), (width - right, last, "end")):
        stamp = datetime.fromtimestamp(at / 1000, UTC).strftime("%Y-%m-%d %H:%M") if at else ""
        body.append(_text(x, height - 6, stamp, size=9, anchor=anchor, fill="#52606d"))
    return f'<div class="fig"><div class="t">{escape(title)}</div>' + _svg(width, height, body, title) + "</div>"


# -- the page -------------------------------------------------------------------------------------


def _histograms(result: Mapping[str, Any], folder: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """signal -> feature -> histogram bins, read from the engine's files."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for signal in result.get("signals") or []:
        for feature, values in ((signal.get("metrics") or {}).get("features") or {}).items():
            relative = values.get("histogram")
            if not relative:
                continue
            try:
                data = json.loads((folder / relative).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            out.setdefault(signal["signalName"], {})[feature] = list(data.get("histogram") or [])
    return out


def _rows(signal: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = [(feature, m) for feature, values in ((signal.get("metrics") or {}).get("features") or {}).items()
            for m in values.get("metrics") or []]
    rows += [("(signal)", m) for m in (signal.get("metrics") or {}).get("signal") or []]

    def severity(row: tuple[str, dict[str, Any]]) -> tuple[int, float]:
        m = row[1]
        value, threshold = m.get("metricValue"), m.get("threshold")
        ratio = abs(value) / abs(threshold) if value is not None and threshold else 0.0
        return (0 if m.get("alert") else 1, -ratio)

    return sorted(rows, key=severity)


def _series(history: Mapping[str, Sequence[Point]], key: str, now_ms: int, value: Any) -> list[tuple[float, float]]:
    past = [(float(p.at), p.value) for p in history.get(key, [])]
    return past + ([(float(now_ms), float(value))] if value is not None else [])


def render(result: Mapping[str, Any], folder: Path, *, monitor: str, job: str | None = None,
           history: Mapping[str, Sequence[Point]] | None = None) -> str:
    """The report's HTML."""
    history = history or {}
    hists = _histograms(result, folder)
    by_feature = {f: h for signal in hists.values() for f, h in signal.items()}
    run_at = str(result.get("runAt") or "")
    try:
        now_ms = int(datetime.fromisoformat(run_at.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        now_ms = 0
    status = str(result.get("status") or "")
    parts = [f"<h1>Monitor {escape(monitor)} <span class=\"badge {escape(status)}\">{escape(status)}</span></h1>",
             f'<div class="muted">run at {escape(run_at)}' + (f" · job {escape(job)}" if job else "") + "</div>",
             '<div class="cards">']
    signals = list(result.get("signals") or [])
    for signal in signals:
        features = (signal.get("metrics") or {}).get("features") or {}
        alerted = sum(1 for v in features.values() if v.get("status") == "alerted")
        counts = (signal.get("metrics") or {}).get("rowCount") or {}
        parts.append(f'<div class="card"><b>{escape(signal["signalName"])}</b> '
                     f'<span class="badge {escape(str(signal.get("status")))}">{escape(str(signal.get("status")))}'
                     f'</span><div class="muted">{escape(str(signal.get("signalType")))}</div>'
                     f"<div>{alerted} of {len(features)} features alerted</div>"
                     f'<div class="muted">reference {counts.get("baselineCount", "–")} rows · production '
                     f'{counts.get("targetCount", "–")} rows</div></div>')
    parts.append("</div>")
    parts.append(f'<div class="legend note">distributions: <span style="background:{BLUE}"></span>reference'
                 f'<span style="background:{ORANGE}"></span>production · bars: <span style="background:{BLUE}">'
                 f'</span>within threshold<span style="background:{RED}"></span>alert</div>')
    for signal in signals:
        parts.append(_signal_section(signal, hists.get(signal["signalName"], {}), by_feature, history, now_ms))
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Monitor {escape(monitor)}: {escape(status)}</title><style>{CSS}</style></head><body><main>"
            + "".join(parts) + '<p class="note">Written by mlyard (python -m mlyard.monitoring.report). Values follow '
            "Azure ML's metric definitions; thresholds alert when a distance or rate is above them, a p-value or "
            "score below.</p></main></body></html>\n")


def _signal_section(signal: Mapping[str, Any], own: Mapping[str, list[dict[str, Any]]],
                    by_feature: Mapping[str, list[dict[str, Any]]], history: Mapping[str, Sequence[Point]],
                    now_ms: int) -> str:
    name = str(signal["signalName"])
    out = [f'<section><h2>{escape(name)} <span class="badge {escape(str(signal.get("status")))}">'
           f'{escape(str(signal.get("status")))}</span></h2>',
           f'<div class="muted">{escape(str(signal.get("signalType")))}']
    windows = signal.get("windows") or {}
    for side in ("baseline", "production"):
        w = windows.get(side) or {}
        if w:
            out.append(f" · {'reference' if side == 'baseline' else 'production'} window "
                       f"{escape(str(w.get('start') or '…'))} → {escape(str(w.get('end') or '…'))}")
    out.append("</div>")
    if signal.get("message") and signal.get("status") == "error":
        out.append(f"<p><b>Error:</b> {escape(str(signal['message']))}</p>")
    rows = _rows(signal)
    chart = threshold_chart([(f"{f} · {m['metricName']}", m.get("metricValue"), m.get("threshold"),
                              bool(m.get("alert"))) for f, m in rows], f"{name}: metrics against thresholds")
    if chart:
        out += ["<h3>Metric against threshold</h3>", chart]
    if rows:
        out.append("<h3>Features</h3><table><tr><th>Feature</th><th>Type</th><th>Metric</th><th>Value</th>"
                   "<th>Threshold</th><th>Alert</th><th>Past runs</th></tr>")
        features = (signal.get("metrics") or {}).get("features") or {}
        for feature, m in rows:
            key = metric_key(name, None if feature == "(signal)" else feature, m["metricName"])
            series = [v for _, v in _series(history, key, now_ms, m.get("metricValue"))]
            alert = bool(m.get("alert"))
            out.append(f'<tr class="{"alert" if alert else ""}"><td>{escape(feature)}</td>'
                       f'<td>{escape(str((features.get(feature) or {}).get("dataType", "")))}</td>'
                       f'<td>{escape(m["metricName"])}</td><td class="num">{_fmt(m.get("metricValue"))}</td>'
                       f'<td class="num">{_fmt(m.get("threshold"))}</td>'
                       f"<td>{ALERT_BADGE if alert else ''}</td>"
                       f"<td>{sparkline(series, m.get('threshold'), alert)}</td></tr>")
        out.append("</table>")
    skipped = signal.get("skippedFeatures") or {}
    if skipped:
        out.append('<p class="note">Skipped: ' + "; ".join(f"{escape(k)} ({escape(str(v))})"
                                                          for k, v in skipped.items()) + "</p>")
    features = list(((signal.get("metrics") or {}).get("features") or {}).items())
    features.sort(key=lambda kv: (kv[1].get("status") != "alerted", kv[0]))
    figures = [distribution_chart(own.get(f) or by_feature[f], f"{f}" + (" · alert" if v.get("status") == "alerted"
                                                                         else ""))
               for f, v in features if own.get(f) or by_feature.get(f)]
    if figures:
        out += ["<h3>Distributions: reference against production</h3>", '<div class="grid">', *figures, "</div>"]
    charts: list[str] = []
    for feature, m in rows:
        if not m.get("alert") or len(charts) >= MAX_HISTORY_CHARTS:
            continue
        key = metric_key(name, None if feature == "(signal)" else feature, m["metricName"])
        points = _series(history, key, now_ms, m.get("metricValue"))
        if len(points) >= 2:
            charts.append(history_chart(points, m.get("threshold"), f"{feature} · {m['metricName']}"))
    if charts:
        out += ["<h3>History of the alerted metrics</h3>", '<div class="grid">', *charts, "</div>"]
    out.append("</section>")
    return "".join(out)


def write_report(result: Mapping[str, Any], folder: Path, *, monitor: str, job: str | None = None,
                 history: Mapping[str, Sequence[Point]] | None = None) -> Path:
    path = folder / "report.html"
    path.write_text(render(result, folder, monitor=monitor, job=job, history=history), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlyard.monitoring.report",
                                     description="Write DIR/report.html from DIR/signals.json (no history).")
    parser.add_argument("folder", type=Path, help="a monitor run's output folder")
    parser.add_argument("--monitor", default="monitor", help="the monitor's name, for the title")
    args = parser.parse_args(argv)
    try:
        result = json.loads((args.folder / "signals.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"error: {args.folder / 'signals.json'}: {exc}", file=sys.stderr)
        return 2
    print(write_report(result, args.folder, monitor=args.monitor))
    return 0


if __name__ == "__main__":
    sys.exit(main())
