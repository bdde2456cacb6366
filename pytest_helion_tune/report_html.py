"""The HTML report: one self-contained page with the summary table and per-case plots.

Reads ``CaseResult`` objects and the session header only; plots are inline SVG drawn here.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .jsonstore import write_atomic
from .results import CaseResult

# Verdict -> CSS class. Class names come from this table only, never from the result, so an
# unexpected verdict string cannot reach an attribute unescaped or restyle the page.
_VERDICT_CLASS = {
    "pass": "good",
    "improved": "good",
    "regression": "bad",
    "inaccurate": "bad",
    "error": "bad",
    "missing-baseline": "muted",
    "skipped": "muted",
}
# Colour-blind-safe (Okabe-Ito); a strategy keeps its colour across every plot of the page.
_PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")
_BAR_COLORS = {"tuned": "#0072b2", "eager": "#7f7f7f", "baseline": "#e69f00"}
# Header keys with a dedicated row; any other key is still shown, after these.
_KNOWN_HEADER = (
    "date",
    "run",
    "device",
    "toolchain",
    "strategy",
    "effort",
    "budget_s",
    "seed",
    "cache_dir",
    "llm",
    "interpreter",
)
_SECRET_WORDS = ("key", "token", "secret", "password", "authorization")

_CSS = """
:root { color-scheme: light; --good: #1a7f37; --bad: #cf222e; --muted: #6e7781;
  --line: #d0d7de; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
  margin: 0 auto; padding: 16px 24px 48px; max-width: 1240px; color: #1f2328; }
h1 { font-size: 22px; margin: 8px 0 12px; }
h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 0 0 6px; word-break: break-all; }
h4 { font-size: 13px; margin: 12px 0 4px; color: #424a53; }
code, pre { font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
  padding: 8px 10px; overflow: auto; max-height: 320px; margin: 0; }
.banner { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px;
  padding: 6px 10px; margin: 0 0 12px; }
dl.header { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.header dt { color: #57606a; }
dl.header dd { margin: 0; word-break: break-all; }
.counts span { margin-right: 12px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
  white-space: nowrap; }
td.num, th.num { text-align: right; }
td.case { white-space: normal; overflow-wrap: anywhere; min-width: 260px; }
.scroll { overflow-x: auto; }
tbody tr:nth-child(even) { background: var(--soft); }
th { background: #fff; white-space: normal; vertical-align: bottom; }
th button { font: inherit; font-weight: 600; border: 0; background: none; padding: 0;
  cursor: pointer; color: inherit; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
.verdict { font-weight: 600; }
.good { color: var(--good); }
.bad { color: var(--bad); }
.muted { color: var(--muted); }
section.case { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px;
  margin: 14px 0; }
.meta { color: #57606a; margin: 0 0 8px; }
.meta span { margin-right: 14px; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; }
figcaption { font-size: 12px; color: #57606a; }
.empty { color: var(--muted); font-style: italic; border: 1px dashed var(--line);
  border-radius: 6px; padding: 16px; margin: 0; }
.message { border-left: 4px solid var(--bad); background: #ffebe9; padding: 6px 10px;
  margin: 8px 0; white-space: pre-wrap; word-break: break-word; }
.details { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 12px; }
ul { margin: 0; padding-left: 18px; }
"""

# Sorts the summary table in place. It reads only data-* attributes and text the page already
# holds, so nothing from the results is ever evaluated. data-ready tells a headless browser
# (and the tests) that the script ran to the end.
_JS = """
"use strict";
(function () {
  const table = document.getElementById("summary");
  if (table) {
    const heads = Array.from(table.tHead.rows[0].cells);
    heads.forEach(function (th, col) {
      th.querySelector("button").addEventListener("click", function () {
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const numeric = th.dataset.type === "number";
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        const key = function (row) {
          const cell = row.cells[col];
          const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent;
          if (!numeric) { return raw; }
          return raw === "" ? null : Number(raw);
        };
        rows.sort(function (a, b) {
          const x = key(a), y = key(b);
          // Missing values stay at the bottom whichever way the column is sorted.
          if (x === null || y === null) {
            if (x === y) { return Number(a.dataset.index) - Number(b.dataset.index); }
            return x === null ? 1 : -1;
          }
          let order = numeric ? x - y : x.localeCompare(y);
          if (!ascending) { order = -order; }
          return order || Number(a.dataset.index) - Number(b.dataset.index);
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  }
  document.documentElement.setAttribute("data-ready", "1");
})();
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Only the page's own script and stylesheet may run: if an escaping bug ever let markup
# from a result through, the browser would still refuse to execute it, and nothing loads
# from the network.
_CSP = (
    f"default-src 'none'; script-src {_csp_hash(_JS)}; style-src {_csp_hash(_CSS)}; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _num(value: float, digits: int = 4) -> str:
    # Significant digits, not decimals: interpreter runs mix 0.0045 ms with 13.6 ms.
    return f"{value:.{digits}g}"


def _ms(value: float | None) -> str:
    return "-" if value is None else _num(value)


def _value_attr(value: float | None) -> str:
    # repr() round-trips exactly, so sorting by the attribute equals sorting by the float.
    return "" if value is None else repr(float(value))


# ---------------------------------------------------------------------------- SVG charts


@dataclass(frozen=True)
class _Series:
    label: str
    color: str
    points: tuple[tuple[float, float], ...]  # (x, best ms so far), x ascending
    end_x: float | None  # where the search stopped: the plateau after the last improvement
    dashed: bool = False  # a second run of a strategy already drawn, in the same colour


def _nice_step(span: float, count: int, integer: bool) -> float:
    raw = span / max(count, 1)
    if integer and raw <= 1:
        return 1.0  # configs tested are counted: a tick at 1.5 configs means nothing
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = 10.0 * magnitude
    for mult in (1.0, 2.0, 2.5, 5.0):
        if mult * magnitude >= raw:
            step = mult * magnitude
            break
    return float(max(1, round(step))) if integer else step


def _ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> list[float]:
    if not hi > lo:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    step = _nice_step(hi - lo, count, integer)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    # round() strips float noise (0.30000000000000004) so labels and coordinates are stable.
    return [round(i * step, 12) for i in range(first, last + 1)]


def _label(value: float) -> str:
    text = f"{value:.6g}"
    return "0" if text == "-0" else text


class _Frame:
    """Maps data to pixels inside the plot area of one chart."""

    width, plot_height = 370, 176
    left, right, top = 62, 14, 12
    axis_room, legend_row = 44, 16  # under the plot: tick labels and axis title, then legend

    def __init__(self, xticks: list[float], yticks: list[float], legend_rows: int) -> None:
        self.xticks, self.yticks = xticks, yticks
        self.x0, self.x1 = xticks[0], xticks[-1]
        self.y0, self.y1 = yticks[0], yticks[-1]
        self.plot_bottom = self.top + self.plot_height
        # The legend sits below the axes, never over the lines it names.
        self.height = self.plot_bottom + self.axis_room + legend_rows * self.legend_row

    def px(self, x: float) -> float:
        inner = self.width - self.left - self.right
        return self.left + (x - self.x0) / (self.x1 - self.x0) * inner

    def py(self, y: float) -> float:
        return self.plot_bottom - (y - self.y0) / (self.y1 - self.y0) * self.plot_height


def _f(value: float) -> str:
    return f"{value:.1f}"


def _axes(frame: _Frame, x_label: str, y_label: str) -> list[str]:
    out: list[str] = []
    bottom, top = frame.plot_bottom, frame.top
    for y in frame.yticks:
        py = _f(frame.py(y))
        out.append(
            f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{py}" y2="{py}" '
            'stroke="#eaeef2"/>'
        )
        out.append(
            f'<text x="{frame.left - 6}" y="{py}" text-anchor="end" '
            f'dominant-baseline="middle">{_e(_label(y))}</text>'
        )
    for x in frame.xticks:
        px = _f(frame.px(x))
        out.append(f'<line x1="{px}" x2="{px}" y1="{bottom}" y2="{bottom + 4}" stroke="#57606a"/>')
        out.append(f'<text x="{px}" y="{bottom + 15}" text-anchor="middle">{_e(_label(x))}</text>')
    out.append(
        f'<path d="M{frame.left},{top}V{bottom}H{frame.width - frame.right}" '
        'fill="none" stroke="#57606a"/>'
    )
    mid_x = _f((frame.left + frame.width - frame.right) / 2)
    mid_y = _f((top + bottom) / 2)
    out.append(f'<text x="{mid_x}" y="{bottom + 32}" text-anchor="middle">{_e(x_label)}</text>')
    out.append(
        f'<text transform="translate(14 {mid_y}) rotate(-90)" text-anchor="middle">'
        f"{_e(y_label)}</text>"
    )
    return out


def _step_path(frame: _Frame, series: _Series) -> str:
    # Best-so-far only changes at an improvement: hold each value until the next point.
    (x, y), *rest = series.points
    parts = [f"M{_f(frame.px(x))},{_f(frame.py(y))}"]
    for x, y in rest:
        parts.append(f"H{_f(frame.px(x))}V{_f(frame.py(y))}")
    if series.end_x is not None and series.end_x > series.points[-1][0]:
        parts.append(f"H{_f(frame.px(series.end_x))}")
    return "".join(parts)


def _legend(frame: _Frame, series: Sequence[_Series]) -> list[str]:
    out: list[str] = []
    x = frame.left
    for i, s in enumerate(series):
        y = frame.plot_bottom + frame.axis_room + frame.legend_row * i + 4
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        out.append(
            f'<line x1="{x}" x2="{x + 18}" y1="{y}" y2="{y}" stroke="{s.color}" stroke-width="2"'
            f"{dash}/>"
        )
        out.append(f'<text x="{x + 24}" y="{y}" dominant-baseline="middle">{_e(s.label)}</text>')
    return out


def _line_chart(
    series: Sequence[_Series], title: str, x_label: str, y_label: str, integer_x: bool = False
) -> str:
    xs = [x for s in series for x, _ in s.points] + [s.end_x for s in series if s.end_x]
    ys = [y for s in series for _, y in s.points]
    # Headroom so the best value does not sit on the x axis, where its line would vanish.
    pad = (max(ys) - min(ys)) * 0.08
    low = min(ys) - pad
    if min(ys) >= 0:  # latencies: the padding never reaches below zero
        low = max(0.0, low)
    frame = _Frame(
        _ticks(0.0, max(xs) or 1.0, integer=integer_x),
        _ticks(low, max(ys) + pad),
        len(series),
    )
    body = _axes(frame, x_label, y_label)
    for s in series:
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        body.append(
            f'<path d="{_step_path(frame, s)}" fill="none" stroke="{s.color}" '
            f'stroke-width="2" stroke-linejoin="round"{dash}/>'
        )
        for x, y in s.points:
            body.append(
                f'<circle cx="{_f(frame.px(x))}" cy="{_f(frame.py(y))}" r="2.5" fill="{s.color}"/>'
            )
    body.extend(_legend(frame, series))
    return (
        f'<figure><figcaption>{_e(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" '
        f'width="{frame.width}" height="{frame.height}" '
        f'viewBox="0 0 {frame.width} {frame.height}" role="img" aria-label="{_e(title)}" '
        'font-size="11" font-family="system-ui, DejaVu Sans, sans-serif" fill="#1f2328">'
        f"<title>{_e(title)}</title>" + "".join(body) + "</svg></figure>"
    )


def _bar_chart(result: CaseResult) -> str:
    rows = [
        ("tuned", _finite(result.latency_ms)),
        ("eager", _finite(result.eager_ms)),
        ("baseline", _finite(result.baseline_ms)),
    ]
    width, row_h, left, label_w = 370, 28, 70, 110
    height = row_h * len(rows) + 30
    top_value = max((v for _, v in rows if v is not None), default=0.0)
    inner = width - left - label_w
    body: list[str] = []
    for i, (name, value) in enumerate(rows):
        y = 8 + i * row_h
        body.append(
            f'<text x="{left - 8}" y="{y + 10}" text-anchor="end" '
            f'dominant-baseline="middle">{name}</text>'
        )
        if value is None:
            body.append(
                f'<text x="{left + 4}" y="{y + 10}" dominant-baseline="middle" '
                'fill="#6e7781">not measured</text>'
            )
            continue
        # A bar of at least one pixel: interpreter runs put 0.005 ms beside 10 ms.
        bar = max(1.0, value / top_value * inner) if top_value > 0 else 1.0
        body.append(
            f'<rect x="{left}" y="{y}" width="{_f(bar)}" height="20" rx="2" '
            f'fill="{_BAR_COLORS[name]}"/>'
        )
        body.append(
            f'<text x="{_f(left + bar + 6)}" y="{y + 10}" dominant-baseline="middle">'
            f"{_e(_num(value))} ms</text>"
        )
    axis_y = 8 + len(rows) * row_h
    body.append(
        f'<path d="M{left},4V{axis_y}H{left + inner}" fill="none" stroke="#57606a"/>'
        f'<text x="{left}" y="{axis_y + 15}" text-anchor="middle">0</text>'
    )
    if top_value > 0:
        body.append(
            f'<text x="{left + inner}" y="{axis_y + 15}" text-anchor="middle">'
            f"{_e(_num(top_value))} ms</text>"
        )
    title = "latency: tuned vs eager vs baseline"
    return (
        f'<figure><figcaption>{title}</figcaption><svg xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{title}" font-size="11" '
        'font-family="system-ui, DejaVu Sans, sans-serif" fill="#1f2328">'
        f"<title>{title}</title>" + "".join(body) + "</svg></figure>"
    )


# ---------------------------------------------------------------------------- page parts


def _trace_points(result: CaseResult, axis: str) -> tuple[tuple[float, float], ...]:
    points: list[tuple[float, float]] = []
    for point in result.trace:
        if not isinstance(point, Mapping):
            continue
        x, y = _finite(point.get(axis)), _finite(point.get("best_ms"))
        if x is not None and y is not None:
            points.append((x, y))
    points.sort()
    return tuple(points)


def _series(group: Sequence[CaseResult], colors: Mapping[str, str], axis: str) -> list[_Series]:
    out: list[_Series] = []
    seen: dict[str, int] = {}
    for r in group:
        points = _trace_points(r, axis)
        if not points:
            continue
        name = r.strategy or "unnamed"
        seen[name] = seen.get(name, 0) + 1
        # Two runs of one strategy on one key (e.g. two tests sharing a shape) stay distinct.
        label = name if seen[name] == 1 else f"{name} #{seen[name]}"
        end = _finite(r.tune_seconds) if axis == "seconds" else float(r.configs_tested or 0)
        color = colors.get(name, _PALETTE[-1])
        out.append(_Series(label, color, points, end or None, dashed=seen[name] > 1))
    return out


def _secret(name: str) -> bool:
    return any(word in name.lower() for word in _SECRET_WORDS)


def _plain(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_plain(v)}" for k, v in sorted(value.items(), key=str))
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _llm_text(value: Any) -> str:
    if not value:
        return "offline"
    if isinstance(value, Mapping):
        # Never print a credential, even if a caller put one in the header by mistake.
        shown = {k: v for k, v in value.items() if not _secret(str(k)) and v not in (None, "")}
        return _plain(shown) or "offline"
    return str(value)


def _distinct(values: Iterable[str]) -> str:
    return ", ".join(sorted({v for v in values if v})) or "-"


def _header_rows(results: Sequence[CaseResult], header: Mapping[str, Any]) -> list[tuple[str, str]]:
    interpreter = bool(header.get("interpreter"))
    run = header.get("run") or (
        "CPU, Triton interpreter (TRITON_INTERPRET=1)" if interpreter else "GPU"
    )
    device = header.get("device") or _distinct(r.device for r in results)
    rows = [
        ("date", str(header.get("date") or "-")),
        ("run", _plain(run)),
        ("device", _plain(device)),
        ("timer", _distinct(r.timer for r in results)),
        ("toolchain", _plain(header.get("toolchain") or "-")),
        ("strategy", _plain(header.get("strategy") or "-")),
        ("effort", _plain(header.get("effort") or "-")),
    ]
    if "budget_s" in header:
        budget = header["budget_s"]
        rows.append(("budget per case", "none" if not budget else f"{_plain(budget)} s"))
    if "seed" in header:
        rows.append(("seed", _plain(header["seed"])))
    rows.append(("cache dir", _plain(header.get("cache_dir") or "-")))
    rows.append(("LLM", _llm_text(header.get("llm"))))
    for name in sorted(str(k) for k in header if k not in _KNOWN_HEADER and not _secret(str(k))):
        rows.append((name, _plain(header[name])))
    return rows


def _header_block(results: Sequence[CaseResult], header: Mapping[str, Any]) -> str:
    parts = []
    if header.get("interpreter"):
        parts.append(
            '<p class="banner">CPU run under the Triton interpreter: the flow (search, accuracy, '
            "store, baselines) ran for real, but its timings rank nothing.</p>"
        )
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in _header_rows(results, header))
    parts.append(f'<dl class="header">{items}</dl>')
    return "".join(parts)


def _verdict_class(r: CaseResult) -> str:
    """A failing case is red whatever its verdict (a missing baseline under --helion-strict)."""
    return "bad" if r.failed else _VERDICT_CLASS.get(r.verdict, "muted")


def _counts(results: Sequence[CaseResult]) -> str:
    tally: dict[tuple[str, str], int] = {}
    for r in results:
        key = (r.verdict, _verdict_class(r))
        tally[key] = tally.get(key, 0) + 1
    spans = []
    for (verdict, cls), n in sorted(tally.items()):
        # A verdict that fails only under --helion-strict says so.
        failing = " (failing)" if cls == "bad" and _VERDICT_CLASS.get(verdict) != "bad" else ""
        spans.append(f'<span class="{cls}">{n} {_e(verdict)}{failing}</span>')
    return f'<p class="counts"><strong>{len(results)} case(s):</strong> {"".join(spans)}</p>'


_COLUMNS = (
    ("case", "text"),
    ("origin", "text"),
    ("strategy", "text"),
    ("configs", "number"),
    ("tune s", "number"),
    ("latency ms", "number"),
    ("eager ms", "number"),
    ("speed-up vs eager", "number"),
    ("baseline ms", "number"),
    ("change vs baseline", "number"),
    ("verdict", "text"),
)


def _summary_table(results: Sequence[CaseResult]) -> str:
    heads = "".join(
        f'<th data-type="{kind}" class="{"num" if kind == "number" else "text"}">'
        f'<button type="button">{_e(name)}</button></th>'
        for name, kind in _COLUMNS
    )
    rows = []
    for i, r in enumerate(results):
        tuned = r.origin == "tuned"
        latency, eager, base = _finite(r.latency_ms), _finite(r.eager_ms), _finite(r.baseline_ms)
        speedup = eager / latency if latency and eager else None
        # The gate judges the kernel/eager ratio's change (a slower card slows both): show its
        # number where it judged, the bare latency change only without it.
        judged = _finite((r.gate or {}).get("change"))
        if judged is not None:
            change: float | None = judged * 100
        else:
            change = (latency / base - 1) * 100 if latency and base else None
        origin = _origin(r)

        def num(value: float | None, text: str) -> str:
            return f'<td class="num" data-value="{_value_attr(value)}">{_e(text)}</td>'

        cells = [
            f'<td class="case"><a href="#case-{i + 1}">{_e(r.nodeid)}</a></td>',
            f"<td>{_e(origin)}</td>",
            f"<td>{_e(r.strategy or '-')}</td>",
            num(
                float(r.configs_tested) if tuned else None, str(r.configs_tested) if tuned else "-"
            ),
            num(
                _finite(r.tune_seconds) if tuned else None,
                f"{r.tune_seconds:.2f}" if tuned else "-",
            ),
            num(latency, _ms(latency)),
            num(eager, _ms(eager)),
            num(speedup, "-" if speedup is None else f"{_num(speedup, 3)}x"),
            num(base, _ms(base)),
            num(change, "-" if change is None else f"{change:+.1f}%"),
            f'<td class="verdict {_verdict_class(r)}">{_e(r.verdict)}</td>',
        ]
        rows.append(f'<tr data-index="{i}">' + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table id="summary"><thead><tr>{heads}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _flat(value: Any) -> bool:
    return not isinstance(value, dict | list) or (
        isinstance(value, list) and all(not isinstance(v, dict | list) for v in value)
    )


def _pretty(value: Any, indent: str = "") -> str:
    # A config reads best one key per line with its list on that line, nested lists too
    # ("loop_orders": [[0, 1]]): a tile size is then found at a glance.
    if isinstance(value, dict) and value:
        inner = indent + "  "
        items = [
            f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_pretty(value[k], inner)}"
            for k in sorted(value, key=str)
        ]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and not all(_flat(v) for v in value):
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + _pretty(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(
        value, sort_keys=True, separators=(", ", ": "), default=str, ensure_ascii=False
    )


def _case_section(
    index: int,
    result: CaseResult,
    group: Sequence[CaseResult],
    colors: Mapping[str, str],
    anchors: Mapping[int, int],
) -> str:
    r = result
    verdict_class = _verdict_class(r)
    meta = [
        ("kernel", r.kernel or "-"),
        ("origin", _origin(r)),
        ("strategy", r.strategy or "-"),
        ("key", r.key_id or "-"),
        ("specialization", str(r.key.get("specialization", "-"))),
        ("seed source", r.seed_source or "-"),
        ("plugin overhead", f"{r.overhead_ms:.1f} ms"),
    ]
    if r.worker:
        meta.append(("worker", r.worker))
    parts = [
        f'<section class="case" id="case-{index + 1}">',
        f'<h3>{_e(r.nodeid)} <span class="verdict {verdict_class}">{_e(r.verdict)}</span></h3>',
        '<p class="meta">'
        + "".join(f"<span>{_e(k)}: <code>{_e(v)}</code></span>" for k, v in meta)
        + "</p>",
    ]
    if r.message and (r.failed or r.verdict not in _VERDICT_CLASS):
        parts.append(f'<p class="message">{_e(r.message)}</p>')
    elif r.message:
        parts.append(f'<p class="meta">message: {_e(r.message)}</p>')
    if r.stale and r.stale_reason:
        parts.append(f'<p class="meta">stale: {_e(r.stale_reason)}</p>')

    parts.append('<div class="plots">')
    if _trace_points(r, "seconds") or _trace_points(r, "configs"):
        by_time = _series(group, colors, "seconds")
        by_count = _series(group, colors, "configs")
        if by_time:
            parts.append(_line_chart(by_time, "best latency vs time", "seconds", "best ms"))
        if by_count:
            parts.append(
                _line_chart(
                    by_count,
                    "best latency vs configs tested",
                    "configs tested",
                    "best ms",
                    integer_x=True,
                )
            )
    else:
        others = [
            f'<a href="#case-{anchors[id(o)] + 1}">{_e(o.strategy or o.nodeid)}</a>'
            for o in group
            if o is not r and _trace_points(o, "seconds")
        ]
        also = f" The same key was searched here by: {', '.join(others)}." if others else ""
        parts.append(f'<p class="empty">no search in this run.{also}</p>')
    measured = (r.latency_ms, r.eager_ms, r.baseline_ms)
    if any(_finite(v) is not None for v in measured):
        parts.append(_bar_chart(r))
    else:
        parts.append('<p class="empty">no latency measured.</p>')
    parts.append("</div>")

    failures = {str(k): v for k, v in sorted(r.failures.items(), key=lambda kv: str(kv[0]))}
    failed_total = sum(v for v in failures.values() if isinstance(v, int))
    failure_text = (
        ", ".join(f"{k}: {v}" for k, v in failures.items())
        if failed_total
        else "none" + (f" ({', '.join(failures)} all 0)" if failures else "")
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in r.notes) or "<li>none</li>"
    parts.append(
        '<div class="details"><div><h4>chosen config</h4>'
        f"<pre>{_e(_pretty(r.config))}</pre></div>"
        f"<div><h4>failed candidates</h4><p>{_e(failure_text)}</p>"
        f"<h4>notes</h4><ul>{notes}</ul></div></div>"
    )
    parts.append("</section>")
    return "".join(parts)


def _sorted(results: Sequence[CaseResult]) -> list[CaseResult]:
    # The order xdist workers finish in must not change the page: sort like the JSON report.
    return sorted(results, key=lambda r: (r.nodeid, r.strategy, r.key_id))


def _origin(r: CaseResult) -> str:
    """Where the config came from, flagged when stale or from an interrupted search."""
    flags = [f for f, on in (("stale", r.stale), ("partial", r.partial)) if on]
    return (r.origin or "-") + "".join(f" ({f})" for f in flags)


def render_html(results: Sequence[CaseResult], header: Mapping[str, Any]) -> str:
    """The whole report page; the same input gives the same bytes (the date comes from ``header``)."""
    ordered = _sorted(results)
    strategies = sorted({r.strategy or "unnamed" for r in ordered})
    colors = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(strategies)}
    anchors = {id(r): i for i, r in enumerate(ordered)}
    groups: dict[str, list[CaseResult]] = {}
    for r in ordered:
        if r.key_id:
            groups.setdefault(r.key_id, []).append(r)

    body = [
        "<h1>pytest-helion-tune report</h1>",
        _header_block(ordered, header),
        "<h2>Summary</h2>",
    ]
    if not ordered:
        body.append('<p class="empty">No cases: this run tuned or checked no @tune_case test.</p>')
    else:
        body.append(_counts(ordered))
        body.append(_summary_table(ordered))
        body.append("<h2>Cases</h2>")
        for i, r in enumerate(ordered):
            group = groups.get(r.key_id, [r]) if r.key_id else [r]
            body.append(_case_section(i, r, group, colors, anchors))

    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>pytest-helion-tune report</title>"
        f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n"
        f"<script>{_JS}</script>\n</body></html>\n"
    )


def write_html(path: Path, results: Sequence[CaseResult], header: Mapping[str, Any]) -> None:
    """Writes the report page to ``path`` atomically (a reader never sees half a page)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, render_html(results, header))


def load_report(path: Path) -> tuple[list[CaseResult], dict[str, Any]]:
    """Reads a JSON report written by ``--helion-report`` back into results and header."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    results = [CaseResult.from_json(raw) for raw in doc.get("cases", [])]
    return results, dict(doc.get("session", {}))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pytest_helion_tune.report_html REPORT.json OUT.html``: render a saved run."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print(
            "usage: python -m pytest_helion_tune.report_html REPORT.json OUT.html", file=sys.stderr
        )
        return 2
    source, target = Path(args[0]), Path(args[1])
    results, header = load_report(source)
    if "date" not in header:
        # A JSON report carries no date; its file time is when that run ended.
        stamp = datetime.datetime.fromtimestamp(source.stat().st_mtime, datetime.UTC)
        header["date"] = stamp.strftime("%Y-%m-%d %H:%M UTC")
    write_html(target, results, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
