"""Screenshot a Snakemake HTML report with headless Chromium (Debian's `chromium`), for a quick look.

    python tests/report_screenshot.py results/report.html results/report_screenshot.png \
        [--category Teacher --figure results/figures/fig3_mse_vs_T.png]

The report is a single-page app; with ``--category``/``--figure`` a copy of it opens that category
in the menu, then that figure in the main panel with its caption beside it, before the screenshot.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def screenshot(report: Path, out: Path, category: str | None = None, figure: str | None = None) -> Path:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise FileNotFoundError("no chromium on PATH (Debian: apt-get install chromium)")
    html = report.read_text()
    steps = []  # one per timeout: each setView reads the state the previous one left
    if category:
        steps.append(f"app.showCategory({json.dumps(category)});")
    if figure:
        path = json.dumps(figure)
        steps.append(  # the figure in the main panel, its caption and details in the menu
            f"app.setView({{navbarMode: 'resultinfo', content: 'img', contentPath: results[{path}].data_uri,"
            f" resultPath: {path}}});"
        )
    if steps:
        calls = " ".join(f"setTimeout(function () {{ {step} }}, {500 * (i + 1)});" for i, step in enumerate(steps))
        script = f"<script>{calls}</script>"
        head, body_end, tail = html.rpartition("</body>")  # the last one: inlined libraries contain the string too
        html = head + script + body_end + tail
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html)
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",  # we run as root in CI containers
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={tmp}/profile",
                "--window-size=1400,1000",
                "--virtual-time-budget=10000",
                f"--screenshot={out.resolve()}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--category")
    parser.add_argument("--figure", help="path of a figure as the report names it (results/figures/...)")
    args = parser.parse_args()
    print(screenshot(args.report, args.out, args.category, args.figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
