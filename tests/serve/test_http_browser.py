"""The chat page of ``convrec serve`` in a real browser: headless Chromium from the system's packages
(``/usr/bin/chromium`` and ``/usr/bin/chromedriver``, driven by selenium; nothing is downloaded), against a
real server (ReDial, itemknn, no LLM) started once for the module with a bearer token.

The page asks for the token, sends a message typed and entered with the keyboard, shows the recommendations
as cards, records a like, and after a reload shows the same session (history and like) again. Network
failures and 503s are made by wrapping the page's ``fetch`` (the server is real, the wire is not): the page
must send the message again with the same ``client_message_id``, so the server answers it once. A phone-width
viewport shows the cards without horizontal scrolling.

Without Chromium, chromedriver or selenium each test is skipped with the reason, except under ``CI=true``
where each fails (``.ci/run`` installs them with ``scripts/install_browser.sh``). A desktop screenshot
goes to the test's tmp dir, and to ``docs/images/serve-page.png`` when ``CONVREC_UPDATE_SCREENSHOT=1`` (a
test run does not rewrite a committed file unasked).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from http_testing import Server, metric, start_llm_server, start_server

from convrec.io import atomic_write

CHROMIUM = Path(os.environ.get("CONVREC_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CONVREC_CHROMEDRIVER", "/usr/bin/chromedriver"))
ROOT = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = ROOT / "docs" / "images" / "serve-page.png"
TOKEN = "browser-test-token-0123456789"
ALIEN = "I loved Alien (1979), something similar?"
ALIEN_NEIGHBOURS = {"Aliens (1986)", "Prometheus (2012)", "Alien: Covenant (2017)", "Alien 3 (1992)"}
WAIT_S = 30


try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the `chromium` fixture says so, and skips or fails
    webdriver = None


def missing() -> list[str]:
    absent = [f"{path} (the Debian package {package})" for path, package in
              ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")) if not path.is_file()]
    if webdriver is None:
        absent.append("the selenium package (pip install -e '.[dev]')")
    return absent


@pytest.fixture(scope="session", autouse=True)  # session: set up before the data fixtures, so a skip is quick
def chromium() -> None:
    """Skip without the browser, with the reason; under CI=true fail instead (each test, not the collection:
    the rest of the suite still runs)."""
    if absent := missing():
        reason = f"the browser test needs {', '.join(absent)}; scripts/install_browser.sh installs them"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def server(chromium, redial, mirror: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("http-browser")
    running = start_server(workdir, mirror, data_dir, workdir / "sessions.sqlite3", token=TOKEN, name="browser")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                     "--window-size=1280,800", f"--user-data-dir={workdir / 'profile'}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER),
                                                               log_output=str(workdir / "chromedriver.log")))
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, server: Server):
    """The page at 1280x800 with nothing stored: no session and no token (the first request gets a 401)."""
    viewport(browser, 1280, 800)
    browser.get(server.base + "/")
    browser.execute_script("localStorage.clear(); sessionStorage.clear();")
    browser.refresh()  # a page that starts with nothing stored
    browser.get_log("browser")  # drop what earlier tests left
    return browser


def viewport(driver, width: int, height: int, mobile: bool = False) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


def wait_for(driver, condition, what: str):
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(
        lambda d: condition(d), message=f"waited {WAIT_S} s for {what}")


def signed_in(driver, server: Server) -> None:
    """The page with the token already in this tab's sessionStorage, a session made and ready."""
    driver.execute_script("sessionStorage.setItem('convrec.token', arguments[0]);", TOKEN)
    driver.get(server.base + "/")
    wait_for(driver, lambda d: d.execute_script("return localStorage.getItem('convrec.session')")
             and d.find_element(By.ID, "send").is_enabled(), "a session")


def type_and_enter(driver, text: str) -> None:
    box = driver.find_element(By.ID, "message")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def turns(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#log > li.turn")


def cards_of_last_turn(driver):
    def ready(d):
        found = turns(d)
        return found and found[-1].find_elements(By.CSS_SELECTOR, ".card")
    return wait_for(driver, ready, "recommendation cards")


def click(element) -> None:
    """As a user would: scrolled to the middle of the screen first (chromedriver scrolls only an element out
    of view, and one at the very bottom is under the sticky message box)."""
    element.parent.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()


def card_title(card) -> str:
    return card.find_element(By.CSS_SELECTOR, ".card-title").text


def pressed(card, kind: str) -> str:
    return card.find_element(By.CSS_SELECTOR, f'button[data-kind="{kind}"]').get_attribute("aria-pressed")


def session_id(driver) -> str:
    return driver.execute_script("return localStorage.getItem('convrec.session')")


def script_errors(driver) -> list[str]:
    """Errors in the page's console, other than the failed requests the tests provoke on purpose."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
            and "dropped by the test" not in entry["message"]]


def save_screenshot(driver, path: Path, docs: bool = False) -> None:
    """The viewport as PNG to ``path``; with ``docs``, also to docs/images in 64 colours (about 50 KB rather
    than 150: it is committed)."""
    png = driver.get_screenshot_as_png()
    targets = [(path, png)]
    if docs:
        from PIL import Image  # matplotlib's dependency

        small = io.BytesIO()
        Image.open(io.BytesIO(png)).convert("RGB").quantize(64, Image.Quantize.MEDIANCUT).save(
            small, "PNG", optimize=True)
        targets.append((DOCS_SCREENSHOT, small.getvalue()))
    for target, data in targets:
        with atomic_write(target, "wb", encoding=None) as out:
            out.write(data)


# The page's fetch, wrapped: every POST of a message is recorded (its client_message_id), and the first one
# is either answered by the server and then lost ("lose") or not sent and answered 503 ("busy").
WRAP_FETCH = """
const mode = arguments[0];
window.sentIds = [];
const realFetch = window.fetch;
let tripped = false;
window.fetch = async (url, init) => {
  const isMessage = /[/]messages([/]stream)?$/.test(String(url)) && init && init.method === 'POST';
  if (isMessage) window.sentIds.push(JSON.parse(init.body).client_message_id);
  if (isMessage && !tripped && mode === 'busy') {
    tripped = true;
    return new Response(JSON.stringify({error: {code: 'busy', message: 'every turn slot is taken',
                                                request_id: 'made-by-the-test'}}),
                        {status: 503, headers: {'Retry-After': '1', 'Content-Type': 'application/json'}});
  }
  const response = await realFetch(url, init);
  if (isMessage && !tripped && mode === 'lose') {
    tripped = true;
    throw new TypeError('Failed to fetch (dropped by the test)');
  }
  return response;
};
"""


def test_chat_like_and_reload_restore_the_session(page, server, tmp_path, redial):
    form = wait_for(page, lambda d: d.find_element(By.ID, "token-form").is_displayed() and
                    d.find_element(By.ID, "token-form"), "the token prompt (the API answered 401)")
    assert "Authorization: Bearer" in form.text  # the API's own message is shown
    token = page.find_element(By.ID, "token")
    assert page.switch_to.active_element == token  # focus goes where the user has to type
    token.send_keys(TOKEN, Keys.ENTER)
    wait_for(page, lambda d: session_id(d) and d.find_element(By.ID, "send").is_enabled(), "a session")
    assert not form.is_displayed()
    sid = session_id(page)
    assert server.request("GET", f"/api/sessions/{sid}").status == 200  # the page made it on the server

    type_and_enter(page, ALIEN)
    cards = cards_of_last_turn(page)
    titles = [card_title(card) for card in cards]
    assert len(cards) == 5 and set(titles) & ALIEN_NEIGHBOURS, titles
    answer = server.request("GET", f"/api/sessions/{sid}").body["messages"][0]
    assert titles == [r["display_title"] for r in answer["recommendations"]]  # the server's order and titles
    first = cards[0]
    assert first.find_element(By.CSS_SELECTOR, ".why").text == answer["recommendations"][0]["why"]
    facts = first.find_element(By.CSS_SELECTOR, ".facts").text
    assert "director" in facts and redial.catalog.get(answer["recommendations"][0]["item_id"]).metadata[
        "director"][0] in facts
    assert "mentions" not in facts and "imdb" not in facts  # the dataset's bookkeeping is not shown
    assert page.find_element(By.CSS_SELECTOR, ".turn .user").text.endswith(ALIEN)
    assert page.find_element(By.CSS_SELECTOR, ".turn .bot").text == answer["reply"]
    assert page.find_element(By.ID, "announce").get_attribute("textContent") == answer["reply"]  # aria-live
    assert page.switch_to.active_element == page.find_element(By.ID, "message")  # ready for the next one
    assert page.find_element(By.ID, "message").get_attribute("value") == ""

    trace = page.find_element(By.CSS_SELECTOR, ".turn details.trace")
    click(trace.find_element(By.TAG_NAME, "summary"))
    assert [s.text for s in trace.find_elements(By.CSS_SELECTOR, ".steps strong")] == [
        "link", "retrieve", "rerank", "reply"]
    assert "recognised: Alien (1979)" in trace.text

    liked = cards[1].get_attribute("data-item")
    click(cards[1].find_element(By.CSS_SELECTOR, 'button[data-kind="like"]'))
    wait_for(page, lambda d: pressed(cards[1], "like") == "true", "the like to show")
    assert pressed(cards[1], "dislike") == "false" and pressed(cards[0], "like") == "false"
    seen = cards[2].get_attribute("data-item")
    button = cards[2].find_element(By.CSS_SELECTOR, 'button[data-kind="seen"]')
    button.send_keys(Keys.SPACE)  # a real button: the keyboard presses it too
    wait_for(page, lambda d: pressed(cards[2], "seen") == "true", "the seen mark to show")
    assert server.request("GET", f"/api/sessions/{sid}").body["feedback"] == {
        liked: {"liked": True, "seen": False}, seen: {"liked": None, "seen": True}}
    page.execute_script("window.scrollTo(0, 0)")
    save_screenshot(page, tmp_path / "serve-page.png", docs=os.environ.get("CONVREC_UPDATE_SCREENSHOT") == "1")
    assert (tmp_path / "serve-page.png").stat().st_size > 10_000

    page.refresh()  # the session id is in localStorage, the token in this tab's sessionStorage
    restored = cards_of_last_turn(page)
    assert session_id(page) == sid and not page.find_element(By.ID, "token-form").is_displayed()
    assert [card_title(card) for card in restored] == titles
    assert page.find_element(By.CSS_SELECTOR, ".turn .user").text.endswith(ALIEN)
    by_item = {card.get_attribute("data-item"): card for card in restored}
    assert pressed(by_item[liked], "like") == "true" and pressed(by_item[seen], "seen") == "true"
    assert [pressed(card, "like") for card in restored].count("true") == 1
    click(by_item[liked].find_element(By.CSS_SELECTOR, 'button[data-kind="like"]'))  # pressed again: taken back
    wait_for(page, lambda d: pressed(by_item[liked], "like") == "false", "the like to be taken back")
    assert server.request("GET", f"/api/sessions/{sid}").body["feedback"] == {seen: {"liked": None, "seen": True}}
    assert script_errors(page) == []


def test_a_lost_answer_is_sent_again_with_the_same_id_and_answered_once(page, server):
    signed_in(page, server)
    page.execute_script(WRAP_FETCH, "lose")
    turns_before, replays_before = metric(server, "convrec_turns_total"), metric(server, "convrec_replays_total")
    type_and_enter(page, ALIEN)
    cards = cards_of_last_turn(page)
    sent = page.execute_script("return window.sentIds")
    assert len(sent) == 2 and sent[0] == sent[1], sent
    assert metric(server, "convrec_turns_total") == turns_before + 1  # answered once ...
    assert metric(server, "convrec_replays_total") == replays_before + 1  # ... and the repeat got it back
    history = server.request("GET", f"/api/sessions/{session_id(page)}").body["messages"]
    assert [(m["client_message_id"], m["answered"]) for m in history] == [(sent[0], True)]
    assert len(cards) == 5 and not page.find_element(By.ID, "status").is_displayed()
    assert script_errors(page) == []


def test_busy_is_waited_out_and_errors_are_shown_with_the_apis_message(page, server):
    signed_in(page, server)
    page.execute_script(WRAP_FETCH, "busy")
    type_and_enter(page, ALIEN)
    status = page.find_element(By.ID, "status")
    wait_for(page, lambda d: status.is_displayed(), "the busy notice")
    assert "Every turn slot is taken" in status.text and "1 s" in status.text
    cards_of_last_turn(page)  # answered after Retry-After, by itself
    sent = page.execute_script("return window.sentIds")
    assert len(sent) == 2 and sent[0] == sent[1], sent
    assert not status.is_displayed()

    assert server.request("DELETE", f"/api/sessions/{session_id(page)}").status == 204
    type_and_enter(page, "and something funny?")
    wait_for(page, lambda d: status.is_displayed(), "the error")
    assert "No session with this id" in status.text and "(request " in status.text
    failed = turns(page)[-1]
    assert "Not answered" in failed.text and failed.find_element(By.CSS_SELECTOR, "button.again").is_enabled()


def test_reset_and_new_session(page, server):
    signed_in(page, server)
    sid = session_id(page)
    type_and_enter(page, ALIEN)
    cards_of_last_turn(page)
    click(page.find_element(By.ID, "reset"))
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#log > li.divider"), "the new conversation")
    assert server.request("GET", f"/api/sessions/{sid}").body["conversation"] == 2
    assert len(turns(page)) == 1  # the history stays
    type_and_enter(page, "something funny?")
    wait_for(page, lambda d: len(turns(d)) == 2 and d.find_elements(By.CSS_SELECTOR, ".turn:last-of-type .bot"),
             "the second answer")
    assert [m["conversation"] for m in server.request("GET", f"/api/sessions/{sid}").body["messages"]] == [1, 2]

    click(page.find_element(By.ID, "new-session"))
    wait_for(page, lambda d: session_id(d) != sid, "a new session")
    assert turns(page) == [] and page.find_element(By.CSS_SELECTOR, "#log .hint").is_displayed()
    page.refresh()
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#log .hint"), "the new, empty session")
    assert turns(page) == []


def test_the_cards_fit_a_phone_width_screen(page, server, tmp_path):
    viewport(page, 390, 844, mobile=True)
    signed_in(page, server)
    type_and_enter(page, ALIEN)
    cards = cards_of_last_turn(page)
    assert page.execute_script("return document.documentElement.scrollWidth") <= 390  # no horizontal scrolling
    assert page.execute_script("return window.innerWidth") == 390  # (a phone widens the viewport to fit)
    for card in cards:
        box = page.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.left, r.right];", card)
        assert box[0] >= 0 and box[1] <= 390, (card_title(card), box)
    lefts = {round(page.execute_script("return arguments[0].getBoundingClientRect().left", c)) for c in cards}
    assert len(lefts) == 1  # one column
    click(page.find_element(By.CSS_SELECTOR, ".turn details.trace summary"))  # long trace lines wrap too
    assert page.execute_script("return document.documentElement.scrollWidth") <= 390
    save_screenshot(page, tmp_path / "serve-page-phone.png")
    assert (tmp_path / "serve-page-phone.png").stat().st_size > 5_000


WATCH_DRAFTS = """
window.drafts = [];
new MutationObserver(() => {
  for (const node of document.querySelectorAll('#log .draft')) window.drafts.push(node.textContent);
}).observe(document.getElementById('log'), {childList: true, subtree: true, characterData: true});
"""
def test_the_llm_reply_is_shown_as_it_is_written_then_replaced_by_the_answer(browser, redial, mirror, data_dir,
                                                                               tmp_path):
    llm_server = start_llm_server(tmp_path, mirror, data_dir, tmp_path / "s.sqlite3", name="llm")
    try:
        viewport(browser, 1280, 800)
        browser.get(llm_server.base + "/")
        wait_for(browser, lambda d: d.find_element(By.ID, "send").is_enabled(), "a session")
        browser.execute_script(WATCH_DRAFTS)
        type_and_enter(browser, ALIEN)
        cards_of_last_turn(browser)
        drafts = browser.execute_script("return window.drafts")
        assert len({d for d in drafts if d}) >= 3  # the draft grew piece by piece while the LLM wrote
        grown = [d for d in drafts if d]
        assert all(b.startswith(a) for a, b in zip(grown, grown[1:], strict=False))
        assert browser.find_elements(By.CSS_SELECTOR, "#log .draft") == []  # replaced by the answer
        stored = llm_server.request("GET", f"/api/sessions/{session_id(browser)}").body["messages"]
        shown = browser.find_element(By.CSS_SELECTOR, ".turn:last-of-type .msg.bot").text
        assert shown == stored[0]["reply"]
        assert script_errors(browser) == []
    finally:
        llm_server.stop()


PARSE_EVENTS = """
const done = arguments[arguments.length - 1];
const chunks = arguments[0];
const body = new ReadableStream({start(controller) {
  for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
  controller.close();
}});
const seen = [];
readEvents(new Response(body), (kind, data) => seen.push([kind, data]))
  .then((answer) => done({answer, seen}), (error) => done({error: String(error), seen}));
"""


def test_the_page_reads_server_sent_events_as_the_standard_writes_them(page, server):
    """As a proxy may pass them on: CR LF line ends (one split between two reads), a keep-alive comment, a
    field without the space, data over two lines; and a stream that ends without an answer is a lost answer."""
    signed_in(page, server)
    chunks = [": keep-alive\r\n\r\n", "event: token\r\ndata: {\"text\": \"How \"}\r", "\n\r\n",
              "event:token\ndata:{\"text\": \"about\"}\n\n", "event: reset\ndata: {}\n\n",
              "event: answer\ndata: {\"reply\":\ndata: \"Alien (1979)\"}\n\n"]
    result = page.execute_async_script(PARSE_EVENTS, chunks)
    assert result == {"answer": {"reply": "Alien (1979)"}, "seen": [
        ["start", {}], ["token", {"text": "How "}], ["token", {"text": "about"}], ["reset", {}]]}
    cut = page.execute_async_script(PARSE_EVENTS, ["event: token\ndata: {\"text\": \"How \"}\n\n"])
    assert "cut off" in cut["error"] and cut["seen"][-1] == ["token", {"text": "How "}]
