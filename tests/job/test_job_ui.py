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
    assert _call(ui_app, "GET", "/static/app.js").status_code == 200


def test_search_api(ui_app: Any) -> None:
    r = _call(ui_app, "GET", "/api/search", params={"q": "blue star", "mode": "hybrid", "k": "4"})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert len(hits) == 4 and all(h["source"]["thumbnail"] for h in hits)
    assert not any("image_embedding" in h["source"] for h in hits)


def test_similar_api(ui_app: Any, samples: Any) -> None:
    photo = next(q for q in samples.queries if q.type == "image")
    r = _call(ui_app, "POST", "/api/similar", files={"photo": ("p.jpg", photo.image.read_bytes(), "image/jpeg")},
              data={"k": "3"})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert len(hits) == 3 and all(h["label"] for h in hits)


@pytest.mark.parametrize("method,url,kw,status,msg", [
    ("GET", "/api/search", {"params": {"q": "x", "mode": "fuzzy"}}, 400, "unknown search mode 'fuzzy'"),
    ("GET", "/api/search", {"params": {"q": " "}}, 400, "empty query"),
    ("GET", "/api/search", {"params": {"q": "x", "k": "9999"}}, 400, "k must be between 1 and 200"),
    ("POST", "/api/similar", {"data": {"k": "3"}}, 400, "no photo in the upload"),
    ("POST", "/api/similar", {"files": {"photo": ("x.jpg", b"text", "image/jpeg")}}, 400, "not an image"),
    ("GET", "/nope", {}, 404, "no such page: /nope"),
])
def test_api_errors_have_one_shape(ui_app: Any, method: str, url: str, kw: dict, status: int, msg: str) -> None:
    r = _call(ui_app, method, url, **kw)
    assert r.status_code == status
    err = r.json()["error"]
    assert msg in err["message"] and err["status"] == status and set(err) == {"message", "hint", "status"}


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
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_url)
            page.wait_for_function("document.getElementById('where').textContent.includes('images')")

            # text search, vector mode
            page.fill("#q", "red circle")
            page.press("#q", "Enter")
            page.wait_for_selector(".card")
            expected = min(30, stack.client.request("GET", "/images/_count")["count"])
            assert page.locator(".card").count() == expected
            assert page.locator(".card img").first.get_attribute("src").startswith("data:image/jpeg;base64,")
            assert f"{expected} results" in page.text_content("#status")
            page.screenshot(path=str(ARTIFACTS / "ui-text-search.png"), full_page=True)

            # metadata on click
            page.locator(".card").first.click()
            page.wait_for_selector("dialog[open]")
            meta = page.text_content("#details-meta")
            assert '"file_name"' in meta and '"metadata"' in meta and "thumbnail" not in meta
            page.screenshot(path=str(ARTIFACTS / "ui-metadata.png"))
            page.click("dialog .close")

            # mode switch (hybrid) and a smaller k
            page.select_option("#mode", "hybrid")
            page.fill("#k", "5")
            page.click("#go")
            page.wait_for_function("document.getElementById('status').textContent.includes('5 results')")

            # photo upload through the file input (the phone camera's path)
            page.set_input_files("#photo", str(photo.image))
            page.wait_for_function("document.getElementById('status').textContent.includes('photo')")
            labels = page.locator(".card .label").all_text_contents()
            assert labels and set(labels) <= {"identical", "near-identical", "similar", "unrelated"}
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
            page.wait_for_function("document.getElementById('status').textContent.includes('dropped.jpg')")
            assert page.locator(".card .name").first.text_content() == first_name

            # an error is shown, not swallowed
            page.select_option("#mode", "vector")
            page.fill("#k", "500")
            page.fill("#q", "anything")
            page.click("#go")
            page.wait_for_selector("#error:not([hidden])")
            assert "k must be between 1 and 200" in page.text_content("#error")
            assert errors == []
        finally:
            browser.close()
