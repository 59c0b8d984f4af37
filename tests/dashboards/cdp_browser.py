"""A minimal headless-Chromium driver over the DevTools protocol (websocket-client, no selenium).

Opens a file, records console errors, uncaught exceptions and every network request, waits for
plotly to finish drawing, reports per chart what it drew, and takes screenshots.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-port=0"]

# Per chart: what plotly holds (data, _fullData) and what its SVG shows: trace groups and drawn
# marks. A bar or marker counts when it covers an area (plotly keeps a zero bar as a flat path), a
# line when it has length.
CHARTS_JS = """
(() => Array.from(document.querySelectorAll('figure.chart')).map(fig => {
  const id = fig.dataset.plot, gd = document.getElementById(id);
  const q = sel => gd ? Array.from(gd.querySelectorAll(sel)) : [];
  const box = p => { try { return p.getBBox(); } catch (e) { return {width: 0, height: 0}; } };
  const areas = q('g.trace g.point > path, g.trace path.point').filter(p => {
      const b = box(p); return b.width > 0 && b.height > 0; }).length;
  const lines = q('g.trace path.js-line').filter(p => { const b = box(p); return b.width + b.height > 0; }).length;
  const full = gd && gd._fullData ? gd._fullData.filter(t => t.visible === true) : [];
  return {kind: fig.dataset.chart, id: id, svg: q('svg.main-svg').length > 0,
          data: gd && gd.data ? gd.data.length : 0, visible: full.length,
          traces: q('g.trace').length, marks: areas + lines};
}))()
"""
NODATA_JS = "Array.from(document.querySelectorAll('.nodata')).map(e => e.dataset.chart)"
READY_JS = """
(() => { const figs = Array.from(document.querySelectorAll('figure.chart'));
  return document.readyState === 'complete' && figs.every(f => {
    const gd = document.getElementById(f.dataset.plot);
    return gd && gd._fullLayout && gd.querySelector('svg.main-svg'); }); })()
"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, binary: str, width: int = 1400, height: int = 1000) -> None:
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="golfprof-chromium-")
        self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = self._port()
        page = self._page_ws(port)
        self.ws = websocket.create_connection(page, timeout=30, suppress_origin=True)
        self._id = 0
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _port(self) -> int:
        marker = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode} before listening")
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port in 30 s")

    @staticmethod
    def _page_ws(port: int) -> str:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.05)
        raise RuntimeError("chromium opened no page")

    def _event(self, msg: dict[str, Any]) -> None:
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.console_errors.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            self.console_errors.append(p["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            self.requests.append(p.get("request", {}).get("url", ""))

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def eval(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"page script failed: {r['exceptionDetails'].get('text')}")
        return r["result"].get("value")

    def open(self, path: Path, timeout: float = 45) -> None:
        """Navigate and wait until every chart has a plotly layout and an SVG."""
        self.call("Page.navigate", url=path.resolve().as_uri())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.eval(READY_JS):
                self.eval("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
                return
            time.sleep(0.1)
        raise TimeoutError(f"{path}: plotly did not finish drawing in {timeout:.0f} s")

    def charts(self) -> list[dict[str, Any]]:
        return self.eval(CHARTS_JS)

    def nodata(self) -> list[str]:
        return self.eval(NODATA_JS)

    def screenshot(self, out: Path, top: int = 0, height: int | None = None) -> Path:
        """The whole page, or ``height`` CSS pixels of it from ``top``, as PNG.

        The viewport is first grown to the whole page and the charts given time to settle: a
        capture beyond the viewport resizes the window mid-shot, and responsive plots re-layout.
        """
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        width, full = int(size["width"]), int(size["height"])
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=full, deviceScaleFactor=1,
                  mobile=False)
        self.eval("new Promise(r => setTimeout(() => requestAnimationFrame(() => requestAnimationFrame(r)), 300))")
        h = min(full - top, height) if height else full - top
        shot = self.call("Page.captureScreenshot", format="png",
                         clip={"x": 0, "y": top, "width": width, "height": h, "scale": 1})
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height, deviceScaleFactor=1,
                  mobile=False)
        out.write_bytes(base64.b64decode(shot["data"]))
        return out

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    """Screenshot a dashboard page, e.g. the README's:
    python tests/dashboards/cdp_browser.py report.html docs/img/dashboard_h100.png --width 1280 --until section-trend
    """
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("page", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--until", help="element id: the shot ends just above it")
    args = ap.parse_args()
    binary = chromium()
    if binary is None:
        raise SystemExit("chromium is not installed")
    with Browser(binary, width=args.width) as b:
        b.open(args.page)
        if b.console_errors:
            raise SystemExit(f"console errors: {b.console_errors}")
        height = None
        if args.until:
            height = int(b.eval(f"document.getElementById({json.dumps(args.until)}).getBoundingClientRect().top"
                                " + window.scrollY")) - 10
        b.screenshot(args.out, height=height)


if __name__ == "__main__":
    main()
