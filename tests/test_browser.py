"""The built book in a real browser, offline: Debian's chromium driven by Playwright.

The smoke-built book (the session fixture ``built`` of ``conftest.py``) is served from a
local ``http.server`` on 127.0.0.1 and every HTML page is opened with every other request
blocked. A page fails on: a console error or uncaught exception, a failed request (blocked,
unreachable or HTTP >= 400), a link to a local page or file that does not exist, an image
that did not load, an equation that MathJax left as TeX (or typeset as a TeX error), and a
table wider than the text column (sticking out of the page, or cut off in a box that
scrolls sideways: tables must fit). Screenshots of the landing page and of Table 1 go to
``<out>/smoke/book/screenshots/`` and ``build-out/screenshots/``.

The downloads are clicked as a reader clicks them, over the local server and from
``file://`` (the book opened from disk, no server): every page's ``.ipynb`` button must
deliver its executed notebook (JSON, with outputs) and every table's CSV link a CSV pandas
reads; and the Model cards page must show each card with every field of
``lvae.report.cards.card_fields``.

The checker itself is tested first, on small hand-written pages served the same way.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``; Playwright's own browser download
is not used) and the ``playwright`` package (``.[dev]``). Without them the tests skip, unless
``LVAE_REQUIRE_BROWSER=1`` (set by ``.ci/run``), which turns the skip into a failure.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import json
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
#: Pages photographed for humans: page of the book -> file name.
SCREENSHOTS = {"book/intro.html": "intro.png",
               "notebooks/results_table1.html": "results_table1.png"}
#: Where humans find the screenshots of the last run (git-ignored).
HUMAN_SCREENSHOTS = REPO / "build-out" / "screenshots"
#: Folders of the HTML build that hold assets, not pages.
ASSET_DIRS = {"_static", "_sources", "_images", "_downloads"}
#: A page that sends the browser on to another (the book's index.html).
REFRESH = re.compile(r"<meta[^>]+http-equiv=[\"']?refresh", re.IGNORECASE)
#: Pages that offer a table as CSV (a ``{download}`` link), and the file each offers.
CSV_DOWNLOADS = {"notebooks/results_table1.html": "table1_paper_vs_ours.csv",
                 "notebooks/results_table2.html": "table2_paper_vs_ours.csv",
                 "notebooks/results_table5.html": "table5_paper_vs_ours.csv",
                 "notebooks/build_stats.html": "build_stats.csv"}


# --------------------------------------------------------------------------------------
# The browser and the local server
# --------------------------------------------------------------------------------------


def _require_browser() -> None:
    """Skip (or fail, with ``LVAE_REQUIRE_BROWSER=1``) when chromium or Playwright is absent."""
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install -c requirements.lock -e '.[dev]')")
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (as root: apt-get update && apt-get install -y chromium)")
    if not missing:
        return
    msg = "the browser test needs " + " and ".join(missing)
    if os.environ.get("LVAE_REQUIRE_BROWSER") == "1":
        pytest.fail(msg + "; LVAE_REQUIRE_BROWSER=1 makes this a failure, not a skip")
    pytest.skip(msg)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                               headless=True)
        try:
            yield b
        finally:
            b.close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 (a free port, in a thread); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --------------------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------------------

#: Runs in the page once it has loaded: waits for MathJax, images and fonts, then collects
#: what Python judges. TeX inside code (pre, code) is code, not an unrendered equation.
AUDIT_JS = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const imgs = Array.from(document.images);
  for (const img of imgs) if (img.loading === 'lazy') img.loading = 'eager';
  await Promise.all(imgs.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener('load', done); img.addEventListener('error', done);
  })));
  await document.fonts.ready;
  const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const short = s => s.replace(/\s+/g, ' ').trim().slice(0, 100);
  const out = {mathjax: !!(window.MathJax && MathJax.startup), images: [], raw_math: [],
               tex_errors: [], raw_text: [], links: [], tables: [], overflow: null};
  for (const img of imgs) {
    if (!img.complete || img.naturalWidth === 0) out.images.push(img.getAttribute('src'));
  }
  for (const el of document.querySelectorAll('.math')) {
    if (!el.querySelector('mjx-container')) out.raw_math.push(short(el.textContent));
  }
  for (const el of document.querySelectorAll('mjx-merror')) {
    out.tex_errors.push(short(el.getAttribute('data-mjx-error') || el.textContent));
  }
  const markers = ['\\(', '\\[', '$$', '\\begin{'];
  const walker = document.createTreeWalker(document.body || document.documentElement,
                                          NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const p = n.parentElement;
    if (!p || p.closest('script, style, pre, code, textarea, noscript, mjx-container')) continue;
    if (markers.some(m => n.data.includes(m)) && visible(p)) out.raw_text.push(short(n.data));
  }
  out.links = Array.from(document.querySelectorAll('a[href]'), a => a.href);
  const column = ['article.bd-article', '[role=main]', 'main', 'body']  // the text column
    .map(sel => document.querySelector(sel)).find(Boolean) || document.documentElement;
  const right = column.getBoundingClientRect().right + 1
                - parseFloat(getComputedStyle(column).paddingRight || '0');
  for (const t of document.querySelectorAll('table')) {
    if (!visible(t) || t.getBoundingClientRect().right <= right) continue;
    let how = 'sticks out of the page';  // or is cut off, to be scrolled sideways in a box
    for (let a = t.parentElement; a && a !== column; a = a.parentElement) {
      const ox = getComputedStyle(a).overflowX;
      if (ox !== 'visible') { how = `is cut off (overflow-x: ${ox})`; break; }
    }
    out.tables.push(`${short(t.textContent).slice(0, 40)}: ends at x = `
                    + `${Math.round(t.getBoundingClientRect().right)} px, the text column at `
                    + `${Math.round(right - 1)} px; it ${how}`);
  }
  const doc = document.scrollingElement || document.documentElement;
  if (doc.scrollWidth > doc.clientWidth + 1) out.overflow = [doc.scrollWidth, doc.clientWidth];
  return out;
}
"""


def html_pages(root: Path) -> list[str]:
    """Every HTML page of a build, relative to its root (asset folders left out)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")
                  if not ASSET_DIRS & set(p.relative_to(root).parts[:-1]))


def _local_target(root: Path, base: str, url: str) -> Path | None:
    """The file a link on the local server points to (None for any other address)."""
    parts = urlsplit(url)
    if not url.startswith(base):
        return None
    path = unquote(parts.path).lstrip("/")
    target = root / path
    return target / "index.html" if path == "" or path.endswith("/") else target


def audit_page(context: Any, root: Path, base: str, page: str,
               screenshot: Path | None = None) -> list[str]:
    """Open ``page`` (relative to ``root``, served at ``base``); returns what is wrong with it.

    Each problem starts with its kind: ``console error``, ``page error``, ``external
    request``, ``failed request``, ``HTTP <status>``, ``broken link``, ``image not loaded``,
    ``unrendered math``, ``TeX error``, ``raw TeX``, ``wide table``, ``horizontal overflow``.
    """
    from playwright.sync_api import Error as PlaywrightError

    problems: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(base):
            r.continue_()
        else:  # the book must not need the network
            problems.append(f"external request: {r.request.url}")
            r.abort("blockedbyclient")

    def failed(req: Any) -> None:
        if req.url.startswith(base):  # blocked external requests are reported above
            problems.append(f"failed request: {req.url} ({req.failure})")

    page_obj = context.new_page()
    page_obj.route("**/*", route)
    page_obj.on("console", lambda m: problems.append(f"console error: {m.text}")
                if m.type == "error" else None)
    page_obj.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page_obj.on("requestfailed", failed)
    page_obj.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}")
                if r.status >= 400 else None)
    try:
        page_obj.goto(base + page, wait_until="load")
        if REFRESH.search((root / page).read_text(errors="replace")):  # index.html: redirect
            page_obj.wait_for_url(lambda url: url != base + page)
            page_obj.wait_for_load_state("load")
        for attempt in range(3):
            try:
                found = page_obj.evaluate(AUDIT_JS)
                break
            except PlaywrightError as exc:
                if "context was destroyed" not in str(exc) or attempt == 2:
                    raise
                page_obj.wait_for_load_state("load")
        page_obj.wait_for_load_state("networkidle")
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page_obj.screenshot(path=str(screenshot), full_page=True)
    finally:
        page_obj.close()

    for url in sorted(set(found["links"])):
        target = _local_target(root, base, url)
        if target is not None and not target.is_file():
            problems.append(f"broken link: {url[len(base):]}")
    problems += [f"image not loaded: {src}" for src in found["images"]]
    problems += [f"unrendered math: {tex}" for tex in found["raw_math"]]
    problems += [f"TeX error: {err}" for err in found["tex_errors"]]
    problems += [f"raw TeX: {text}" for text in found["raw_text"]]
    problems += [f"wide table: {t}" for t in found["tables"]]
    if found["overflow"]:
        problems.append("horizontal overflow: page is {} px wide in a {} px window"
                        .format(*found["overflow"]))
    return list(dict.fromkeys(problems))  # in order, once each


@contextlib.contextmanager
def site(browser: Any, root: Path) -> Iterator[tuple[Any, str]]:
    """``root`` served locally and a fresh browser context: yields (context, base URL)."""
    with serve(root) as base:
        context = browser.new_context(viewport=VIEWPORT, service_workers="block")
        try:
            yield context, base
        finally:
            context.close()


# --------------------------------------------------------------------------------------
# The checker, on hand-written pages: it passes a good page and catches each defect
# --------------------------------------------------------------------------------------

def _mathjax_dir() -> Path | None:
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "static" / "mathjax"
    return path if (path / "tex-chtml.js").is_file() else None


MATHJAX_HEAD = '<script defer src="mathjax/tex-chtml.js"></script>'
PAGE = "<!doctype html><html><head><meta charset='utf-8'>{head}</head>" \
       "<body><main style='max-width: 600px'>{body}</main></body></html>"
GOOD_BODY = r"""
<h1>A good page</h1>
<p>Inline <span class="math">\(\alpha + \beta^2\)</span> and displayed:</p>
<div class="math">\[\begin{aligned} x &= 1 \\ y &= 2 \end{aligned}\]</div>
<p><img src="pic.png" alt="a figure"> <a href="other.html#section">a page</a>,
   <a href="sub/">a folder</a>, <a href="https://example.org/paper">a paper</a>,
   <a href="mailto:someone@example.org">mail</a>.</p>
<pre><code>plt.title(r"$$\alpha$$ \(x\) \begin{align}")</code></pre>
<div style="overflow-x: auto"><table><tr><td>a table</td><td>that fits</td></tr></table></div>
"""
#: Defect -> (the page's head, the page's body, the kinds of problem it must raise).
BAD_PAGES = {
    "raw-tex": ("", r'<p>Left as TeX: <span class="math">\(x^2\)</span> and $$y$$.</p>',
                {"unrendered math", "raw TeX"}),
    "tex-error": (MATHJAX_HEAD, r'<p><span class="math">\(\frac{1}\)</span></p>',
                  {"TeX error"}),
    "broken-image": ("", '<p><img src="missing.png" alt="gone"></p>',
                     {"image not loaded", "HTTP 404"}),
    "broken-link": ("", '<p><a href="missing.html">nowhere</a></p>', {"broken link"}),
    "external-script": ('<script src="https://cdn.example.org/mathjax.js"></script>',
                        "<p>needs a CDN</p>", {"external request"}),
    "external-font": ("<style>@font-face { font-family: F; src: url(https://fonts.example.org"
                      "/f.woff2); } p { font-family: F; }</style>", "<p>a remote font</p>",
                      {"external request"}),
    "console-error": ("<script>console.error('boom')</script>", "<p>logs</p>",
                      {"console error"}),
    "js-exception": ("<script>undefinedFunction()</script>", "<p>throws</p>",
                     {"page error"}),
    "wide-table": ("", '<table style="width: 2000px"><tr><td>too wide</td></tr></table>',
                   {"wide table", "horizontal overflow"}),
    "scrolled-table": ("", '<div style="overflow-x: auto"><table style="width: 2000px"><tr>'
                           '<td>cut off, scrolls sideways</td></tr></table></div>',
                       {"wide table"}),
}


@pytest.fixture(scope="module")
def checker_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("site")
    mathjax = _mathjax_dir()
    if mathjax is None:
        pytest.skip("sphinx-mathjax-offline is not installed (pip install -e '.[book]')")
    (root / "mathjax").symlink_to(mathjax, target_is_directory=True)
    Image.new("RGB", (8, 6), "teal").save(root / "pic.png")
    (root / "good.html").write_text(PAGE.format(head=MATHJAX_HEAD, body=GOOD_BODY))
    (root / "other.html").write_text(PAGE.format(head="", body="<h2 id='section'>x</h2>"))
    (root / "sub").mkdir()
    (root / "sub" / "index.html").write_text(PAGE.format(head="", body="<p>index</p>"))
    for name, (head, body, _) in BAD_PAGES.items():
        (root / f"{name}.html").write_text(PAGE.format(head=head, body=body))
    return root


def test_checker_passes_a_good_page(browser: Any, checker_site: Path) -> None:
    with site(browser, checker_site) as (context, base):
        problems = audit_page(context, checker_site, base, "good.html")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("defect", list(BAD_PAGES))
def test_checker_catches(browser: Any, checker_site: Path, defect: str) -> None:
    with site(browser, checker_site) as (context, base):
        problems = audit_page(context, checker_site, base, f"{defect}.html")
    kinds = {p.split(":")[0] for p in problems}
    assert BAD_PAGES[defect][2] <= kinds, f"{defect}: the checker reported {problems}"


def test_missing_browser_skips_unless_required(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("LVAE_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        _require_browser()
    monkeypatch.setenv("LVAE_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        _require_browser()


def test_html_pages_skip_assets(tmp_path: Path) -> None:
    for rel in ("index.html", "book/intro.html", "_static/x.html", "_sources/a/b.html"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert html_pages(tmp_path) == ["book/intro.html", "index.html"]


# --------------------------------------------------------------------------------------
# The book
# --------------------------------------------------------------------------------------


@pytest.mark.book
@pytest.mark.timeout(1500)  # builds the book first when it runs before test_book.py
def test_book_works_offline_in_a_browser(browser: Any, built: dict) -> None:
    summary = built["summary"]
    html = summary.book_html
    assert html is not None and (html / "index.html").is_file(), summary.report()
    shots = Path(built["out"]) / built["profile"] / "book" / "screenshots"
    pages = html_pages(html)
    assert set(SCREENSHOTS) <= set(pages), f"pages to photograph missing from {pages}"

    t0 = time.perf_counter()
    report = {}
    with site(browser, html) as (context, base):
        for page in pages:
            shot = shots / SCREENSHOTS[page] if page in SCREENSHOTS else None
            report[page] = audit_page(context, html, base, page, screenshot=shot)
    HUMAN_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name in SCREENSHOTS.values():
        shutil.copy2(shots / name, HUMAN_SCREENSHOTS / name)
    print(f"{len(pages)} pages checked in {time.perf_counter() - t0:.0f} s; "
          f"screenshots in {shots} and {HUMAN_SCREENSHOTS}")

    bad = {page: problems for page, problems in report.items() if problems}
    lines = [f"{page}: {p}" for page, problems in bad.items() for p in problems[:8]]
    assert not bad, f"{len(bad)} of {len(pages)} pages fail in the browser:\n" + "\n".join(lines)


# --------------------------------------------------------------------------------------
# Downloads and model cards
# --------------------------------------------------------------------------------------


def arrive(context: Any, page: Any, link: Any, timeout_s: float = 20.0) -> tuple[str, bytes]:
    """Click ``link`` as a reader does; returns how the file arrived and its bytes.

    "download": the browser saved it (a link with ``download``, or a type it does not
    show); "tab": it opened in a new tab and shows the file as text (the theme's .ipynb
    button has ``target="_blank"``; from ``file://`` Chrome shows JSON rather than saving
    it, since the ``download`` attribute is ignored for file URLs); "page": the page itself
    went to the file. A tab's or page's text is the file's text, as a reader would save it.
    """
    got: dict[str, Any] = {}

    def on_download(d: Any) -> None:
        got.setdefault("download", d)

    def on_page(p: Any) -> None:
        got.setdefault("tab", p)
        p.on("download", on_download)

    page.on("download", on_download)
    context.on("page", on_page)
    before = page.url
    link.click()
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        page.wait_for_timeout(100)
        if "download" in got:
            return "download", Path(got["download"].path()).read_bytes()
        tab = got.get("tab")
        if tab is not None and tab.url not in ("", "about:blank"):
            tab.wait_for_load_state("load")
            page.wait_for_timeout(300)  # a tab that downloads fires it now
            if "download" not in got:
                return "tab", tab.evaluate("document.body.innerText").encode()
        elif page.url != before:
            page.wait_for_load_state("load")
            return "page", page.evaluate("document.body.innerText").encode()
    raise AssertionError(f"clicking {link} delivered nothing in {timeout_s:.0f} s")


def _offline(context: Any, base: str, problems: list[str]) -> None:
    """Block every request that is not to ``base`` (the local server or the build folder)."""
    def route(r: Any) -> None:
        if r.request.url.startswith(base):
            r.continue_()
        else:
            problems.append(f"external request: {r.request.url}")
            r.abort("blockedbyclient")

    context.route("**/*", route)


def _check_downloads(browser: Any, built: dict, base: str,
                     pages: list[str]) -> dict[str, str]:
    """Click every page's .ipynb button and every CSV link of ``pages`` from ``base``;
    returns how each arrived. The notebook must be the executed copy (JSON with outputs
    and papermill's record, byte for byte what the build executed), the CSV the file the
    page wrote, parsed by pandas."""
    from lvae.report.book import book_source

    staged = book_source(Path(built["out"]) / built["profile"])
    tables = Path(built["out"]) / built["profile"] / "tables"
    how: dict[str, str] = {}
    problems: list[str] = []
    context = browser.new_context(viewport=VIEWPORT, service_workers="block",
                                  accept_downloads=True)
    _offline(context, base, problems)
    try:
        for page_name in pages:
            page = context.new_page()
            page.goto(base + page_name, wait_until="load")
            page.click(".dropdown-download-buttons button.dropdown-toggle")
            way, data = arrive(context, page, page.locator("a.btn-download-source-button"))
            how[page_name] = way
            nb = json.loads(data)
            assert nb["metadata"]["papermill"]["duration"] > 0, page_name
            assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
            executed = staged / page_name.replace(".html", ".ipynb")
            assert json.loads(executed.read_text()) == nb, f"{page_name}: not its notebook"
            page.close()
            if page_name in CSV_DOWNLOADS:
                page = context.new_page()
                page.goto(base + page_name, wait_until="load")
                [link] = page.locator("a.download").all()
                way, data = arrive(context, page, link)
                how[page_name + " csv"] = way
                frame = pd.read_csv(io.BytesIO(data))
                assert len(frame) > 0 and frame.equals(
                    pd.read_csv(tables / CSV_DOWNLOADS[page_name])), page_name
                page.close()
    finally:
        context.close()
    assert not problems, problems
    return how


@pytest.mark.book
@pytest.mark.timeout(1500)
def test_downloads_arrive_and_parse(browser: Any, built: dict) -> None:
    """Over the local server: the pages with a CSV, and a teaching page. (Every page's
    button serves its executed notebook: test_book.py checks the served files on disk;
    clicking all of them here would add a second per page to the suite for nothing.)"""
    html = built["summary"].book_html
    pages = [*CSV_DOWNLOADS, "notebooks/teach_vae.html"]
    assert set(pages) <= set(html_pages(html))
    with serve(html) as base:
        how = _check_downloads(browser, built, base, pages)
    print("served:", sorted(set(how.values())))


@pytest.mark.book
@pytest.mark.timeout(1500)
def test_downloads_work_from_file_urls(browser: Any, built: dict) -> None:
    """The book opened from disk (file://): the buttons still deliver the files."""
    html = built["summary"].book_html
    how = _check_downloads(browser, built, html.as_uri() + "/", list(CSV_DOWNLOADS))
    print("from file://:", how)


@pytest.mark.book
@pytest.mark.timeout(1500)
def test_model_cards_page_shows_every_field_of_each_card(browser: Any, built: dict) -> None:
    from lvae.report.cards import card_fields

    html = built["summary"].book_html
    with site(browser, html) as (context, base):
        page = context.new_page()
        page.goto(base + "notebooks/results_model_cards.html", wait_until="load")
        cards = page.evaluate("""() => Array.from(
            document.querySelectorAll('div.cell.tag_model-card'), cell => ({
              heads: Array.from(cell.querySelectorAll('.rubric'), h => h.textContent.trim()),
              tables: cell.querySelectorAll('table').length,
              images: Array.from(cell.querySelectorAll('img'), i => i.naturalWidth)}))""")
        page.close()
    names = [re.search(r"\((.+), seed (\d+)\)$", c["heads"][0]).groups() for c in cards]
    assert names == [("vanilla", "0"), ("beta=16", "0"), ("alpha=1", "0"), ("alpha=10", "0")]
    for card in cards:
        assert card["heads"][0].startswith("Model card: study/"), card["heads"]
        assert card["heads"][1:] == card_fields, card["heads"]
        assert card["tables"] >= 3  # the layers, the budget, the metrics
        assert card["images"] and all(w > 0 for w in card["images"])


@pytest.mark.book
@pytest.mark.timeout(1500)
def test_landing_brief_reads_as_plain_text_with_the_readings_listed(browser: Any,
                                                                      built: dict) -> None:
    """MyST-NB prints glued values in bold; the book's CSS (``_static/lvae.css``) gives them
    their surroundings' weight, so the brief is not a wall of bold text, and the readings
    the Diagnosis judged arrive as a list (one item per reading, glued as HTML)."""
    html = built["summary"].book_html
    with site(browser, html) as (context, base):
        page = context.new_page()
        page.goto(base + "book/intro.html", wait_until="load")
        found = page.evaluate("""() => {
          const brief = document.querySelector('section#the-reproduction-in-brief');
          const pasted = Array.from(brief.querySelectorAll('li > p > span.pasted-text'));
          return {weights: pasted.map(s => [getComputedStyle(s).fontWeight,
                                            getComputedStyle(s.parentElement).fontWeight]),
                  readings: brief.querySelectorAll('li ul li').length};
        }""")
        page.close()
    assert found["weights"], "no glued text in the brief's list"
    assert all(own == around for own, around in found["weights"]), found["weights"]
    assert found["readings"] >= 1


@pytest.mark.book
@pytest.mark.timeout(1500)
def test_landing_claims_status_column_gets_its_share(browser: Any, built: dict) -> None:
    """The claims table's last column (each claim's reproduction status) holds its longest
    text; the book's CSS asks a third of the table for it (the browser shares the rest by
    content), where the browser alone gave it less than the claim's column and a dozen
    lines a row."""
    html = built["summary"].book_html
    with site(browser, html) as (context, base):
        page = context.new_page()
        page.set_viewport_size({"width": 1300, "height": 1200})
        page.goto(base + "book/intro.html", wait_until="load")
        widths = page.evaluate("""() => Array.from(
          document.querySelectorAll('table#claims-table thead th'),
          th => th.getBoundingClientRect().width)""")
        page.close()
    assert len(widths) == 5, widths
    assert widths[-1] == max(widths) and widths[-1] > 0.25 * sum(widths), widths
