"""The search page: its JSON API in-process, then end to end in headless Chromium (screenshots kept)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from PIL import Image

from tests.conftest import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.slow


def _call(app: Any, method: str, url: str, **kw: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as c:
            return await c.request(method, url, **kw)

    return asyncio.run(go())


@pytest.fixture(scope="module")
def ui_app(stack: Any, indexed: Any) -> Any:
    from kit.job.ui.app import create_app

    return create_app(stack.client, index="images")


def test_page_and_info(ui_app: Any, stack: Any) -> None:
    page = _call(ui_app, "GET", "/")
    assert page.status_code == 200 and 'accept="image/*" capture="environment"' in page.text
    info = _call(ui_app, "GET", "/api/info").json()
    assert info["index"] == "images" and info["modes"] == ["vector", "hybrid", "tags"]
    assert "oskit-clip-tiny" in info["model"] and "red circle" in info["examples"]
    assert "shapes, colours" in info["about"]
    assert _call(ui_app, "GET", "/static/app.js").status_code == 200


def test_search_api(ui_app: Any) -> None:
    r = _call(ui_app, "GET", "/api/search", params={"q": "blue star", "mode": "hybrid", "k": "4"})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert len(hits) == 4 and all(h["source"]["thumbnail"] for h in hits)
    assert not any("image_embedding" in h["source"] for h in hits)


def test_search_api_says_when_the_offline_model_cannot_answer(ui_app: Any) -> None:
    body = _call(ui_app, "GET", "/api/search", params={"q": "man looking at a phone", "k": "3"}).json()
    assert body["notes"] and "carry no signal" in body["notes"][0]
    assert "notes" not in _call(ui_app, "GET", "/api/search", params={"q": "red circle", "k": "3"}).json()


def test_similar_api(ui_app: Any, samples: Any) -> None:
    photo = next(q for q in samples.queries if q.type == "image")
    r = _call(ui_app, "POST", "/api/similar", files={"photo": ("p.jpg", photo.image.read_bytes(), "image/jpeg")},
              data={"k": "3"})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert len(hits) == 3 and all("hash_distance" in h for h in hits)


def test_more_like_this_api(ui_app: Any) -> None:
    first = _call(ui_app, "GET", "/api/search", params={"q": "red circle", "k": "1"}).json()["hits"][0]
    body = _call(ui_app, "GET", "/api/similar", params={"id": first["id"], "k": "4"}).json()
    assert body["hits"][0]["id"] == first["id"] and body["hits"][0]["label"] == "identical"
    assert body["query"] == first["source"]["file_name"] and len(body["hits"]) == 4


@pytest.mark.parametrize("method,url,kw,status,msg", [
    ("GET", "/api/search", {"params": {"q": "x", "mode": "fuzzy"}}, 400, "Pick a search mode from the menu."),
    ("GET", "/api/search", {"params": {"q": " "}}, 400, "Type a few words describing the picture"),
    ("GET", "/api/search", {"params": {"q": "x", "k": "9999"}}, 400, "a number from 1 to 200"),
    ("GET", "/api/similar", {"params": {"id": "nope"}}, 400, "no longer in the collection"),
    ("POST", "/api/similar", {"data": {"k": "3"}}, 400, "no photo in the upload"),
    ("POST", "/api/similar", {"files": {"photo": ("x.jpg", b"text", "image/jpeg")}}, 400,
     "not a picture this page can read"),
    ("GET", "/nope", {}, 404, "no such page: /nope"),
])
def test_api_errors_are_in_browser_words(ui_app: Any, method: str, url: str, kw: dict, status: int, msg: str) -> None:
    r = _call(ui_app, method, url, **kw)
    assert r.status_code == status
    err = r.json()["error"]
    assert msg in err["message"] and err["status"] == status and set(err) == {"message", "hint", "status"}
    for cli_word in ("oskit", "--", "`", "-k "):
        assert cli_word not in err["message"] and cli_word not in str(err["hint"] or "")


@pytest.fixture(scope="module")
def page_url(stack: Any, indexed: Any) -> Iterator[str]:
    from kit.job.demo import ServerThread
    from kit.job.ui.app import create_app

    server = ServerThread(create_app(stack.client, index="images"), name="search page")
    yield server.start()
    server.stop()


@pytest.mark.browser
def test_search_page_in_chromium(page_url: str, samples: Any, stack: Any) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Debian chromium is missing at /usr/bin/chromium: run `make setup-test`")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    photo = next(q for q in samples.queries if q.type == "image")
    status = "document.getElementById('status').textContent"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_url)

            # landing view: what the model knows, example queries that work
            page.wait_for_selector("#landing:not([hidden]) .example")
            assert "shapes, colours" in page.text_content("#about")
            page.screenshot(path=str(ARTIFACTS / "ui-landing.png"), full_page=True)
            page.locator(".example", has_text="red circle").click()
            page.wait_for_selector(".card")
            assert page.url.endswith("?q=red+circle")
            expected = min(30, stack.client.request("GET", "/images/_count")["count"])
            assert page.locator(".card").count() == expected
            assert f"{expected} results" in page.text_content("#status")
            assert page.locator("#landing").is_hidden()
            # cards: thumbnail, tags / OCR text / caption, "more like this"
            assert page.locator(".card img").first.get_attribute("src").startswith("data:image/jpeg;base64,")
            assert page.locator(".card .tags").count() > 0
            assert page.locator(".card .more").count() == expected
            page.screenshot(path=str(ARTIFACTS / "ui-text-search.png"), full_page=True)

            # metadata on click
            page.locator(".card .open").first.click()
            page.wait_for_selector("dialog[open]")
            meta = page.text_content("#details-meta")
            assert '"file_name"' in meta and '"metadata"' in meta and "thumbnail" not in meta
            page.screenshot(path=str(ARTIFACTS / "ui-metadata.png"))
            page.click("dialog .close")

            # mode switch and a smaller k: in the URL; the back button returns to the first search
            page.select_option("#mode", "hybrid")
            page.fill("#k", "5")
            page.click("#go")
            page.wait_for_function(f"{status}.includes('5 results')")
            assert "mode=hybrid" in page.url and "k=5" in page.url
            page.go_back()
            page.wait_for_function(f"{status}.includes('{expected} results')")
            assert page.input_value("#q") == "red circle" and page.input_value("#mode") == "vector"
            # a shared URL opens the same search
            page.goto(page_url + "?q=blue+star&k=4")
            page.wait_for_function(f"{status}.includes('4 results')")

            # more like this, from the keyboard: Tab to the first card's button, Enter
            page.locator(".card .more").first.focus()
            first_id = page.locator(".card").first.get_attribute("data-id")
            page.keyboard.press("Enter")
            page.wait_for_function(f"{status}.includes('results for more like')")
            assert f"like={first_id}" in page.url
            assert page.locator("#query").is_visible()
            assert page.text_content("#query-title") == "More like this picture"
            assert page.locator(".card").first.get_attribute("data-id") == first_id
            assert page.locator(".card .label").first.text_content() == "identical"
            page.screenshot(path=str(ARTIFACTS / "ui-more-like-this.png"), full_page=True)
            page.go_back()
            page.wait_for_function(f"{status}.includes('4 results')")
            assert page.locator("#query").is_hidden()

            # "/" focuses the search box
            page.locator("body").click(position={"x": 5, "y": 5})
            page.keyboard.press("/")
            assert page.evaluate("document.activeElement.id") == "q"

            # photo upload through the file input (the phone camera's path): the photo is shown
            page.set_input_files("#photo", str(photo.image))
            page.wait_for_function(f"{status}.includes('results for photo')")
            assert page.locator("#query").is_visible()
            assert page.get_attribute("#query-img", "src").startswith("blob:")
            labels = page.locator(".card .label").all_text_contents()
            assert set(labels) <= {"identical", "near-identical", "similar", "unrelated"}
            first_name = page.locator(".card .name").first.text_content()
            page.screenshot(path=str(ARTIFACTS / "ui-photo-search.png"), full_page=True)

            # drag and drop of a file onto the drop zone
            buf = io.BytesIO()
            Image.open(photo.image).save(buf, "JPEG")
            data = list(buf.getvalue())
            page.evaluate("""(bytes) => {
                const file = new File([new Uint8Array(bytes)], "dropped.jpg", {type: "image/jpeg"});
                const dt = new DataTransfer(); dt.items.add(file);
                const zone = document.getElementById("drop");
                zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: dt, bubbles: true, cancelable: true}));
                zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
            }""", data)
            page.wait_for_function(f"{status}.includes('results for photo dropped.jpg')")
            assert page.locator(".card .name").first.text_content() == first_name

            # a query the offline model cannot answer says so
            page.fill("#q", "man looking at a phone")
            page.press("#q", "Enter")
            page.wait_for_function("document.getElementById('notice').textContent.includes('does not know people')")
            assert page.locator("#notice").is_visible()

            # errors in a browser user's words
            page.fill("#k", "500")
            page.fill("#q", "anything")
            page.click("#go")
            page.wait_for_selector("#error:not([hidden])")
            message = page.text_content("#error")
            assert "a number from 1 to 200" in message and "-k" not in message and "oskit" not in message
            page.screenshot(path=str(ARTIFACTS / "ui-error.png"))
            assert errors == []

            # a phone: touch, narrow screen, nothing wider than the screen
            phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                        device_scale_factor=2).new_page()
            phone.goto(page_url + "?q=red+circle&k=6")
            phone.wait_for_function(f"{status}.includes('6 results')")
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            phone.locator(".card .more").first.tap()
            phone.wait_for_function(f"{status}.includes('results for more like')")
            box = phone.locator(".card .more").first.bounding_box()
            assert box is not None and box["height"] >= 32  # a finger-sized target
            phone.screenshot(path=str(ARTIFACTS / "ui-phone.png"), full_page=True)
        finally:
            browser.close()
