"""Open a Snakemake HTML report in headless Chromium: does it render, does every image load?

The report is a single-page app whose results (figures as data URIs) sit in a global
`results` object. A copy of the report gets a small script that, after the page has loaded,
decodes every image result in the browser (`Image.onload`, natural size > 0), checks that
the app rendered, opens one figure in the app's content view (so a screenshot shows a
figure) and writes its findings as JSON into the page; Chromium's `--dump-dom` returns them.

    python -m infoplane.reportcheck results/report.html --screenshot results/report_screenshot.png
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MARKER = "infoplane-report-check"

_PROBE_SCRIPT = """
<script>
window.addEventListener("load", async () => {
  const out = {results: 0, images: 0, loaded: 0, failed: [], html: 0, shown: null, app_rendered: false};
  const entries = Object.entries(typeof results === "undefined" ? {} : results);
  out.results = entries.length;
  for (const [path, entry] of entries) {
    if (entry.mime_type === "text/html") out.html++;
    if (!entry.mime_type.startsWith("image/")) continue;
    out.images++;
    const ok = await new Promise((resolve) => {
      const img = new Image();
      img.onload = () => resolve(img.naturalWidth > 0 && img.naturalHeight > 0);
      img.onerror = () => resolve(false);
      img.src = entry.data_uri;
    });
    if (ok) out.loaded++; else out.failed.push(path);
  }
  const pick = entries.find(([p, e]) => p.includes(__PREFER__) && e.mime_type.startsWith("image/"))
            || entries.find(([p, e]) => e.mime_type.startsWith("image/"));
  if (pick && typeof app !== "undefined") {
    app.setView({content: "img", contentPath: pick[1].data_uri, navbarMode: "menu"});
    out.shown = pick[0];
  }
  await new Promise((r) => setTimeout(r, 300));
  const root = document.querySelector("#app");
  out.app_rendered = !!root && root.querySelectorAll("*").length > 10;
  const shownImg = root ? root.querySelector("img[src^='data:image']") : null;
  out.shown_loaded = !!shownImg && shownImg.complete && shownImg.naturalWidth > 0;
  const pre = document.createElement("pre");
  pre.id = "__MARKER__";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable on PATH, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _instrumented_copy(report: Path, folder: Path, prefer: str) -> Path:
    text = report.read_text(encoding="utf-8")
    if "</body>" not in text:
        raise ValueError(f"{report} has no </body>: not an HTML report (build it with snakemake --report report.html)")
    script = _PROBE_SCRIPT.replace("__MARKER__", MARKER).replace("__PREFER__", json.dumps(prefer))
    head, tail = text.rsplit("</body>", 1)
    copy = folder / "report_check.html"
    copy.write_text(head + script + "</body>" + tail, encoding="utf-8")
    return copy


def _chromium(binary: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=timeout)


def check_report(
    report: str | Path,
    screenshot: str | Path | None = None,
    prefer: str = "figures/infoplane",
    chromium: str | None = None,
    timeout: float = 120,
) -> dict:
    """Render `report` in headless Chromium; returns what the page found (see module doc).

    Keys: results, images, loaded, failed (paths of images that did not decode), html,
    app_rendered, shown (the result opened for the screenshot), shown_loaded.
    """
    binary = chromium or find_chromium()
    if binary is None:
        raise FileNotFoundError(f"no Chromium found on PATH (looked for {', '.join(CHROMIUM_NAMES)}); "
                                "install it, e.g. apt-get install -y chromium")  # fmt: skip
    report = Path(report).resolve()
    with tempfile.TemporaryDirectory(prefix="reportcheck-") as tmp:
        page = _instrumented_copy(report, Path(tmp), prefer)
        url = page.as_uri()
        budget = "--virtual-time-budget=20000"
        done = _chromium(binary, budget, "--dump-dom", url, timeout=timeout)
        match = re.search(rf'<pre id="{MARKER}">(.*?)</pre>', done.stdout, re.S)
        if not match:
            raise RuntimeError(
                f"the report page did not finish its checks in Chromium (exit {done.returncode}); "
                f"stderr tail: {done.stderr[-2000:]}"
            )
        found = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
        if screenshot is not None:
            shot = Path(screenshot).resolve()
            shot.parent.mkdir(parents=True, exist_ok=True)
            tmp_shot = Path(tmp) / "screenshot.png"
            _chromium(binary, budget, "--window-size=1400,1000", f"--screenshot={tmp_shot}", url, timeout=timeout)
            if not tmp_shot.exists():
                raise RuntimeError("Chromium wrote no screenshot")
            shutil.move(str(tmp_shot), shot)
            found["screenshot"] = str(shot)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infoplane.reportcheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("report", help="the HTML report (snakemake --report report.html)")
    parser.add_argument("--screenshot", help="write a PNG screenshot of the report showing one figure")
    args = parser.parse_args(argv)
    found = check_report(args.report, args.screenshot)
    print(json.dumps(found, indent=1))
    ok = found["app_rendered"] and found["images"] > 0 and found["loaded"] == found["images"]
    if not ok:
        print("report check FAILED: the app did not render or some images did not load", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
