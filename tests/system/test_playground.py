"""The playground at / in a real browser: Debian's chromium driven by Playwright, against a live server.

The test types and clicks as a person would and checks what the page shows against the API. Every
request the page makes outside the server is blocked and recorded: there must be none (no CDN), so
the page and /docs work offline. Skipped when chromium or playwright is absent (`.ci/run` installs
chromium; playwright comes with the dev extra). NAMEGEN_SCREENSHOT=1 rewrites docs/playground.png.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = ROOT / "docs" / "playground.png"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(), reason="chromium is not installed (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def browser_page(server_url):
    outside: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        context = browser.new_context(viewport={"width": 1280, "height": 640})

        def only_the_server(route):
            if route.request.url.startswith(server_url):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", only_the_server)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        browser.close()
    assert not outside, f"the page reached outside the server: {outside}"
    assert not errors, f"JavaScript errors: {errors}"


def api(server_url: str, path: str, body: dict) -> dict:
    response = httpx.post(f"{server_url}{path}", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_playground_samples_charts_and_scores_like_the_api(browser_page, server_url):
    page, expect = browser_page, sync_api.expect
    listed = httpx.get(f"{server_url}/models").json()
    page.goto(f"{server_url}/")

    # the model picker lists every loaded model, the default selected
    expect(page.locator("#model option")).to_have_count(len(listed["models"]))
    assert page.locator("#model").input_value() == listed["default"]
    page.select_option("#model", "names-mlp")
    alphabet = next(m["alphabet"] for m in listed["models"] if m["name"] == "names-mlp")

    # invent names: fill the form, click Sample, the names appear with their losses
    page.fill("#n", "6")
    page.fill("#temperature", "0.8")
    page.fill("#top-k", "10")
    page.fill("#prefix", "ka")
    page.fill("#max-length", "12")
    page.fill("#seed", "7")
    page.check("#novel")
    page.click("#sample-button")
    rows = page.locator("#names tbody tr")
    expect(rows).to_have_count(6)
    asked = {
        "n": 6,
        "temperature": 0.8,
        "top_k": 10,
        "prefix": "ka",
        "max_length": 12,
        "seed": 7,
        "novel": True,
    }
    want = api(server_url, "/sample", {"model": "names-mlp", **asked})
    shown = [(r.locator("td.name").inner_text(), r.locator("td.loss").inner_text()) for r in rows.all()]
    assert shown == [(s["name"], f"{s['loss']:.4f}") for s in want["names"]]
    assert all(name.startswith("ka") and len(name) <= 12 for name, _ in shown)
    expect(page.locator("#names .tag.novel")).to_have_count(6)

    # next character: type a prefix, one bar per vocabulary entry, heights from the API's probabilities
    page.locator("#next-prefix").press_sequentially("emm", delay=40)
    expect(page.locator("#chart")).to_have_attribute("data-prefix", "emm")
    bars = page.locator("#chart .bar")
    expect(bars).to_have_count(len(alphabet))
    assert [b.get_attribute("data-char") for b in bars.all()] == list(alphabet)
    want = {
        d["char"]: d["prob"]
        for d in api(server_url, "/next-char", {"model": "names-mlp", "prefix": "emm"})["distribution"]
    }
    got = {b.get_attribute("data-char"): float(b.get_attribute("data-prob")) for b in bars.all()}
    assert got == pytest.approx(want, rel=1e-12)
    tallest = max(bars.all(), key=lambda b: b.locator(".fill").bounding_box()["height"])
    assert tallest.get_attribute("data-char") == max(want, key=want.get)

    # score a name: one coloured cell per prediction (the end included), the loss shown
    page.locator("#word").press_sequentially("emma", delay=40)
    expect(page.locator("#strip")).to_have_attribute("data-word", "emma")
    want = api(server_url, "/loss", {"model": "names-mlp", "word": "emma"})
    cells = page.locator("#strip .cell")
    expect(cells).to_have_count(len("emma") + 1)
    assert [c.get_attribute("data-char") for c in cells.all()] == [c["char"] for c in want["chars"]]
    assert [float(c.get_attribute("data-prob")) for c in cells.all()] == pytest.approx(
        [c["prob"] for c in want["chars"]], rel=1e-12
    )
    assert [c.locator(".p").inner_text() for c in cells.all()] == [f"{c['prob']:.3f}" for c in want["chars"]]
    assert len({c.evaluate("e => getComputedStyle(e).backgroundColor") for c in cells.all()}) > 1
    expect(page.locator("#word-loss")).to_contain_text(f"loss {want['loss']:.4f}")

    if os.environ.get("NAMEGEN_SCREENSHOT"):
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    # a character outside the alphabet: the API's message, shown to the person
    page.locator("#word").press_sequentially("7")
    expect(page.locator("#score-error")).to_contain_text("outside the alphabet")


def test_playground_constraints_sample_and_condition_the_chart(browser_page, server_url):
    page, expect = browser_page, sync_api.expect
    page.goto(f"{server_url}/")
    expect(page.locator("#model option").first).to_be_attached()
    page.select_option("#model", "names-mlp")
    page.fill("#n", "5")
    page.fill("#seed", "3")
    page.fill("#ends-with", "lyn")
    page.fill("#contains", "a, e")
    page.fill("#excludes", "z")
    page.fill("#length-min", "5")
    page.fill("#length-max", "9")
    page.fill("#regex", "[a-m].*")
    page.click("#sample-button")
    rows = page.locator("#names tbody tr")
    expect(rows).to_have_count(5)
    constraints = {
        "ends_with": "lyn",
        "contains": ["a", "e"],
        "excludes": ["z"],
        "length": [5, 9],
        "regex": "[a-m].*",
    }
    want = api(server_url, "/sample", {"model": "names-mlp", "n": 5, "seed": 3, "constraints": constraints})
    assert [r.locator("td.name").inner_text() for r in rows.all()] == [s["name"] for s in want["names"]]
    note = page.locator("#constraint-note")
    expect(note).to_have_attribute("data-method", "exact")
    expect(note).to_contain_text("exact conditional")
    p = want["constraint"]["p_constraint"]
    expect(note).to_contain_text(f"{100 * p:.2f}%" if p >= 0.01 else f"{p:.3g}")

    # the next-character chart is conditional on the constraints: it matches /next-char with them
    page.locator("#next-prefix").press_sequentially("ma", delay=40)
    expect(page.locator("#chart")).to_have_attribute("data-prefix", "ma")
    expect(page.locator("#chart")).to_have_attribute("data-conditional", "yes")
    want = api(server_url, "/next-char", {"model": "names-mlp", "prefix": "ma", "constraints": constraints})
    bars = page.locator("#chart .bar")
    got = {b.get_attribute("data-char"): float(b.get_attribute("data-prob")) for b in bars.all()}
    assert got == pytest.approx({d["char"]: d["prob"] for d in want["distribution"]}, rel=1e-12)
    assert got["z"] == 0.0  # excluded
    expect(page.locator("#next-note")).to_contain_text("given the constraints: exact")

    # an impossible combination: the API's reason, shown to the person
    page.fill("#regex", "[xz]+")
    page.click("#sample-button")
    expect(page.locator("#sample-error")).to_contain_text("no name satisfies")


def test_docs_render_offline_in_the_browser(browser_page, server_url):
    page = browser_page
    page.goto(f"{server_url}/docs")
    sync_api.expect(page.locator(".opblock-summary-path").first).to_be_visible(timeout=20_000)
    paths = {p.inner_text() for p in page.locator(".opblock-summary-path").all()}
    assert {"/sample", "/next-char", "/loss", "/models", "/health"} <= {
        p.replace("\u200b", "") for p in paths
    }
