"""The learner page at `/`, driven in headless Chromium against a real `irtcat serve`.

A learner chooses a demo test, takes it item by item with the session token alone,
and sees the result per standard, the level and the credential decision; by keyboard
alone, after a reload in the middle, on a 360 px phone screen, offline for a moment,
and after the item was answered elsewhere. Screenshots of the start page, an item and
the result page are saved to test-artifacts/ (and docs/ with IRTCAT_SAVE_DOCS=1).
"""

import http.client
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from decimal import ROUND_HALF_UP, Decimal

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DOCS = ROOT / "docs"
CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMEDRIVER = pathlib.Path("/usr/bin/chromedriver")
START_TIMEOUT = 30
WIDE = {"width": 960, "height": 720, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 360, "height": 740, "deviceScaleFactor": 2, "mobile": True}


if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip(f"browser tests need Debian's {CHROMIUM} and {CHROMEDRIVER} (packages "
                "chromium and chromium-driver; .ci/chromium.sh installs them)",
                allow_module_level=True)
pytest.importorskip("selenium", reason="browser tests need selenium (pip install -e '.[dev]')")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def irtcat(*args):
    return [sys.executable, "-m", "irtcat.api.cli", *args]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(base, method, path, token=None, body=None):
    """(status, JSON body) of one request to the server under test."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body), "application/json"
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        text = response.read()
        try:
            return response.status, json.loads(text or b"null")
        except ValueError:
            return response.status, text.decode("utf-8", "replace")
    finally:
        connection.close()


class Server:
    """`irtcat serve` on a database prepared by `irtcat demo --no-serve` (SQLite in a
    temporary folder), in a process group of its own; `best` maps each item to its
    best-scoring option, read with the demo's admin key (the test's, never the page's)."""

    def __init__(self, folder):
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "IRTCAT_DATABASE_URL": f"sqlite:///{folder / 'irtcat.db'}",
               "PYTHONPATH": path}
        prepared = subprocess.run(irtcat("demo", "--no-serve"), cwd=folder, env=env,
                                  capture_output=True, text=True, timeout=240)
        assert prepared.returncode == 0, prepared.stderr[-3000:]
        admin = next(line.split(":", 1)[1].strip() for line in prepared.stdout.splitlines()
                     if "admin key" in line)
        self.base = f"http://127.0.0.1:{free_port()}"
        self.log_path = folder / "serve.log"
        self.log = open(self.log_path, "wb")                    # closed in stop
        self.process = subprocess.Popen(
            irtcat("serve", "--port", self.base.rsplit(":", 1)[1], "--workers", "2",
                   "--threads", "4"),
            cwd=folder, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.process.poll() is None, self.log_path.read_text(errors="replace")
            try:
                if call(self.base, "GET", "/v1/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "irtcat serve did not come up"
            time.sleep(0.1)
        for path in ("/", "/static/app.js", "/static/style.css"):
            status = call(self.base, "GET", path)[0]
            if status != 200:
                self.stop()
                pytest.fail(f"GET {path} answered {status}: the app does not serve the "
                            "learner page (api/static)")
        self.admin = admin                       # the test's, to define tests; never the page's
        self.env, self.folder = env, folder          # `irtcat` commands on the same store
        self.delivery = next(line.split(":", 1)[1].strip()
                             for line in prepared.stdout.splitlines() if "delivery key" in line)
        status, items = call(self.base, "GET", "/v1/items", admin)
        assert status == 200, items
        self.best = {item["id"]: best_option(item["key"]) for item in items if item.get("key")}

    def stop(self):
        # SIGINT: gunicorn's quick shutdown (SIGTERM waits for its workers' graceful stop).
        for sig in (signal.SIGINT, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        try:                                          # a worker outliving its arbiter
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


def best_option(key):
    if "correct" in key:
        return key["correct"]
    return max(key["scores"], key=lambda option: key["scores"][option])


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    started = Server(tmp_path_factory.mktemp("learner-page"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def chromium(server):
    """One headless Chromium for every browser test, in a fresh profile; it quits before
    the server stops (so no kept-alive connection holds a worker)."""
    profile = tempfile.mkdtemp(prefix="irtcat-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                     "--hide-scrollbars", f"--user-data-dir={profile}",
                     "--window-size=960,720", "--lang=en-US"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=subprocess.DEVNULL)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


ONLINE = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
OFFLINE = {**ONLINE, "offline": True}


@pytest.fixture
def browser(chromium, server):
    """The shared browser on a clean learner page: no session stored, online, wide."""
    chromium.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", WIDE)
    chromium.execute_cdp_cmd("Network.enable", {})
    chromium.execute_cdp_cmd("Network.emulateNetworkConditions", ONLINE)
    chromium.get(server.base + "/v1/health")          # same origin, not the page
    chromium.execute_script("window.sessionStorage.clear()")
    chromium.get(server.base + "/")
    chromium.get_log("browser")                       # drop what earlier tests left
    return chromium


def save_screenshot(driver, name, full_page=False, docs=False):
    """Save the viewport (or the whole page) as test-artifacts/NAME; with `docs`, as
    docs/NAME too when IRTCAT_SAVE_DOCS=1 (the README's pictures)."""
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / name
    metrics = driver.execute_script(
        "return {width: window.innerWidth, height: window.innerHeight,"
        " full: Math.ceil(document.documentElement.scrollHeight)}")
    device = PHONE if metrics["width"] < 500 else WIDE
    grow = full_page and metrics["full"] > metrics["height"]
    if grow:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {**device, "height": metrics["full"]})
    driver.save_screenshot(str(target))
    if grow:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", device)
    if docs and os.environ.get("IRTCAT_SAVE_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(target, DOCS / name)
    return target


# --- the tests ----------------------------------------------------------------------

CREDENTIAL = "ai-practitioner-practice"     # the credential's public, practice form
DEMO_TESTS = {"ai-ml", "ai-de", "ai-rai", CREDENTIAL}
STANDARDS = ["AI-ML", "AI-DE", "AI-RAI"]
ESTIMATE = re.compile(r"^θ = −?\d+\.\d\d \(SE \d+\.\d\d\)$")
BELOW = {"Below the first level", "No proficiency levels are defined for this standard"}
TIMEOUT = 15
SNAPSHOT = """
const form = document.getElementById('item-form');
const values = selector => Array.from(document.querySelectorAll(selector), o => o.value);
return {view: document.body.getAttribute('data-view'),
        item_id: form.getAttribute('data-item-id'),
        position: Number(form.getAttribute('data-position')),
        heading: document.getElementById('item-heading').textContent,
        stem: document.getElementById('item-stem').textContent,
        options: values('#item-options input'),
        checked: values('#item-options input:checked'),
        busy: form.getAttribute('aria-busy') === 'true',
        message: document.getElementById('item-message').hidden ? null
                 : document.getElementById('item-message').textContent,
        active: document.activeElement ? document.activeElement.id : null,
        announced: document.getElementById('announce').textContent};
"""


class Page:
    """The learner page in the browser, with the waits the tests need."""

    def __init__(self, driver, server):
        self.driver, self.server = driver, server

    def wait(self, condition, message="", timeout=TIMEOUT):
        def check(driver):
            try:
                return condition()
            except StaleElementReferenceException:
                return False
        return WebDriverWait(self.driver, timeout, poll_frequency=0.03).until(check, message)

    def find(self, selector):
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def find_all(self, selector):
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def snapshot(self):
        """The view shown and, on an item, the item, its choice, the focus, the messages."""
        return self.driver.execute_script(SNAPSHOT)

    def view(self):
        return self.driver.execute_script("return document.body.getAttribute('data-view')")

    def wait_view(self, name):
        self.wait(lambda: self.view() == name, f"the page never showed the {name} view "
                                               f"(it shows {self.view()!r})")

    def active(self):
        return self.driver.switch_to.active_element

    def keys(self, *keys):
        ActionChains(self.driver).send_keys(*keys).perform()

    def stored(self):
        return self.driver.execute_script(
            "return JSON.parse(window.sessionStorage.getItem('irtcat.learner.session'))")

    def start(self, test_id):
        self.wait_view("tests")
        self.find(f'#test-list button[data-test-id="{test_id}"]').click()
        self.wait_view("item")

    def choose(self, option):
        """Click the label of `option` (an option id)."""
        self.find(f'#item-options input[value="{option}"]').find_element(
            By.XPATH, "./ancestor::label").click()

    def wait_after_answer(self, position):
        """Wait for the next item, or the result, after answering item `position`; returns
        the snapshot then."""
        def moved():
            now = self.snapshot()
            done = now["view"] == "result" or (now["view"] == "item" and not now["busy"]
                                               and now["position"] != position)
            return now if done else None
        return self.wait(moved, f"no next item after question {position}")

    def finish_by_clicks(self, pick):
        """Answer by clicks until the result, `pick(snapshot)` giving each option; checks
        that the positions count up by one."""
        now = self.snapshot()
        expected = now["position"]
        while now["view"] == "item":
            assert now["position"] == expected
            self.choose(pick(now))
            self.find("#submit-answer").click()
            now = self.wait_after_answer(expected)
            expected += 1

    def severe_logs(self):
        return [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def no_horizontal_scroll(self):
        width = self.driver.execute_script(
            "return [document.documentElement.scrollWidth, document.body.scrollWidth,"
            " window.innerWidth]")
        assert max(width[:2]) <= width[2], f"the page scrolls sideways: {width}"


@pytest.fixture
def page(browser, server):
    return Page(browser, server)


def session_state(page):
    """The session as the server has it, read with the token the page stored."""
    stored = page.stored()
    status, body = call(page.server.base, "GET", f"/v1/sessions/{stored['session_id']}",
                        stored["token"])
    assert status == 200, body
    return body


def by_index(now):
    """An option chosen by position alone: mostly wrong answers."""
    return now["options"][now["position"] % len(now["options"])]


def fmt(value):
    """The page's `fmt`: JavaScript's toFixed(2) of |value| rounds the exact binary
    value, a tie (0.125) away from zero, where Python's format rounds it to even."""
    text = str(Decimal(abs(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    return ("−" if value < 0 and text != "0.00" else "") + text


def check_result_page(page, state):
    """The result page shows the server's result: the decision, every standard's θ and
    SE, and its level or 'below'; the focus is on its heading and it was announced."""
    result = state["result"]
    assert page.active().get_attribute("id") == "result-heading"
    decision = page.find("#result-decision")
    assert decision.is_displayed()
    verdict = "Passed" if result["decision"]["pass"] else "Not passed"
    assert page.find("#result-decision .decision-verdict").text == verdict
    assert decision.get_attribute("data-pass") == str(result["decision"]["pass"]).lower()
    assert f"cut score θ = {fmt(result['decision']['cut'])}" in decision.text
    assert f"θ = {fmt(result['theta'])}" in decision.text
    assert f"after {state['position']} questions" in page.find("#result-summary").text
    cards = page.find_all("#result-standards li")
    assert [c.get_attribute("data-code") for c in cards] == STANDARDS
    for card, standard in zip(cards, result["standards"], strict=True):
        assert standard["code"] in card.text and standard["title"] in card.text
        estimate = card.find_element(By.CSS_SELECTOR, ".estimate").text
        assert ESTIMATE.match(estimate), estimate
        assert estimate == f"θ = {fmt(standard['theta'])} (SE {fmt(standard['se'])})"
        level = card.find_element(By.CSS_SELECTOR, ".level").text
        if standard["level"]:
            assert level == "Level: " + standard["level"].capitalize()
        else:
            assert level in BELOW, level
    page.wait(lambda: page.snapshot()["announced"].startswith(
        "Test finished. Credential decision: " + verdict), "the result was not announced")


def test_a_whole_credential_test_by_keyboard(page):
    page.wait_view("tests")
    starts = page.find_all("#test-list button[data-test-id]")
    assert {b.get_attribute("data-test-id") for b in starts} == DEMO_TESTS
    credential = page.find(f'#test-list button[data-test-id="{CREDENTIAL}"]')
    card = credential.find_element(By.XPATH, "./ancestor::li")
    assert "At most 30 questions" in card.text and "Responsible AI" in card.text
    save_screenshot(page.driver, "learner-start.png", full_page=True, docs=True)

    # Tab to the credential's Start button, Enter.
    for _ in range(12):
        page.keys(Keys.TAB)
        if page.active().get_attribute("data-test-id") == CREDENTIAL:
            break
    else:
        pytest.fail("Tab never reached the credential's Start button")
    page.keys(Keys.ENTER)
    page.wait_view("item")
    stored = page.stored()
    assert stored["token"].startswith("irts_") and stored["session_id"]

    position = 1
    now = page.snapshot()
    while now["view"] == "item":
        assert now["position"] == position
        assert now["heading"] == f"Question {position} of at most 30"
        assert now["active"] == "item-heading", "the focus is not on the new item's heading"
        assert now["checked"] == [] and now["message"] is None
        page.wait(lambda p=position: page.snapshot()["announced"]
                  == f"Question {p} of at most 30", "the progress was not announced")
        bar = page.find("#progress-bar")
        assert (bar.get_attribute("value"), bar.get_attribute("max")) == (str(position), "30")
        # Tab into the options, Space checks the first, arrow keys move the choice (to the
        # best option, but every fourth), Enter submits.
        options = now["options"]
        target = options.index(page.server.best[now["item_id"]])
        if position % 4 == 0:
            target = (target + 1) % len(options)
        page.keys(Keys.TAB)
        assert page.active().get_attribute("name") == "answer"
        page.keys(Keys.SPACE, *[Keys.ARROW_DOWN] * target)
        assert page.snapshot()["checked"] == [options[target]]
        if position == 4:                                # a wrong choice: no key shown
            save_screenshot(page.driver, "learner-item.png", docs=True)
        page.keys(Keys.ENTER)
        now = page.wait_after_answer(position)
        position += 1
    answered = position - 1
    assert 12 <= answered <= 30

    state = session_state(page)
    assert state["status"] == "finished" and state["position"] == answered
    check_result_page(page, state)
    assert "irtk_" not in page.driver.page_source
    save_screenshot(page.driver, "learner-result.png", full_page=True, docs=True)
    assert page.severe_logs() == []


def test_a_reload_in_the_middle_resumes_where_it_was(page):
    page.start(CREDENTIAL)
    for position in (1, 2, 3):
        now = page.snapshot()
        assert now["position"] == position
        page.choose(by_index(now))
        page.find("#submit-answer").click()
        page.wait_after_answer(position)
    before = page.snapshot()
    assert before["position"] == 4 and before["heading"] == "Question 4 of at most 30"
    page.choose(before["options"][2])                 # chosen, not yet submitted

    page.driver.refresh()
    page.wait_view("item")
    after = page.snapshot()
    for field in ("item_id", "position", "heading", "stem", "options"):
        assert after[field] == before[field], field
    assert after["checked"] == [before["options"][2]], "the reload lost the chosen answer"
    assert after["active"] == "item-heading"
    assert page.find("#item-test-title").text == "AI practitioner credential (practice)"
    assert page.find("#start-over").is_displayed()

    page.find("#submit-answer").click()
    assert page.wait_after_answer(4)["position"] == 5
    page.finish_by_clicks(by_index)
    state = session_state(page)
    assert 12 <= state["position"] <= 30
    check_result_page(page, state)

    page.driver.refresh()                             # a finished test shows its result again
    page.wait_view("result")
    check_result_page(page, state)
    page.find("#another-test").click()                # and starting over forgets it
    page.wait_view("tests")
    assert page.stored() is None
    assert not page.find("#start-over").is_displayed()
    assert page.severe_logs() == []


def test_a_phone_screen_shows_the_item_without_sideways_scrolling(page):
    page.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    page.driver.refresh()
    page.wait_view("tests")
    assert page.driver.execute_script("return window.innerWidth") == 360
    page.no_horizontal_scroll()
    page.start("ai-rai")
    now = page.snapshot()
    page.choose(now["options"][1])
    page.no_horizontal_scroll()
    save_screenshot(page.driver, "learner-item-phone.png")
    targets = page.find_all("#item-options label") + [page.find("#submit-answer"),
                                                      page.find("#start-over")]
    for target in targets:
        box = target.rect
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360, (target.text, box)
        assert box["height"] >= 44, f"tap target {target.text!r} is {box['height']} px high"
    size = page.driver.execute_script(
        "return parseFloat(getComputedStyle(document.querySelector('.option-text')).fontSize)")
    assert size >= 16

    page.finish_by_clicks(lambda now: page.server.best[now["item_id"]])
    page.wait_view("result")
    page.no_horizontal_scroll()
    cards = page.find_all("#result-standards li")
    assert [c.get_attribute("data-code") for c in cards] == ["AI-RAI"]
    assert not page.find("#result-decision").is_displayed()     # no cut on this test
    save_screenshot(page.driver, "learner-result-phone.png", full_page=True)
    assert page.severe_logs() == []


def test_a_network_failure_keeps_the_answer_for_a_retry(page):
    page.start("ai-ml")
    option = page.snapshot()["options"][1]
    page.choose(option)
    page.driver.execute_cdp_cmd("Network.emulateNetworkConditions", OFFLINE)
    page.find("#submit-answer").click()
    page.wait(lambda: page.find("#retry").is_displayed(), "no Retry after a network failure")
    now = page.snapshot()
    assert "Could not reach the server" in now["message"]
    assert f"answer {option} is kept" in now["message"]
    assert now["checked"] == [option] and now["position"] == 1
    assert now["active"] == "retry"

    page.driver.execute_cdp_cmd("Network.emulateNetworkConditions", ONLINE)
    page.keys(Keys.ENTER)                             # Retry has the focus
    now = page.wait_after_answer(1)
    assert now["position"] == 2 and now["checked"] == [] and now["message"] is None
    assert session_state(page)["position"] == 2


def test_an_item_answered_elsewhere_shows_the_current_one(page):
    page.start("ai-de")
    first = page.snapshot()
    stored = page.stored()
    status, body = call(page.server.base, "POST",
                        f"/v1/sessions/{stored['session_id']}/responses", stored["token"],
                        {"item_id": first["item_id"], "response": first["options"][0]})
    assert status == 200, body                        # answered in another tab
    page.choose(first["options"][1])
    page.find("#submit-answer").click()               # a different answer to it: 409
    now = page.wait_after_answer(1)
    assert now["position"] == 2 and now["item_id"] == body["item"]["item_id"]
    assert "already been answered" in now["message"]
    assert now["active"] == "item-heading"

    page.find("#start-over").click()                  # asks first: the test is not done
    page.driver.switch_to.alert.accept()
    page.wait_view("tests")
    assert page.stored() is None
    assert not page.find("#start-over").is_displayed()


def test_the_page_and_its_assets_hold_no_key(server):
    for path in ("/", "/static/app.js", "/static/style.css"):
        status, text = call(server.base, "GET", path)
        assert status == 200, path
        assert "irtk_" not in text and "learner_id" not in text
    _, script = call(server.base, "GET", "/static/app.js")
    routes = set(re.findall(r'"(/v1/[^"]*)"', script))
    assert routes == {"/v1/public/tests", "/v1/public/sessions", "/v1/sessions/"}, routes


def test_an_expired_token_is_told_plainly_and_a_new_test_offered(page):
    """The issue's deliverable 4: the learner page handles an expired token with a clear
    message. A public test whose tokens live 2 s (defined last: the listing tests above
    expect the demo's tests only)."""
    status, body = call(page.server.base, "POST", "/v1/tests", page.server.admin,
                        {"id": "brief", "title": "Brief practice", "standards": ["AI-ML"],
                         "config": {"stop": {"max_items": 10}}, "public": True,
                         "token_ttl": 2})
    assert status == 201, body
    page.driver.get(page.server.base + "/")
    page.start("brief")
    option = page.snapshot()["options"][0]
    time.sleep(2.5)
    page.choose(option)
    page.find("#submit-answer").click()
    page.wait_view("tests")
    notice = page.find("#tests-message").text
    assert notice.startswith("Your test session has expired") and "start again" in notice
    assert page.stored() is None



def test_the_result_shows_job_roles_and_shares_a_passed_credential(page):
    """The career section (api/static/careers.js): the roles the result's levels meet and
    the gaps of the others, as the server computed them; consent given by keyboard makes
    the learner findable by an employer, and withdrawing it hides them again."""
    page.start(CREDENTIAL)
    page.finish_by_clicks(lambda now: page.server.best[now["item_id"]])
    page.wait_view("result")
    result = session_state(page)["result"]
    assert result["decision"]["pass"] is True
    cards = page.find_all("#careers-roles li.role")
    assert [(c.get_attribute("data-role"), c.get_attribute("data-met")) for c in cards] == \
        [(role["id"], str(role["met"]).lower()) for role in result["roles"]]
    for card, role in zip(cards, result["roles"], strict=True):
        assert role["title"] in card.text
        for gap in role["gaps"]:
            assert f"{gap['code']}: {gap['required'].capitalize()} needed" in card.text

    folder = page.server.log_path.parent
    env = {**os.environ, "IRTCAT_DATABASE_URL": f"sqlite:///{folder / 'irtcat.db'}"}
    made = subprocess.run(irtcat("keys", "create", "--role", "employer"), cwd=folder,
                          env=env, capture_output=True, text=True, timeout=60)
    employer = re.search(r"irtk_\S+", made.stdout).group(0)

    def contacts():
        status, found = call(page.server.base, "GET", "/v1/talent", employer)
        assert status == 200, found
        return {entry["contact"] for entry in found}

    assert "grace@example.org" not in contacts()
    field = page.find("#consent-contact")
    field.click()
    field.send_keys("grace@example.org", Keys.ENTER)
    page.wait(lambda: page.find("#consent-status").text.startswith("Shared"),
              "the consent was not confirmed")
    assert page.active().get_attribute("id") == "consent-withdraw"
    assert "grace@example.org" in contacts()
    page.keys(Keys.ENTER)                                   # withdraw, by keyboard
    page.wait(lambda: page.find("#consent-status").text.startswith("Withdrawn"),
              "the withdrawal was not confirmed")
    assert "grace@example.org" not in contacts()
    assert page.severe_logs() == []


MCAT_STANDARDS = ["MD-A", "MD-B", "MD-C"]


def multidimensional_bank():
    """A 3-factor bank on MCAT_STANDARDS: 4 keyed 2PL items per standard, one cross-loading."""
    items = []
    for f, code in enumerate(MCAT_STANDARDS):
        for k in range(4):
            slopes = [0.0, 0.0, 0.0]
            slopes[f] = 1.2 + 0.1 * k
            if k == 0:
                slopes[(f + 1) % 3] = 0.5
            items.append({"id": f"{code}-{k}", "standard": code, "model": "2pl", "a": slopes,
                          "d": 0.3 * (k - 1.5), "key": {"correct": "B"},
                          "content": {"stem": f"Question {code}-{k}", "options": [
                              {"id": o, "text": f"Option {o}"} for o in "ABCD"]}})
    return {"format": "irtcat-bank/1", "metric": "logistic",
            "dimensions": {"factors": MCAT_STANDARDS, "structure": "confirmatory",
                           "mean": [0.0, 0.0, 0.0], "rotation": None,
                           "correlation": [[1.0, 0.5, 0.6], [0.5, 1.0, 0.7], [0.6, 0.7, 1.0]]},
            "items": items}


def test_a_multidimensional_result_shows_each_standard_and_the_composite(page):
    # a keyed (not public) multidimensional test, resumed by the page from its token
    base, admin = page.server.base, page.server.admin
    for code in MCAT_STANDARDS:
        status, body = call(base, "POST", "/v1/standards", admin, {
            "code": code, "title": f"Skill {code}", "levels": [{"name": "proficient",
                                                                "cut": 0.0}]})
        assert status == 201, body
    bank = page.server.folder / "multidimensional-bank.json"   # the CLI imports slope lists
    bank.write_text(json.dumps(multidimensional_bank()))
    imported = subprocess.run(irtcat("bank", "import", str(bank)), cwd=page.server.folder,
                              env=page.server.env, capture_output=True, text=True, timeout=60)
    assert imported.returncode == 0, imported.stderr
    weights = [0.5, 0.25, 0.25]
    status, body = call(base, "POST", "/v1/tests", admin, {
        "id": "mcat-page", "title": "Joint skills", "standards": MCAT_STANDARDS,
        "feedback": True, "config": {"stop": {"min_items": 4, "max_items": 6, "se": 0.3,
                                              "classification": {"cut": 0.0,
                                                                 "weights": weights}}}})
    assert status == 201, body
    status, started = call(base, "POST", "/v1/sessions", page.server.delivery,
                           {"test_id": "mcat-page", "learner_id": "learner-mcat"})
    assert status == 201, started
    page.driver.execute_script(
        "window.sessionStorage.setItem('irtcat.learner.session', JSON.stringify(arguments[0]))",
        {"session_id": started["session_id"], "token": started["token"],
         "test_id": "mcat-page", "title": "Joint skills", "max_items": started["max_items"]})
    page.driver.get(base + "/")
    page.wait_view("item")
    page.finish_by_clicks(by_index)
    page.wait_view("result")
    state = session_state(page)
    result = state["result"]
    assert set(result["thetas"]) == set(MCAT_STANDARDS)
    assert result["composite"]["weights"] == dict(zip(MCAT_STANDARDS, weights, strict=True))
    summary = page.find("#result-summary").text
    assert f"θ = {fmt(result['composite']['theta'])} (SE {fmt(result['composite']['se'])})" \
        in summary
    assert "MD-A 0.50, MD-B 0.25, MD-C 0.25" in summary
    cards = page.find_all("#result-standards li")
    assert [c.get_attribute("data-code") for c in cards] == MCAT_STANDARDS
    for card, code in zip(cards, MCAT_STANDARDS, strict=True):
        estimate = result["thetas"][code]
        assert card.find_element(By.CSS_SELECTOR, ".estimate").text == \
            f"θ = {fmt(estimate['theta'])} (SE {fmt(estimate['se'])})"
    verdict = "Passed" if result["decision"]["pass"] else "Not passed"
    assert page.find("#result-decision .decision-verdict").text == verdict
    save_screenshot(page.driver, "learner-mcat-result.png", full_page=True)
    assert page.severe_logs() == []
