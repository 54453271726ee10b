"""Opens the dashboard of a run in headless Chromium and checks that it shows both charts.

Usage: dashboard_check.py <dashboard.html> --warehouse <warehouse.duckdb> [--screenshot out.png]

Chromium (Debian's `chromium`, or $CHROMIUM) loads the page from disk with networking features off,
runs its script, and dumps the resulting DOM. The check then asserts:
  - the page references nothing outside itself (no external src/href/url());
  - both charts drew: the artist chart one bar per top artist of the latest year, the country chart
    one stacked segment per (month, series) with sales, as computed here from the warehouse's BI views;
  - the run summary tables are there;
  - if the page shows the inferred dimension members (the run summary had them), they match the warehouse's
    dim_users / dim_songs rows with is_inferred.
Exits non-zero with the reason on the first failure.

Also the library of the pipelines' dashboard checks (<pipeline>_dashboard_check.py): load_page and
pipeline_check_main.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bi_preview import inferred_members  # noqa: E402
from dashboard import read_warehouse, row_counts  # noqa: E402
from duckdb_env import connect  # noqa: E402

# Without the networking flags Chromium tries Google's hosts at start-up, which a closed network refuses.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
]


class Dom(HTMLParser):
    """Counts what the check needs from the rendered DOM."""

    def __init__(self):
        super().__init__()
        self.attrs_by_id: dict[str, dict] = {}
        self.body: dict = {}
        self.rects_in: dict[str, int] = {}
        self.tables = 0
        self.kpis: dict[str, str] = {}  # kpi id -> its value text
        self._kpi: str | None = None
        self.external: list[str] = []
        self._stack: list[str] = []  # ids of the open chart containers

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if "id" in a:
            self.attrs_by_id[a["id"]] = a
        if tag == "table":
            self.tables += 1
        if tag == "div" and "kpi" in a.get("class", "").split() and a.get("id", "").startswith("kpi-"):
            self._kpi = a["id"]
        elif tag == "b" and self._kpi:
            self.kpis[self._kpi] = ""
        for key in ("src", "href"):
            if a.get(key) and re.match(r"^(https?:)?//", a[key]):
                self.external.append(f"{tag} {key}={a[key]}")
        if tag == "div" and a.get("id", "").startswith("chart-"):
            self._stack.append(a["id"])
        elif tag == "div" and self._stack:
            self._stack.append("")
        if tag == "rect" and "bar" in a.get("class", "") and self._stack:
            chart = next((s for s in reversed(self._stack) if s), None)
            if chart:
                self.rects_in[chart] = self.rects_in.get(chart, 0) + 1

    def handle_data(self, data):
        if self._kpi in self.kpis:
            self.kpis[self._kpi] += data

    def handle_endtag(self, tag):
        if tag == "b" and self._kpi:
            self._kpi = None
        if tag == "div" and self._stack:
            self._stack.pop()


def expected_marks(wh: dict, top_artists: int = 15, top_countries: int = 8) -> tuple[int, int]:
    years = sorted({r["session_year"] for r in wh["artists"]})
    artists = len([r for r in wh["artists"] if r["session_year"] == years[-1]][:top_artists]) if years else 0
    by_country: dict[str, float] = {}
    for r in wh["countries"]:
        by_country[r["country_code"]] = by_country.get(r["country_code"], 0) + r["total_sales"]
    top = set(sorted(by_country, key=lambda c: -by_country[c])[:top_countries])
    cells = {(r["session_year"], r["session_month"], r["country_code"] if r["country_code"] in top else "other")
             for r in wh["countries"] if r["total_sales"] > 0}
    return artists, len(cells)


def render_dom(chromium: str, page: str, screenshot: str | None) -> str:
    profile = tempfile.mkdtemp(prefix="deftunes-chromium-")
    try:
        url = "file://" + os.path.abspath(page)
        base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000"]
        dom = subprocess.run(
            [*base, "--dump-dom", url], capture_output=True, text=True, timeout=120
        )
        if dom.returncode != 0 or "<body" not in dom.stdout:
            raise SystemExit(f"chromium could not render {page} (exit {dom.returncode}):\n{dom.stderr[-3000:]}")
        if screenshot:
            shot = subprocess.run(
                [*base, "--window-size=1400,1800", f"--screenshot={os.path.abspath(screenshot)}", url],
                capture_output=True, text=True, timeout=120,
            )
            if shot.returncode != 0 or not os.path.exists(screenshot):
                raise SystemExit(f"chromium screenshot failed (exit {shot.returncode}):\n{shot.stderr[-3000:]}")
        return dom.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def find_chromium() -> str:
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("chromium not found: install Debian's `chromium` (make chromium) or set CHROMIUM")
    return chromium


def load_page(page: str, screenshot: str | None) -> tuple:
    """The page rendered in headless Chromium, and the failures of a page that is not self-contained
    (a remote url() in its stylesheet, an external resource)."""
    with open(page, encoding="utf-8") as f:
        source = f.read()
    failures = []
    if re.search(r"url\(\s*['\"]?(https?:)?//", source):
        failures.append("the stylesheet loads a remote url()")
    dom = Dom()
    dom.feed(render_dom(find_chromium(), page, screenshot))
    if dom.external:
        failures.append(f"the page references external resources: {dom.external}")
    return dom, failures


def pipeline_check_main(description: str, name: str, charts: dict, read, nothing: str, kpis=None,
                        tables: int = 1) -> None:
    """The command line and common checks of a pipeline's dashboard check:
    `<page> --warehouse W [--summary S] [--screenshot P]`. Each chart of `charts` ({container id: key of
    read(W)}) drew as many bars as read(W)[key] has rows, none empty ("no <nothing> in the warehouse"); the body
    counts them all as rendered; kpis(warehouse, dom, failures), if given, adds its failures and returns the head of
    the success line; the page has at least `tables` tables when the summary has row_counts. Exits 1 with the
    failures, else prints "<name> dashboard ok: ..."."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("page")
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--summary", default=None)
    parser.add_argument("--screenshot", default=None)
    args = parser.parse_args()
    dom, failures = load_page(args.page, args.screenshot)
    wh = read(args.warehouse)
    want = {chart: len(wh[key]) for chart, key in charts.items()}
    for chart, n in want.items():
        got = int(dom.attrs_by_id.get(chart, {}).get("data-marks", "0"))
        if n == 0:
            failures.append(f"{chart}: no {nothing} in the warehouse, nothing to chart")
        if got != n or dom.rects_in.get(chart, 0) != n:
            failures.append(f"{chart}: drew {dom.rects_in.get(chart, 0)} bars (data-marks {got}), want {n}")
    if dom.body.get("data-rendered") != str(len(charts)):
        failures.append(f"body data-rendered={dom.body.get('data-rendered')!r}, want '{len(charts)}'")
    head = kpis(args.warehouse, dom, failures) if kpis else ""
    if args.summary:
        with open(args.summary, encoding="utf-8") as f:
            has_counts = row_counts(json.load(f)) is not None
        if has_counts and dom.tables < tables:
            failures.append("the summary has row_counts but the page shows no row-count table")
    if failures:
        print(f"{name} dashboard check FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"{name} dashboard ok: {head}" + ", ".join(f"{c} {n} bars" for c, n in want.items())
          + f", {dom.tables} tables" + (f", screenshot {args.screenshot}" if args.screenshot else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page")
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--screenshot", default=None)
    args = parser.parse_args()
    dom, failures = load_page(args.page, args.screenshot)
    want_artists, want_countries = expected_marks(read_warehouse(args.warehouse))
    got = {
        "chart-artists": int(dom.attrs_by_id.get("chart-artists", {}).get("data-marks", "0")),
        "chart-countries": int(dom.attrs_by_id.get("chart-countries", {}).get("data-marks", "0")),
    }
    if dom.body.get("data-rendered") != "2":
        failures.append(f"body data-rendered={dom.body.get('data-rendered')!r}, want '2' (both charts drawn)")
    for chart, want in (("chart-artists", want_artists), ("chart-countries", want_countries)):
        if want == 0:
            failures.append(f"{chart}: the BI view is empty, nothing to chart")
        if got[chart] != want or dom.rects_in.get(chart, 0) != want:
            failures.append(
                f"{chart}: drew {dom.rects_in.get(chart, 0)} bars (data-marks {got[chart]}), want {want}"
            )
    if dom.tables < 4:
        failures.append(f"run summary: {dom.tables} tables, want landing, transform, rules and timings")
    inferred_shown = {k.removeprefix("kpi-"): v for k, v in dom.kpis.items() if k.startswith("kpi-inferred_")}
    if inferred_shown:
        con = connect(args.warehouse, read_only=True)
        try:
            inferred = inferred_members(con)
        finally:
            con.close()
        for key, text in sorted(inferred_shown.items()):
            if text.replace(",", "").strip() != str(inferred.get(key)):
                failures.append(f"KPI {key} shows {text!r}, the warehouse has {inferred.get(key)}")
    if failures:
        print("dashboard check FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"dashboard ok: artist chart {want_artists} bars, country chart {want_countries} segments, "
          f"{dom.tables} summary tables"
          + (", " + ", ".join(f"{k} {v}" for k, v in sorted(inferred_shown.items())) if inferred_shown
             else ", no inferred members in the summary")
          + (f", screenshot {args.screenshot}" if args.screenshot else ""))


if __name__ == "__main__":
    main()
