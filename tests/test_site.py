"""Open the built website in headless Chromium, as a reader would.

Needs `_build/html` (``make site``) and Debian's ``chromium``; ``make test`` provides both.
Chromium runs with the network unreachable: the site must read offline (MathJax included).
Outside CI the tests skip with the reason when either is missing; under CI they fail.
"""
from __future__ import annotations

import functools
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from book_files import REPOSITORY_URL, ROOT, toc_notebooks

pytestmark = pytest.mark.site
HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage",
         "--hide-scrollbars",
         # The reader is offline: Chromium may load nothing but the local server. Every host name
         # but 127.0.0.1 fails to resolve, and anything else goes to a proxy on the closed port 9.
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--proxy-server=127.0.0.1:9",
         "--proxy-bypass-list=127.0.0.1"]


def _require(condition: bool, reason: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


#: Pages the test server adds to the site (path -> HTML), for checks that need a script of their own.
_EXTRA_PAGES: dict[str, str] = {}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        page = _EXTRA_PAGES.get(self.path.split("?")[0])
        if page is None:
            return super().do_GET()
        body = page.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def site_url():
    _require((HTML / "book" / "intro.html").exists(), "no built site: run `make site` first")
    _require(CHROMIUM is not None, "chromium is not installed (apt-get install chromium)")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(HTML)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _chromium(*args: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=90)
    return done.stdout


@functools.lru_cache(maxsize=None)     # one Chromium run per page, shared by the tests
def _dom(url: str) -> str:
    return _chromium("--virtual-time-budget=10000", "--dump-dom", url)


def _screenshot(url: str, out: Path) -> None:
    _chromium("--window-size=1280,2400", f"--screenshot={out}", url)
    assert out.exists() and out.stat().st_size > 10_000, f"no screenshot of {url}"


def test_front_page_lists_every_chapter(site_url, tmp_path):
    dom = _dom(f"{site_url}/book/intro.html")
    assert "BoRe-Depth, the book" in dom
    for nb in toc_notebooks():
        rel = nb.relative_to(ROOT).with_suffix(".html").as_posix().removeprefix("book/")
        assert f'href="{rel}' in dom or f'href="./{rel}' in dom, f"chapter {rel} missing from the navigation"
    assert "pipeline.svg" in dom
    _screenshot(f"{site_url}/book/intro.html", tmp_path / "front.png")


def test_each_chapter_renders_its_title_and_figures(site_url, tmp_path):
    chapters = [p for p in toc_notebooks() if p.suffix == ".ipynb"]
    _require(bool(chapters), "no chapter notebooks yet")
    for nb in chapters:
        rel = nb.relative_to(ROOT).with_suffix(".html").as_posix()
        dom = _dom(f"{site_url}/{rel}")
        title = re.search(r"<h1[^>]*>(.*?)<", dom, re.S)
        assert title and title.group(1).strip(), f"{rel}: no title"
        assert len(re.findall(r'<img[^>]+src="[^"]*_images/', dom)) >= 1, f"{rel}: no rendered figure"
        assert f"colab.research.google.com/github/{REPOSITORY_URL.split('github.com/')[1]}" in dom, \
            f"{rel}: no Colab launch link to the configured repository"
    _screenshot(f"{site_url}/{chapters[0].relative_to(ROOT).with_suffix('.html').as_posix()}",
                tmp_path / "chapter.png")


def test_each_chapter_typesets_its_math_offline(site_url):
    """MathJax is served by the site itself (_ext/local_mathjax.py), so math reads offline."""
    chapters = [p for p in toc_notebooks() if p.suffix == ".ipynb"]
    _require(bool(chapters), "no chapter notebooks yet")
    for nb in chapters:
        rel = nb.relative_to(ROOT).with_suffix(".html").as_posix()
        html = (HTML / rel).read_text(encoding="utf-8")
        assert re.search(r'<(?:span|div) class="math[ "]', html), f"{rel}: no formula in the chapter"
        src = re.search(r'<script[^>]+src="([^"]*mathjax[^"]*)"', html)
        assert src, f"{rel}: the page does not load MathJax"
        assert "://" not in src.group(1) and not src.group(1).startswith("/"), \
            f"{rel}: MathJax comes from {src.group(1)}, not from the site (relative URL)"
        # Sphinx appends ?v=<checksum> when the file is already in the output (a rebuild)
        assert (HTML / rel).parent.joinpath(src.group(1).split("?")[0]).is_file(), \
            f"{rel}: {src.group(1)} is not in the site"
        typeset = _dom(f"{site_url}/{rel}").count("<mjx-container")
        assert typeset >= 1, f"{rel}: no formula was typeset by MathJax with the network unreachable"


def test_references_and_exercises_render(site_url):
    """The References page lists every book/references.bib entry; citations link to it; the
    appendix's {exercise} renders with its {solution} folded away until the reader opens it."""
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    keys = re.findall(r"^@\w+\{([^,\s]+),", bib, re.M)
    assert len(keys) >= 20 and len(set(keys)) == len(keys), "references.bib: too few or duplicate keys"
    dom = _dom(f"{site_url}/book/bibliography.html")
    entries = re.findall(r'<div class="citation" id="[^"]+"', dom)
    assert len(entries) == len(keys), f"References lists {len(entries)} entries for {len(keys)} keys"
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))
    for title in ("Unsupervised scale-consistent depth and ego-motion learning from monocular video",  # SC-Depth
                  "Digging into self-supervised monocular depth estimation",                          # Monodepth2
                  "BoRe-Depth: self-supervised monocular depth estimation with boundary refinement",
                  "U-Net: convolutional networks for biomedical image segmentation"):                        # ch. 4
        assert title in text, f"References: no entry {title!r}"

    dom = _dom(f"{site_url}/book/appendix_reference.html")
    assert re.search(r'<a class="reference internal" href="bibliography\.html#[^"]+"', dom), \
        "appendix_reference: no citation links to the References page"

    dom = _dom(f"{site_url}/book/appendix_notation.html")
    exercise = re.search(r'<div class="exercise admonition[^"]*" id="ex-notation-warp"', dom)
    assert exercise, "appendix_notation: the {exercise} did not render as an admonition"
    assert "Warping one pixel by hand" in dom
    solution = re.search(r'<div class="(solution[^"]*)" id="[^"]*solution[^"]*">(.*?)</section>', dom, re.S)
    assert solution, "appendix_notation: no {solution} admonition"
    classes, body = solution.group(1).split(), solution.group(2)
    assert "dropdown" in classes and "toggle-hidden" in classes, \
        f"the solution is not folded by default (classes {classes})"
    assert 'aria-expanded="false"' in body and 'href="#ex-notation-warp"' in body
    assert "teach the network so little about their depth" in body, "the solution's content is missing"


#: A chapter page with an exercise whose solution holds an executed code cell (a gated solution).
EXERCISE_PAGE = "book/02_view_synthesis.html"
EXERCISE_LABEL, EXERCISE_TITLE = "ex-ch2-align", "Half a pixel from mixing conventions"

#: Served next to the site, so that the chapter in its iframe is same-origin: the script reads the
#: solution's state, clicks its title as a reader would, and writes both states into #result.
_CLICK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>click test</title></head><body>
<pre id="result">pending</pre>
<iframe id="page" src="/{page}" style="width:1280px;height:2400px"></iframe>
<script>
const frame = document.getElementById("page"), result = document.getElementById("result");
function state(doc, solution) {{
  const content = solution.querySelector(".admonition-title ~ *");
  const button = solution.querySelector("button.toggle-button");
  return {{classes: solution.className, expanded: button ? button.getAttribute("aria-expanded") : null,
          visibility: doc.defaultView.getComputedStyle(content).visibility,
          height: content.getBoundingClientRect().height}};
}}
frame.addEventListener("load", () => setTimeout(() => {{
  try {{
    const doc = frame.contentDocument;
    const solution = doc.querySelector('.solution .admonition-title a[href="#{label}"]').closest(".solution");
    const before = state(doc, solution);
    solution.querySelector(".admonition-title").click();
    setTimeout(() => {{ result.textContent = JSON.stringify({{before: before, after: state(doc, solution)}}); }}, 1000);
  }} catch (error) {{ result.textContent = "error: " + error; }}
}}, 1000));
</script>
</body></html>
"""


def test_chapter_exercise_solution_opens_on_click(site_url):
    """A chapter's {exercise} shows its title; its solution, executed code included, stays
    folded until the reader clicks its title, and then shows (offline, with the site's own JS)."""
    dom = _dom(f"{site_url}/{EXERCISE_PAGE}")
    exercise = re.search(rf'<div class="exercise admonition[^"]*" id="{EXERCISE_LABEL}">(.*?)</div>', dom, re.S)
    assert exercise, f"{EXERCISE_PAGE}: the {{exercise}} {EXERCISE_LABEL} did not render as an admonition"
    assert EXERCISE_TITLE in exercise.group(1), f"{EXERCISE_PAGE}: exercise title {EXERCISE_TITLE!r} missing"
    cited = set(re.findall(r'href="bibliography\.html#([^"]+)"', dom))
    listed = set(re.findall(r'<div class="citation" id="([^"]+)"', _dom(f"{site_url}/book/bibliography.html")))
    assert cited, f"{EXERCISE_PAGE}: no citation links to the References page"
    assert cited <= listed, f"{EXERCISE_PAGE}: citations to no entry of the References page: {sorted(cited - listed)}"
    solution = re.search(rf'<div class="(solution[^"]*)" id="[^"]*">\s*<p class="admonition-title"[^>]*>[^<]*'
                         rf'<a class="reference internal" href="#{EXERCISE_LABEL}">(.*?)</section>', dom, re.S)
    assert solution, f"{EXERCISE_PAGE}: no {{solution}} of {EXERCISE_LABEL}"
    classes, body = solution.group(1).split(), solution.group(2)
    assert "dropdown" in classes and "toggle-hidden" in classes, f"the solution is not folded by default ({classes})"
    assert 'aria-expanded="false"' in body
    assert 'class="cell_output' in body, "the solution lacks its executed code cell and output"

    _EXTRA_PAGES["/__click_test__.html"] = _CLICK_PAGE.format(page=EXERCISE_PAGE, label=EXERCISE_LABEL)
    clicked = re.search(r'<pre id="result">(.*?)</pre>', _dom(f"{site_url}/__click_test__.html"), re.S)
    assert clicked and clicked.group(1).startswith("{"), f"the click test did not run: {clicked and clicked.group(1)}"
    states = json.loads(html.unescape(clicked.group(1)))
    before, after = states["before"], states["after"]
    assert "toggle-hidden" in before["classes"] and before["expanded"] == "false", before
    assert before["visibility"] == "hidden" and before["height"] == 0, f"the folded solution is visible: {before}"
    assert "toggle-hidden" not in after["classes"] and after["expanded"] == "true", after
    assert after["visibility"] == "visible" and after["height"] > 0, f"the solution did not open on click: {after}"
