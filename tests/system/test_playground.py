"""The playground at / in a real browser: Debian's chromium driven by Playwright, against a live server.

The test types and clicks as a person would and checks what the page shows against the API. Every
request the page makes outside the server is blocked and recorded: there must be none (no CDN), so
the page and /docs work offline. A phone (390 px, touch) must not scroll sideways and a tap must
show a bar's value; axe-core (vendored in tests/system/vendor/axe-core, injected by the test, never
served) must find no serious or critical accessibility violation. Skipped when chromium or
playwright is absent (`.ci/run` installs chromium; playwright comes with the dev extra).
NAMEGEN_SCREENSHOT=1 rewrites docs/playground.png.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import httpx
import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = ROOT / "docs" / "playground.png"
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 3,
}

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(), reason="chromium is not installed (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def browser(server_url):
    """Chromium, and a way to open pages that may reach only the server (checked at the end)."""
    outside: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )

        def only_the_server(route):  # this machine's test servers; nothing from outside
            if route.request.url.startswith(server_url.rsplit(":", 1)[0] + ":"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        def new_page(**context_options):
            context = chromium.new_context(accept_downloads=True, **context_options)
            context.route("**/*", only_the_server)
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            return page

        yield new_page
        chromium.close()
    assert not outside, f"the page reached outside the server: {outside}"
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture(scope="module")
def browser_page(browser):
    return browser(viewport={"width": 1280, "height": 640})


@pytest.fixture(scope="module")
def phone_page(browser):
    return browser(**PHONE)


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => (await axe.run(document)).violations
             .filter((v) => v.impact === "serious" || v.impact === "critical")
             .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)"""
    )
    return found


def luminance(rgb: str) -> float:
    """WCAG relative luminance of a computed `rgb(r, g, b)` colour."""
    channels = [int(c) / 255 for c in rgb[rgb.index("(") + 1 : rgb.index(")")].replace(",", " ").split()[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted([luminance(a), luminance(b)], reverse=True)
    return (high + 0.05) / (low + 0.05)


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
    shown = [
        (r.get_attribute("data-name"), r.locator("td.name").inner_text(), r.locator("td.loss").inner_text(),
         r.locator("td.pct").inner_text())
        for r in rows.all()
    ]  # fmt: skip
    assert shown == [
        (s["name"], s["name"].capitalize(), f"{s['loss']:.4f}", f"{round(s['percentile'])} %")
        for s in want["names"]
    ]  # the API's text, shown capitalised, with its percentile
    assert all(name.startswith("ka") and len(name) <= 12 for name, *_ in shown)
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
    # the chart as text: a table of every entry, likeliest first
    page.click("details summary")
    table = page.locator("#chart-table tbody tr")
    expect(table).to_have_count(len(alphabet))
    ranked = sorted(want, key=want.get, reverse=True)
    assert [r.get_attribute("data-char") for r in table.all()] == ranked
    assert table.first.locator("td").nth(1).inner_text() == f"{100 * want[ranked[0]]:.2f} %"
    page.click("details summary")

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
    expect(page.locator("#word-loss")).to_contain_text(
        f"Emma: more name-like than {round(want['percentile'])} % of real names"
    )
    assert serious_violations(page) == []

    if os.environ.get("NAMEGEN_SCREENSHOT"):
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    # a character outside the alphabet: the API's message, shown to the person, and no stale result
    page.locator("#word").press_sequentially("7")
    expect(page.locator("#score-error")).to_contain_text("outside the alphabet")
    expect(page.locator("#strip .cell")).to_have_count(0)
    expect(page.locator("#word-loss")).to_have_text("")
    page.locator("#next-prefix").press_sequentially("7")
    expect(page.locator("#next-error")).to_contain_text("outside the alphabet")
    expect(page.locator("#chart .bar")).to_have_count(0)
    expect(page.locator("#chart-table tbody tr")).to_have_count(0)
    page.fill("#prefix", "k7")  # the form lets it through; the API says no
    page.click("#sample-button")
    expect(page.locator("#sample-error")).to_contain_text(
        "prefix: 'k7' contains characters outside the alphabet"
    )
    expect(rows).to_have_count(0)
    expect(page.locator("#sample-note")).to_have_text("")


def test_the_strip_reads_by_lightness_with_legible_numbers(browser_page, server_url):
    """Colour-blind safe: the cells get lighter as the probability grows (one ordered scale, no
    red-green pair to tell apart), and every number is legible on its cell (>= 4.5:1)."""
    page = browser_page
    page.goto(f"{server_url}/")
    page.locator("#word").press_sequentially("qzxemmaly", delay=20)
    expect = sync_api.expect
    expect(page.locator("#strip")).to_have_attribute("data-word", "qzxemmaly")
    cells = page.locator("#strip .cell").all()
    styles = [
        (float(c.get_attribute("data-prob")), c.evaluate("e => getComputedStyle(e).backgroundColor"),
         c.evaluate("e => getComputedStyle(e).color"))
        for c in cells
    ]  # fmt: skip
    by_prob = sorted(styles)
    assert by_prob[0][0] < 0.01 < by_prob[-1][0]  # the word spans the scale
    lightness = [luminance(background) for _, background, _ in by_prob]
    assert lightness == sorted(lightness) and lightness[0] < lightness[-1]
    assert all(contrast(background, text) >= 4.5 for _, background, text in styles)


def test_a_phone_fits_the_page_and_a_tap_shows_a_bars_value(phone_page, server_url):
    page, expect = phone_page, sync_api.expect
    page.goto(f"{server_url}/")
    expect(page.locator("#model option")).not_to_have_count(0)
    page.fill("#n", "8")
    page.fill("#seed", "3")
    page.locator("#sample-button").tap()
    expect(page.locator("#names tbody tr")).to_have_count(8)
    page.locator("#next-prefix").press_sequentially("emm", delay=30)
    expect(page.locator("#chart")).to_have_attribute("data-prefix", "emm")
    page.locator("#word").press_sequentially("emma", delay=30)
    expect(page.locator("#strip")).to_have_attribute("data-word", "emma")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    assert page.evaluate("innerWidth") == 390
    table_fits = "(w => w.scrollWidth <= w.clientWidth)(document.querySelector('.table-wrap'))"
    assert page.evaluate(table_fits)  # the names table too, without scrolling inside its box

    want = {d["char"]: d["prob"] for d in api(server_url, "/next-char", {"prefix": "emm"})["distribution"]}
    for char in ("e", "."):
        page.locator(f'#chart .bar[data-char="{char}"]').tap()
        expect(page.locator("#chart-value")).to_have_attribute("data-char", char)
        label = ". (end)" if char == "." else char
        expect(page.locator("#chart-value")).to_have_text(f'after "emm": {label} {100 * want[char]:.2f} %')
    assert serious_violations(page) == []


def test_starred_names_stay_in_the_shortlist_and_download_as_csv(browser_page, server_url):
    page, expect = browser_page, sync_api.expect
    page.goto(f"{server_url}/")
    page.evaluate("localStorage.clear()")
    page.reload()
    page.select_option("#model", "names-mlp")
    page.fill("#n", "5")
    page.fill("#seed", "11")
    page.click("#sample-button")
    rows = page.locator("#names tbody tr")
    expect(rows).to_have_count(5)
    want = api(server_url, "/sample", {"model": "names-mlp", "n": 5, "seed": 11})["names"]
    expect(page.locator("#shortlist li")).to_have_count(0)
    expect(page.locator("#shortlist-download")).to_be_disabled()
    for i in (0, 2, 2, 3):  # the second tap on the third name takes it off again
        rows.nth(i).locator("button.star").click()
    expect(rows.nth(0).locator("button.star")).to_have_attribute("aria-pressed", "true")
    expect(rows.nth(2).locator("button.star")).to_have_attribute("aria-pressed", "false")
    page.reload()  # kept in the browser
    items = page.locator("#shortlist li")
    expect(items).to_have_count(2)
    assert [i.get_attribute("data-name") for i in items.all()] == [want[0]["name"], want[3]["name"]]
    assert items.first.locator(".name").inner_text() == want[0]["name"].capitalize()
    with page.expect_download() as download:
        page.click("#shortlist-download")
    assert download.value.suggested_filename == "namegen-shortlist.csv"
    csv = Path(download.value.path()).read_text()
    assert csv.splitlines() == [
        "name,model,loss,percentile",
        *(f"{s['name']},names-mlp,{s['loss']},{s['percentile']}" for s in (want[0], want[3])),
    ]
    items.first.locator("button").click()
    expect(items).to_have_count(1)
    page.click("#shortlist-clear")
    expect(items).to_have_count(0)


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
    assert [r.get_attribute("data-name") for r in rows.all()] == [s["name"] for s in want["names"]]
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


def test_the_gender_selector_conditions_every_panel_and_the_score_panel_classifies(browser_page, server_url):
    page, expect = browser_page, sync_api.expect
    listed = {m["name"]: m for m in httpx.get(f"{server_url}/models").json()["models"]}
    (gendered,) = [name for name, m in listed.items() if m["conditions"]]
    page.goto(f"{server_url}/")
    page.select_option("#model", "names-mlp")  # a model without conditions: no selector
    expect(page.locator("#gender-label")).to_be_hidden()
    page.select_option("#model", gendered)
    expect(page.locator("#gender-label")).to_be_visible()
    assert [o.get_attribute("value") for o in page.locator("#gender option").all()] == ["", "female", "male"]
    page.select_option("#gender", "male")
    male = {"model": gendered, "condition": {"gender": "male"}}

    page.fill("#n", "8")
    page.fill("#seed", "11")
    page.click("#sample-button")
    rows = page.locator("#names tbody tr")
    expect(rows).to_have_count(8)
    want = api(server_url, "/sample", {**male, "n": 8, "seed": 11, "temperature": 1, "max_length": 32})
    assert [r.get_attribute("data-name") for r in rows.all()] == [s["name"] for s in want["names"]]
    unconditioned = api(server_url, "/sample", {"model": gendered, "n": 8, "seed": 11})
    assert want["names"] != unconditioned["names"]

    page.locator("#next-prefix").press_sequentially("jo", delay=40)
    expect(page.locator("#chart")).to_have_attribute("data-prefix", "jo")
    want = {
        d["char"]: d["prob"] for d in api(server_url, "/next-char", {**male, "prefix": "jo"})["distribution"]
    }
    got = {
        b.get_attribute("data-char"): float(b.get_attribute("data-prob"))
        for b in page.locator("#chart .bar").all()
    }
    assert got == pytest.approx(want, rel=1e-12)

    page.locator("#word").press_sequentially("emma", delay=40)
    expect(page.locator("#strip")).to_have_attribute("data-word", "emma")
    want = api(server_url, "/loss", {**male, "word": "emma"})
    expect(page.locator("#word-loss")).to_contain_text(f"loss {want['loss']:.4f}")
    line = page.locator("#classification")
    expect(line).to_be_visible()
    (answer,) = api(server_url, "/classify", {"model": gendered, "words": ["emma"]})["results"]
    expect(line).to_have_attribute("data-female", str(answer["gender"]["female"]))
    expect(line).to_contain_text(f"{100 * answer['gender']['female']:.1f}% female")
    assert answer["gender"]["female"] > 0.9

    page.select_option("#model", "names-mlp")  # back to a plain model: no selector, no classification
    expect(page.locator("#gender-label")).to_be_hidden()
    expect(page.locator("#classification")).to_be_hidden()


def test_docs_render_offline_in_the_browser(browser_page, server_url):
    page = browser_page
    page.goto(f"{server_url}/docs")
    sync_api.expect(page.locator(".opblock-summary-path").first).to_be_visible(timeout=20_000)
    paths = {p.inner_text() for p in page.locator(".opblock-summary-path").all()}
    assert {"/sample", "/next-char", "/loss", "/models", "/health"} <= {
        p.replace("\u200b", "") for p in paths
    }


@pytest.fixture(scope="module")
def wide_alphabet_url(tmp_path_factory):
    """A server whose one model has 44 symbols: lowercase, uppercase, digits, ' and - (a custom word
    list kept as it is), trained here in a second."""
    import random

    from model import train
    from tests.conftest import RunningServer

    tmp = tmp_path_factory.mktemp("wide")
    rng = random.Random(5)
    symbols = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ01234'-"
    words = {"".join(rng.choice(symbols) for _ in range(rng.randint(2, 8))) for _ in range(3000)}
    (tmp / "words.txt").write_text("\n".join(sorted(words)) + "\n", encoding="utf-8")
    out = tmp / "wide-bigram.safetensors"
    args = ["--family", "bigram", "--data", str(tmp / "words.txt"), "--out", str(out), "--no-progress"]
    assert train.main([*args, "--device", "cpu"]) == 0
    server = RunningServer(tmp / "server.log", NAMEGEN_WEIGHTS=str(out), NAMEGEN_DEFAULT_MODEL="")
    try:
        yield server.wait_healthy().url
    finally:
        server.stop()


@pytest.mark.parametrize(
    "viewport", [{"width": 1280, "height": 640}, PHONE["viewport"]], ids=["wide", "phone"]
)
def test_a_chart_of_44_symbols_keeps_every_label_apart_and_the_page_its_width(
    browser, wide_alphabet_url, viewport
):
    page = browser(viewport=viewport)
    page.goto(f"{wide_alphabet_url}/")
    page.locator("#next-prefix").press_sequentially("a", delay=30)
    sync_api.expect(page.locator("#chart")).to_have_attribute("data-prefix", "a")
    labels = page.evaluate(
        "[...document.querySelectorAll('#chart .bar .char')].map(c => c.getBoundingClientRect())"
        ".map(r => [r.left, r.right])"
    )
    assert len(labels) == page.locator("#chart-table tbody tr").count() == 44  # '.' included
    for (_, right), (left, _) in itertools.pairwise(labels):
        assert left >= right, "two labels overlap"
    bars = page.evaluate(
        "[...document.querySelectorAll('#chart .bar')].map(b => b.getBoundingClientRect().width)"
    )
    assert min(bars) >= 9, "bars too thin to read or to tap"  # .6rem: room for a label's character
    # the chart scrolls inside its own box; the page never sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("innerWidth")
    page.context.close()
