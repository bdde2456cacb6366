"""The HTML report: escaping, the sortable table, the SVG plots, and a real headless Chromium.

Results are built by hand here; the Chromium test drives the page over the DevTools protocol.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from pytest_helion_tune.report import write_json
from pytest_helion_tune.report_html import load_report, main, render_html, write_html
from pytest_helion_tune.results import CaseResult

HOSTILE = "tests/test_x.py::test_k[<script>window.__pwned=1</script>&'\"]"
HEADER: dict[str, Any] = {
    "strategy": "llm-seeded",
    "effort": "quick",
    "budget_s": 300.0,
    "seed": 0,
    "cache_dir": "/repo/.helion-tune",
    "interpreter": False,
    "toolchain": {"helion": "1.5.0", "torch": "2.9.0+cu128", "triton": "3.5.0", "cuda": "12.8"},
    "llm": {"provider": "openai-chat", "model": "qwen2.5-coder", "api_base": "http://gpu:8000/v1"},
    "date": "2025-06-01 12:00 UTC",
}


def trace(
    n: int, start_ms: float, end_ms: float, seconds: float, seed: int
) -> list[dict[str, float]]:
    """A best-so-far trace: ``n`` improvements from ``start_ms`` down to ``end_ms``."""
    rng = random.Random(seed)
    configs = sorted(rng.sample(range(1, 3 * n), n))
    times = sorted(round(rng.uniform(0.5, seconds), 2) for _ in range(n))
    steps = sorted((rng.random() for _ in range(n)), reverse=True)
    span = start_ms - end_ms
    best = [end_ms + span * (s - steps[-1]) / (steps[0] - steps[-1]) for s in steps]
    return [
        {"seconds": t, "configs": c, "best_ms": round(b, 5)}
        for t, c, b in zip(times, configs, best, strict=True)
    ]


def results() -> list[CaseResult]:
    key = {"kernel": "kernels.softmax", "specialization": "x=float16[4096,8192]", "device": "H100"}
    return [
        CaseResult(
            nodeid="tests/test_softmax.py::test_softmax[4096-8192]",
            kernel="kernels.softmax",
            key=key,
            key_id="a1b2c3d4e5f6",
            origin="tuned",
            strategy="lfbo",
            configs_tested=120,
            tune_seconds=96.4,
            latency_ms=0.1874,
            eager_ms=0.2511,
            baseline_ms=0.1931,
            verdict="improved",
            config={"block_sizes": [1, 8192], "num_warps": 16, "num_stages": 1},
            seed_source="default config",
            failures={"accuracy": 2, "compile": 5, "worker": 0},
            trace=trace(40, 0.4102, 0.1874, 90.0, 1),
            notes=["dropped seed key 'reduction_fusion' (helion 1.5.0 rejects it)"],
            device="NVIDIA H100 80GB HBM3",
            timer="cuda-events",
            overhead_ms=12.5,
        ),
        CaseResult(
            nodeid="tests/test_softmax.py::test_softmax[4096-8192]",
            kernel="kernels.softmax",
            key=key,
            key_id="a1b2c3d4e5f6",
            origin="tuned",
            strategy="random",
            configs_tested=150,
            tune_seconds=120.0,
            latency_ms=0.2033,
            eager_ms=0.2511,
            baseline_ms=0.1931,
            verdict="pass",
            config={"block_sizes": [2, 4096], "num_warps": 8, "num_stages": 2},
            trace=trace(12, 0.5233, 0.2033, 110.0, 2),
            device="NVIDIA H100 80GB HBM3",
            timer="cuda-events",
        ),
        CaseResult(
            nodeid="tests/test_rms_norm.py::test_rms_norm[2048-4096]",
            kernel="kernels.rms_norm",
            key_id="0f0f0f0f0f0f",
            origin="cache",
            strategy="",
            latency_ms=0.0612,
            eager_ms=0.0902,
            baseline_ms=0.0511,
            verdict="regression",
            message="tests/test_rms_norm.py::test_rms_norm[2048-4096]: 0.0612 ms is 19.8% slower "
            "than the baseline 0.0511 ms (tolerance 5%)",
            stale=True,
            stale_reason="source hash changed (kernel edited)",
            config={"block_sizes": [4], "num_warps": 4},
            device="NVIDIA H100 80GB HBM3",
            timer="cuda-events",
            overhead_ms=3.1,
        ),
        CaseResult(
            nodeid="tests/test_matmul.py::test_matmul[1024-1024-1024]",
            kernel="kernels.matmul",
            key_id="99aa88bb77cc",
            origin="tuned",
            strategy="pattern",
            configs_tested=35,
            tune_seconds=41.2,
            latency_ms=0.0318,
            eager_ms=0.0291,
            verdict="missing-baseline",
            trace=trace(5, 0.0702, 0.0318, 40.0, 3),
            device="NVIDIA H100 80GB HBM3",
            timer="cuda-events",
        ),
        CaseResult(
            nodeid=HOSTILE,
            kernel="kernels.k<b>",
            key_id="1234567890ab",
            origin="default",
            strategy="<i>seeded</i>",
            verdict="error",
            message='compile failed: </pre><img src=x onerror="window.__pwned=1"> & more',
            config={"note": "</pre><script>window.__pwned=1</script>"},
            notes=["<b>bold?</b> & 'quoted'"],
            failures={"compile": 1},
            device="NVIDIA H100 80GB HBM3",
        ),
        CaseResult(
            nodeid="tests/test_add.py::test_add[skipped]",
            kernel="kernels.add",
            verdict="skipped",
        ),
    ]


class Tags(HTMLParser):
    """Every start tag and attribute the browser would see, with the text of <script>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    tags.close()
    return tags


def sections(page: str) -> list[str]:
    return re.findall(r'<section class="case" id="case-\d+">.*?</section>', page, flags=re.S)


def section_of(page: str, nodeid_html: str, strategy: str) -> str:
    for section in sections(page):
        if nodeid_html in section and f"strategy: <code>{strategy}</code>" in section:
            return section
    raise AssertionError(f"no section for {nodeid_html} / {strategy}")


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(results(), HEADER)


def test_strings_from_results_are_inert(page: str) -> None:
    tags = parse(page)
    assert [tag for tag, _ in tags.tags].count("script") == 1  # the page's own, nothing else
    assert "__pwned" not in "".join(tags.scripts)
    assert "img" not in {tag for tag, _ in tags.tags}
    assert not [name for _, attrs in tags.tags for name in attrs if name.startswith("on")]
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;&amp;&#x27;&quot;" in page
    assert "&lt;/pre&gt;&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in page
    assert "&lt;i&gt;seeded&lt;/i&gt;" in page and "<i>" not in page


def test_page_allows_only_its_own_script_and_style(page: str) -> None:
    csp = next(a["content"] for t, a in parse(page).tags if a.get("http-equiv"))
    assert csp is not None
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp
    assert "unsafe-inline" not in csp
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from the network
    assert " style=" not in page  # inline style attributes would be blocked by the policy


def test_summary_table_is_sortable_and_numeric(page: str) -> None:
    tags = parse(page)
    heads = [a for t, a in tags.tags if t == "th"]
    assert len(heads) == 11
    types = [a["data-type"] for a in heads]
    assert types == ["text"] * 3 + ["number"] * 7 + ["text"]
    assert [t for t, _ in tags.tags].count("button") == 11
    assert 'id="summary"' in page and "aria-sort" in "".join(tags.scripts)
    # Numeric cells carry the exact float for sorting, whatever the displayed text rounds to.
    values = [a["data-value"] or "" for t, a in tags.tags if t == "td" and "data-value" in a]
    assert repr(0.1874) in values and repr(0.0612) in values
    for value in values:
        assert value == "" or float(value) == float(value)  # a number or "missing"
    rows = [a for t, a in tags.tags if t == "tr" and "data-index" in a]
    assert [r["data-index"] for r in rows] == [str(i) for i in range(6)]


def test_summary_row_values(page: str) -> None:
    row = re.search(
        r'<tr data-index="\d+"><td class="case"><a href="#case-\d+">'
        r"tests/test_rms_norm.py.*?</tr>",
        page,
    )
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0))
    assert cells[1:] == [
        "cache (stale)",
        "-",
        "-",
        "-",
        "0.0612",
        "0.0902",
        "1.47x",
        "0.0511",
        "+19.8%",
        "regression",
    ]


def test_verdict_colours(page: str) -> None:
    verdicts = {v: c for c, v in re.findall(r'<td class="verdict (\w+)">([\w-]+)</td>', page)}
    assert verdicts == {
        "improved": "good",
        "pass": "good",
        "regression": "bad",
        "error": "bad",
        "missing-baseline": "muted",
        "skipped": "muted",
    }


def test_one_svg_per_plot(page: str) -> None:
    traced = {(r.nodeid, r.strategy) for r in results() if r.trace}
    assert len(traced) == 3
    # Per traced case: two convergence charts and one bar chart; the cached case has bars only;
    # the error and the skipped case measured nothing, so they get no chart at all.
    assert page.count("<svg") == 3 * 3 + 1
    assert page.count("no latency measured") == 2
    assert page.count("<svg") == page.count("</svg>") == page.count("<figure>")
    for section in sections(page):
        figures = re.findall(r"<figure>.*?</figure>", section, flags=re.S)
        assert all(f.count("<svg") == 1 for f in figures)


def test_convergence_plots_have_axes_ticks_and_step_lines(page: str) -> None:
    section = section_of(page, "test_matmul[1024-1024-1024]", "pattern")
    time_chart, count_chart, bar_chart = re.findall(r"<svg.*?</svg>", section, flags=re.S)
    assert ">seconds</text>" in time_chart and ">configs tested</text>" in count_chart
    assert ">best ms</text>" in time_chart
    for chart in (time_chart, count_chart):
        assert len(re.findall(r'text-anchor="end" dominant-baseline="middle">[\d.]+<', chart)) >= 3
        line = re.search(r'<path d="(M[^"]+)" fill="none" stroke="#\w+" stroke-width="2"', chart)
        assert line is not None
        # A step line: only horizontal and vertical moves after the first point.
        assert re.fullmatch(r"M[\d.]+,[\d.]+((H[\d.]+V[\d.]+)|H[\d.]+)+", line.group(1))
        assert chart.count("<circle") == 5
    assert ">configs tested</text>" in count_chart
    assert "not measured" in bar_chart and "0.0318 ms" in bar_chart


def test_case_without_trace_says_no_search(page: str) -> None:
    section = section_of(page, "test_rms_norm[2048-4096]", "-")
    assert "no search in this run" in section
    assert section.count("<svg") == 1  # the latency bars, no empty plot
    assert "source hash changed (kernel edited)" in section
    assert 'class="message"' in section and "19.8% slower" in section


def test_several_strategies_share_one_plot_with_a_legend(page: str) -> None:
    section = section_of(page, "test_softmax[4096-8192]", "lfbo")
    charts = re.findall(r"<svg.*?</svg>", section, flags=re.S)[:2]
    for chart in charts:
        lines = re.findall(r'<path d="M[^"]+" fill="none" stroke="(#\w+)" stroke-width="2"', chart)
        assert len(set(lines)) == 2
        assert ">lfbo</text>" in chart and ">random</text>" in chart
        legend_keys = re.findall(r'<line [^>]*stroke="(#\w+)" stroke-width="2"/>', chart)
        assert sorted(legend_keys) == sorted(lines)
    # The random run's own section shows the same comparison, in the same colours.
    other = section_of(page, "test_softmax[4096-8192]", "random")
    assert re.findall(r"<svg.*?</svg>", other, flags=re.S)[:2] == charts


def test_two_runs_of_one_strategy_on_one_key_stay_distinct() -> None:
    def run(nodeid: str, seed: int) -> CaseResult:
        return CaseResult(
            nodeid=nodeid,
            key_id="same",
            origin="tuned",
            strategy="lfbo",
            configs_tested=20,
            tune_seconds=9.0,
            latency_ms=1.0,
            trace=trace(6, 2.0, 1.0, 8.0, seed),
            verdict="missing-baseline",
            message="no baseline yet: run --helion-update-baselines",
        )

    text = render_html([run("t.py::a", 1), run("t.py::b", 2)], {})
    chart = re.findall(r"<svg.*?</svg>", section_of(text, "t.py::a", "lfbo"), flags=re.S)[0]
    assert ">lfbo</text>" in chart and ">lfbo #2</text>" in chart
    assert chart.count('stroke-dasharray="5 3"') == 2  # the second line and its legend key
    # A message on a verdict that does not fail is shown, but not as a failure.
    assert "message: no baseline yet" in text and 'class="message"' not in text


def test_case_details(page: str) -> None:
    section = section_of(page, "test_softmax[4096-8192]", "lfbo")
    assert "&quot;block_sizes&quot;: [1, 8192]" in section  # pretty JSON, lists on one line
    assert "accuracy: 2, compile: 5, worker: 0" in section
    assert "dropped seed key" in section
    assert 'class="message"' not in section  # a passing verdict shows no failure message


def test_header_block(page: str) -> None:
    assert "2025-06-01 12:00 UTC" in page
    assert "helion 1.5.0, torch 2.9.0+cu128, triton 3.5.0" in page
    assert "openai-chat" in page and "http://gpu:8000/v1" in page
    assert "NVIDIA H100 80GB HBM3" in page and "/repo/.helion-tune" in page
    assert "Triton interpreter" not in page


def test_header_hides_credentials_and_says_offline() -> None:
    llm = {"provider": "anthropic", "api_key": "sk-secret-123", "model": "claude"}
    assert "sk-secret-123" not in render_html(results(), {**HEADER, "llm": llm})
    offline = {k: v for k, v in HEADER.items() if k != "llm"}
    offline["interpreter"] = True
    text = render_html(results(), offline)
    assert "<dt>LLM</dt><dd>offline</dd>" in text
    assert "CPU, Triton interpreter" in text and "timings rank nothing" in text


def test_output_is_deterministic() -> None:
    shuffled = results()
    random.Random(7).shuffle(shuffled)
    assert render_html(results(), HEADER) == render_html(shuffled, HEADER)
    no_date = {k: v for k, v in HEADER.items() if k != "date"}
    assert render_html(results(), no_date) == render_html(results(), no_date)


def test_empty_results_render_a_page_saying_no_cases() -> None:
    text = render_html([], HEADER)
    assert "No cases" in text
    assert "<table" not in text and "<svg" not in text
    assert parse(text).tags[0][0] == "html"


def test_degenerate_traces_still_draw() -> None:
    one_point = CaseResult(
        nodeid="t.py::one",
        key_id="k",
        origin="tuned",
        strategy="lfbo",
        configs_tested=1,
        latency_ms=1.0,
        trace=[{"seconds": 0.0, "configs": 1, "best_ms": 1.0}],
    )
    junk = CaseResult(
        nodeid="t.py::junk",
        key_id="j",
        origin="tuned",
        strategy="lfbo",
        trace=[{"seconds": 1.0, "configs": 1, "best_ms": float("inf")}, {"best_ms": "x"}],  # type: ignore[dict-item]
    )
    text = render_html([one_point, junk], {})
    assert not re.search(r"\b(nan|inf)\b", text.lower())
    assert section_of(text, "t.py::one", "lfbo").count("<svg") == 3
    junk_section = section_of(text, "t.py::junk", "lfbo")
    assert "no search in this run" in junk_section and "<svg" not in junk_section


def test_write_html_and_render_a_saved_json_report(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "report.html"
    write_html(target, results(), HEADER)
    assert target.read_text(encoding="utf-8") == render_html(results(), HEADER)
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temp file left

    saved = tmp_path / "report.json"
    write_json(saved, results(), {k: v for k, v in HEADER.items() if k != "date"})
    loaded, header = load_report(saved)
    assert [r.nodeid for r in loaded] == sorted(r.nodeid for r in results())
    assert header["toolchain"] == HEADER["toolchain"] and "date" not in header
    assert main([str(saved), str(tmp_path / "from_json.html")]) == 0
    text = (tmp_path / "from_json.html").read_text(encoding="utf-8")
    assert re.search(r"<dt>date</dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d UTC</dd>", text)
    assert main([]) == 2


# ---------------------------------------------------------------------------- Chromium


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class DevTools:
    """A minimal DevTools-protocol client over a stdlib WebSocket (text frames, no extensions)."""

    def __init__(self, ws_url: str, timeout: float = 20.0) -> None:
        parts = urlsplit(ws_url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n", 1)[0], head
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("DevTools closed the connection")
        self.buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)  # clients must mask every frame (RFC 6455)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _message(self) -> dict[str, Any]:
        data = b""
        while True:
            first, second = self._take(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._take(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._take(8))
            mask = self._take(4) if second & 0x80 else b""
            payload = self._take(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 8:
                raise ConnectionError("DevTools closed the connection")
            if opcode == 9:
                self._send_frame(10, payload)
                continue
            data += payload
            if first & 0x80 and opcode in (0, 1, 2):
                message: dict[str, Any] = json.loads(data)
                return message

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self._send_frame(
            1, json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        )
        while True:
            message = self._message()
            if message.get("id") == self.next_id:
                assert "error" not in message, (method, message["error"])
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(self._message())
        raise TimeoutError(method)

    def evaluate(self, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in reply, reply
        return reply["result"].get("value")

    def errors(self) -> list[str]:
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(json.dumps(params["exceptionDetails"])[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(json.dumps(params.get("args"))[:500])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(params["entry"].get("text", ""))
        return found

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no chromium binary on PATH (apt-get install -y chromium)")
    profile = tmp_path / "profile"
    log = (tmp_path / "chromium.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--window-size=1280,2000",
            "about:blank",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # Port 0 lets Chromium pick a free port; it writes the one it took into the profile.
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"chromium did not start: {(tmp_path / 'chromium.log').read_text()}")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            targets = json.load(reply)
        page = next(t for t in targets if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        try:
            yield tools
        finally:
            tools.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def load(browser: DevTools, path: Path, width: int = 1280, height: int = 2000) -> None:
    for domain in ("Page", "Runtime", "Log"):
        browser.call(f"{domain}.enable")
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    browser.call("Page.navigate", url=path.as_uri())
    browser.wait_for("Page.loadEventFired")


def screenshot(browser: DevTools, target: Path, full_page: bool = False) -> None:
    params: dict[str, Any] = {"format": "png"}
    if full_page:
        size = browser.call("Page.getLayoutMetrics")["cssContentSize"]
        params["captureBeyondViewport"] = True
        params["clip"] = {
            "x": 0,
            "y": 0,
            "width": size["width"],
            "height": size["height"],
            "scale": 1,
        }
    target.write_bytes(base64.b64decode(browser.call("Page.captureScreenshot", **params)["data"]))


SORT = """(() => {
  const th = [...document.querySelectorAll('#summary th')]
    .find((cell) => cell.textContent.trim() === %s);
  th.querySelector('button').click();
  return [...document.querySelectorAll('#summary tbody tr')]
    .map((row) => [row.cells[%d].dataset.value ?? row.cells[%d].textContent, th.getAttribute('aria-sort')]);
})()"""


@pytest.mark.slow
def test_page_runs_in_headless_chromium(browser: DevTools, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    write_html(page, results(), HEADER)
    load(browser, page)

    assert browser.evaluate("document.documentElement.dataset.ready") == "1"
    assert browser.evaluate("typeof window.__pwned") == "undefined"
    assert browser.evaluate("document.querySelectorAll('svg').length") == 10
    assert browser.evaluate("document.querySelectorAll('script, img').length") == 1

    # Clicking "latency ms" sorts numerically (0.0318 < 0.0612 < 0.1874), missing values last.
    ascending = browser.evaluate(SORT % ('"latency ms"', 5, 5))
    values = [v for v, _ in ascending]
    numbers = [float(v) for v in values if v]
    assert numbers == sorted(numbers) and values[len(numbers) :] == [""] * (6 - len(numbers))
    assert {state for _, state in ascending} == {"ascending"}
    descending = browser.evaluate(SORT % ('"latency ms"', 5, 5))
    numbers = [float(v) for v, _ in descending if v]
    assert numbers == sorted(numbers, reverse=True) and descending[-1][0] == ""
    by_case = [v for v, _ in browser.evaluate(SORT % ('"case"', 0, 0))]
    assert by_case == sorted(by_case)

    png = tmp_path / "report.png"
    screenshot(browser, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    assert browser.errors() == []


def test_partial_and_stale_origins_are_flagged() -> None:
    from pytest_helion_tune.report_html import render_html
    from pytest_helion_tune.results import CaseResult

    page = render_html(
        [
            CaseResult(nodeid="t.py::test_a", origin="cache", partial=True),
            CaseResult(nodeid="t.py::test_b", origin="default", stale=True),
        ],
        {},
    )
    assert "cache (partial)" in page and "default (stale)" in page


def _summary_cells(page: str) -> list[str]:
    row = re.search(r'<tr data-index="0">.*?</tr>', page)
    assert row is not None
    return re.findall(r"<td([^>]*)>(.*?)</td>", row.group(0))


def test_change_column_shows_the_gates_change_where_it_judged() -> None:
    """The gate judges the change of kernel/eager (a card at another clock slows both): the
    HTML shows that number beside the verdict, as the terminal summary does, not the bare
    latency change that contradicts it."""
    from pytest_helion_tune import gate
    from pytest_helion_tune.report import summary_lines

    def measured(kernel: float, eager: float) -> gate.Measurement:
        return gate.Measurement(
            tuple(kernel * (1 + 0.001 * ((i % 3) - 1)) for i in range(30)), (eager,) * 30, 0.1
        )

    base = gate.record(
        measured(1.0, 1.0),
        nodeid="t::a",
        specialization="s",
        device="d",
        source_hash="h",
        config={},
        toolchain={},
    )
    verdict = gate.judge(base, lambda: measured(1.2, 1.2))  # both 20% slower
    r = CaseResult(
        nodeid="t::a",
        origin="cache",
        latency_ms=verdict.now.kernel_median,
        eager_ms=verdict.now.eager_median,
        baseline_ms=base.latency_ms,
        gate=verdict.to_json(),
        verdict=verdict.verdict,
    )
    cells = _summary_cells(render_html([r], {}))
    assert verdict.verdict == "pass" and cells[9][1] == "+0.0%"
    assert "+0.0%" in summary_lines([r])[1]
    no_gate = CaseResult(nodeid="t::a", origin="cache", latency_ms=1.2, baseline_ms=1.0)
    assert _summary_cells(render_html([no_gate], {}))[9][1] == "+20.0%"


def test_a_case_failing_under_strict_is_shown_as_failing() -> None:
    r = CaseResult(nodeid="t::a", origin="cache", verdict="missing-baseline", must_fail=True)
    page = render_html([r], {})
    assert 'class="verdict bad"' in _summary_cells(page)[10][0]
    assert '<span class="bad">1 missing-baseline (failing)</span>' in page
    passing = render_html(
        [CaseResult(nodeid="t::a", origin="cache", verdict="missing-baseline")], {}
    )
    assert "(failing)" not in passing and 'class="verdict bad"' not in passing


def test_best_so_far_axis_never_goes_below_zero() -> None:
    """A first candidate 100x slower than the best: the padding under the best stops at 0."""
    r = CaseResult(
        nodeid="t::a",
        origin="tuned",
        strategy="seeded",
        latency_ms=0.1,
        configs_tested=2,
        trace=[
            {"seconds": 1.0, "configs": 1, "best_ms": 10.0},
            {"seconds": 2.0, "configs": 2, "best_ms": 0.1},
        ],
    )
    page = render_html([r], {})
    assert not re.search(r">-\d", page), "a negative tick label"
