"""An LTI launch in headless Chromium: the platform's form post reaches /lti/launch, the
browser lands on the learner page, api/static/lti.js hands the session over (and takes
the token out of the address bar), and the page shows the launched test's first item.
The app is served by Werkzeug in a thread, the platform is test_lti's mock."""

import html
import pathlib
import shutil
import subprocess
import tempfile
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from werkzeug.serving import make_server

from tests.api.test_lti import CLAIM, CLIENT_ID, DEPLOYMENT, MockPlatform

CHROMIUM, CHROMEDRIVER = pathlib.Path("/usr/bin/chromium"), pathlib.Path("/usr/bin/chromedriver")
if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip("the LTI page test needs Debian's chromium and chromium-driver",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium")

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def served(api):
    """The API's app on a free port of 127.0.0.1: its base URL."""
    server = make_server("127.0.0.1", 0, api.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def driver():
    profile = tempfile.mkdtemp(prefix="irtcat-lti-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        options.add_argument(argument)
    chrome = webdriver.Chrome(options=options, service=Service(
        executable_path=str(CHROMEDRIVER), log_output=subprocess.DEVNULL))
    chrome.set_page_load_timeout(20)
    yield chrome
    chrome.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_a_launch_opens_the_test_on_the_learner_page(api, served, driver):
    launch_url = f"{served}/lti/launch"
    platform = MockPlatform(requests.get(f"{served}/lti/jwks", timeout=10).json())
    try:
        registered = api.call("POST", "/v1/lti/platforms", api.admin,
                              json=platform.registration())
        assert registered.status_code == 201, registered.json
        login = requests.post(f"{served}/lti/login", allow_redirects=False, timeout=10, data={
            "iss": "https://lms.example.edu", "login_hint": "lms-user-42",
            "target_link_uri": launch_url, "client_id": CLIENT_ID,
            "lti_deployment_id": DEPLOYMENT})
        assert login.status_code == 302, login.text
        query = {k: v[0] for k, v in parse_qs(urlsplit(login.headers["Location"]).query).items()}
        id_token = platform.id_token(query["nonce"], **{
            CLAIM + "target_link_uri": launch_url, CLAIM + "custom": {"test_id": "ml"}})
        platform.pages["/launch"] = (
            f'<form method="post" action="{html.escape(launch_url)}">'
            f'<input type="hidden" name="id_token" value="{html.escape(id_token)}">'
            f'<input type="hidden" name="state" value="{html.escape(query["state"])}">'
            '<button id="go" type="submit">Launch</button></form>')
        driver.get(f"{platform.base}/launch")
        driver.find_element(By.ID, "go").click()
        # the body found may be the launch form's, gone stale as the browser moves on
        WebDriverWait(driver, 20, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-view") == "item")
        assert driver.current_url == f"{served}/"           # the token left the address bar
        stored = driver.execute_script(
            "return JSON.parse(window.sessionStorage.getItem('irtcat.learner.session'))")
        assert stored["test_id"] == "ml" and stored["token"].startswith("irts_")
        assert driver.find_element(By.ID, "item-test-title").text == \
            "Machine learning fundamentals"
        assert driver.find_element(By.ID, "item-stem").text
    finally:
        platform.close()
