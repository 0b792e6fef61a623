"""The README's picture of a comparison: `mtlrun report RUNS` on a folder of runs, then its
configurations table (rank, Δm, each task's accuracy, time per epoch) shot in headless
Chromium and cropped to the table.

    python bench/report_picture.py RUNS [--out docs/images/multimnist_report.png]

The table keeps the report's own style sheet; only the columns a reader compares methods by are
kept (the other metrics are in report.html itself).
"""

import argparse
import html
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageChops

ROOT = Path(__file__).resolve().parent.parent
KEPT = [
    "rank",
    "method",
    "runs",
    "Δm (%)",
    "p (Holm)",
    "vs baseline",
    "scalarization front",
    "MR",
    "s / epoch",
]  # and every task's accuracy


def configurations_table(report: str) -> str:
    """The report's style sheet and its configurations table, with only the KEPT columns and
    the accuracies."""
    style = re.search(r"<style>.*?</style>", report, re.S).group(0)
    table = next(
        t for t in re.findall(r"<table>.*?</table>", report, re.S) if "Configurations" in t
    )
    header = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", table)]
    keep = [i for i, name in enumerate(header) if name in KEPT or name.endswith("/acc ↑")]
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        cells = re.findall(r"<t[hd][^>]*>.*?</t[hd]>", row, re.S)
        rows.append("<tr>" + "".join(cells[i] for i in keep) + "</tr>")
    caption = re.search(r"<caption>.*?</caption>", table, re.S).group(0)
    return f"{style}<body><table>{caption}{''.join(rows)}</table></body>"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/images/multimnist_report.png")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or sys.exit("needs chromium (apt-get install chromium)")
    work = Path(tempfile.mkdtemp(prefix="mtlrun_report_picture_"))
    mtlrun = [sys.executable, "-m", "mtlrun", "report", str(args.runs), f"out={work}"]
    subprocess.run(mtlrun, check=True, stdout=subprocess.DEVNULL)
    page = work / "table.html"
    page.write_text(configurations_table((work / "report.html").read_text()))
    shot = work / "shot.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={work / 'profile'}", "--window-size=1400,1400",
         f"--screenshot={shot}", page.as_uri()],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    image = Image.open(shot).convert("RGB")
    white = Image.new("RGB", image.size, "white")
    left, top, right, bottom = ImageChops.difference(image, white).getbbox()
    image.crop((max(left - 12, 0), max(top - 12, 0), right + 12, bottom + 12)).save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
