"""The chat page's files, checked without a browser (the browser test is test_http_browser.py): nothing is
loaded from another host, what index.html references exists and is served by the app with the right type,
the ids app.js looks up are in the page, the server's text never goes in as HTML, and the accessibility
basics are there (labels, aria-live, visible focus, a phone viewport)."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
import uvicorn
from http_testing import free_port

from convrec.serve.http.app import STATIC_DIR, create_app
from convrec.serve.http.settings import ServeSettings

PAGE_FILES = ("index.html", "app.js", "style.css")
# a URL with a scheme or protocol-relative ("//cdn.example/x.js"), in markup, script or CSS
EXTERNAL = re.compile(r"""(?:\b[a-z][a-z0-9+.-]*:)?//[^\s"'`)<>]+""", re.IGNORECASE)


def text(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags() -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(text("index.html"))
    return parser.tags


def without_comments(source: str) -> str:
    """Comments may name things (an example URL in prose); only code and markup count."""
    source = re.sub(r"<!--.*?-->", "", source, flags=re.DOTALL)
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.DOTALL)
    return re.sub(r"(?m)(^|\s)//(\s.*)?$", r"\1", source)  # "// a comment", not "//host/path"


@pytest.mark.parametrize("name", PAGE_FILES)
def test_the_page_loads_nothing_from_another_host(name):
    found = EXTERNAL.findall(without_comments(text(name)))
    assert found == [], f"{name} names other hosts: {found}"
    if name == "style.css":
        assert "@import" not in text(name)


def test_the_external_url_check_finds_what_it_should():
    for source in ('<script src="https://cdn.example.org/x.js">', "@import url(//fonts.example.com/a.css);",
                   "fetch('http://127.0.0.1:9/api')"):
        assert EXTERNAL.findall(without_comments(source)), source
    assert not EXTERNAL.findall(without_comments("fetch(`/api/sessions/${id}`) // see https://example.org"))


def test_what_the_page_references_is_there_and_local():
    referenced = [attrs.get("src") or attrs.get("href") for tag, attrs in tags() if tag in ("script", "link")]
    assert sorted(referenced) == ["static/app.js", "static/style.css"]  # relative: served under a prefix too
    for path in referenced:
        assert (STATIC_DIR / Path(path).name).is_file(), path
    assert not re.search(r"""["'`]/(api|static)/""", text("app.js"))  # the API relative to the page, too


def test_every_id_app_js_looks_up_is_in_the_page():
    ids = {attrs["id"] for _, attrs in tags() if attrs.get("id")}
    wanted = set(re.findall(r"""\$\(["']([\w-]+)["']\)""", text("app.js")))
    assert wanted and wanted <= ids, wanted - ids


def test_server_text_never_goes_in_as_html():
    script = without_comments(text("app.js"))
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink


def test_accessibility_basics():
    found = tags()
    html = next(attrs for tag, attrs in found if tag == "html")
    assert html.get("lang") == "en"
    assert any(tag == "meta" and attrs.get("name") == "viewport" and "width=device-width" in (attrs.get("content") or "")
               for tag, attrs in found)
    labelled = {attrs.get("for") for tag, attrs in found if tag == "label"}
    inputs = [attrs["id"] for tag, attrs in found if tag in ("input", "textarea", "select")]
    assert inputs and all(i in labelled for i in inputs), (inputs, labelled)
    assert all(attrs.get("type") in ("button", "submit") for tag, attrs in found if tag == "button")
    assert any(attrs.get("aria-live") for _, attrs in found)
    assert ":focus-visible" in text("style.css") and "outline: none" not in text("style.css")


def test_the_app_serves_the_page_and_its_files():
    """The app without an engine (as for the OpenAPI schema): the page needs none."""
    app = create_app(None, None, ServeSettings())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        for path, name, kind in (("/", "index.html", "text/html"), ("/static/app.js", "app.js", "javascript"),
                                 ("/static/style.css", "style.css", "text/css")):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                assert response.status == 200 and kind in response.headers["content-type"], path
                assert response.read().decode("utf-8") == text(name), path
                # revalidated on every load (a 304 when unchanged): after an upgrade no stale app.js runs
                assert response.headers["cache-control"] == "no-cache" and response.headers["etag"], path
    finally:
        server.should_exit = True
        thread.join(20)
