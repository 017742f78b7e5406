"""Headless Chromium driven by Selenium, as a line protocol (run under a Python with ``selenium``).

Usage: python tests/helpers/browser_client.py CHROMIUM CHROMEDRIVER PROFILE_DIR. Reads one
JSON command a line on stdin and answers one JSON object a line on stdout
(``{"ok": value}`` or ``{"error": text}``), so that tests running under the
standard library alone (tests/helpers/browser.py) can drive a real browser. Selenium
Manager never runs: the driver and the browser are the paths given.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys


def start(chromium: str, chromedriver: str, profile: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={profile}",
                 # A DNS rebinding, simulated: this name resolves to the loopback, as an attacker's would.
                 "--host-resolver-rules=MAP rebind.test 127.0.0.1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CHANGE_CLOCK})
    return driver


# In every page, before its own scripts: when it last changed, on performance.now()'s clock, for the tests'
# ``settle`` (tests/helpers/dashboard.py), which waits until the page has been still for longer than the
# dashboard's guard instead of a whole guard from whenever it is called. Counted as a change, conservatively:
# the document loading (its scripts run before DOMContentLoaded), any key, click or pointer press (the page
# may have dropped it, restarting its guard), and any mutation that alters something (a poll rewriting the
# same text in the live region or the title alters nothing, and would otherwise never let the page be still).
CHANGE_CLOCK = """
(function () {
  window.__bbChangedAt = performance.now();
  function changed() { window.__bbChangedAt = performance.now(); }
  function same(nodes, other) {
    var a = Array.prototype.map.call(nodes, function (n) { return n.nodeType === 3 ? n.data : null; });
    var b = Array.prototype.map.call(other, function (n) { return n.nodeType === 3 ? n.data : null; });
    return a.indexOf(null) < 0 && b.indexOf(null) < 0 && a.join("") === b.join("");
  }
  function alters(record) {
    if (record.type === "childList") {
      return !same(record.removedNodes, record.addedNodes);
    }
    if (record.type === "characterData") {
      return record.oldValue !== record.target.data;
    }
    return record.oldValue !== record.target.getAttribute(record.attributeName);
  }
  new MutationObserver(function (records) {
    if (records.some(alters)) {
      changed();
    }
  }).observe(document, {subtree: true, childList: true, attributes: true, attributeOldValue: true,
                        characterData: true, characterDataOldValue: true});
  ["keydown", "keyup", "mousedown", "click", "DOMContentLoaded", "load"].forEach(function (name) {
    window.addEventListener(name, changed, true);
  });
})();
"""


_KEYS = {"Enter": Keys.ENTER, "Escape": Keys.ESCAPE, "Tab": Keys.TAB, "Space": Keys.SPACE,
         "ArrowDown": Keys.ARROW_DOWN, "ArrowUp": Keys.ARROW_UP}

# The dashboard reloads itself when the database changes: an element looked up just before a reload
# is gone after it. Commands that look elements up retry for a while instead of failing on that race.
RETRY_SECONDS = 20.0
_RELOAD_RACES = (NoSuchElementException, StaleElementReferenceException)
# Chromedriver reports the same race as an "unknown error" when the node vanished between its lookup
# and its use inside one command (seen in CI on a reload during ``wait_text``).
_RELOAD_RACE_MESSAGES = ("does not belong to the document", "No node with given id")


def _reload_race(exc: WebDriverException) -> bool:
    """True when ``exc`` is the page reloading under a command, not a fault of the command."""
    return isinstance(exc, _RELOAD_RACES) or any(text in str(exc) for text in _RELOAD_RACE_MESSAGES)


def run(driver: webdriver.Chrome, command: dict[str, Any]) -> Any:
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            return _run(driver, command)
        except WebDriverException as exc:
            if not _reload_race(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _run(driver: webdriver.Chrome, command: dict[str, Any]) -> Any:
    action = command["do"]
    if action == "get":
        driver.get(command["url"])
        return driver.current_url
    if action == "url":
        return driver.current_url
    if action == "script":
        return driver.execute_script(command["js"], *command.get("args", []))
    if action == "click":
        driver.find_element(By.CSS_SELECTOR, command["css"]).click()
        return driver.current_url
    if action == "type":
        element = driver.find_element(By.CSS_SELECTOR, command["css"])
        element.clear()
        element.send_keys(command["text"])
        return True
    if action == "keys":
        # Keys as a person types them, to whatever has the focus: text, or named keys ("Enter", "Ctrl+Enter").
        chain = ActionChains(driver)
        for token in command["keys"]:
            if token.startswith("Ctrl+"):
                chain.key_down(Keys.CONTROL).send_keys(_KEYS[token[5:]]).key_up(Keys.CONTROL)
            else:
                chain.send_keys(_KEYS.get(token, token))
        chain.perform()
        return True
    if action == "text":
        return driver.find_element(By.TAG_NAME, "body").text
    if action == "source":
        return driver.page_source
    if action == "wait_text":
        deadline = time.monotonic() + float(command.get("timeout", 30))
        while True:
            try:
                text = driver.find_element(By.TAG_NAME, "body").text
            except WebDriverException as exc:
                if not _reload_race(exc):
                    raise
                text = ""
            if command["text"] in text:
                return text
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command['text']!r} did not appear; the page:\n{text[:3000]}")
            time.sleep(0.1)
    if action == "alert":
        try:
            alert = driver.switch_to.alert
        except NoAlertPresentException:
            return None
        text = alert.text
        alert.dismiss()
        return text
    if action == "size":
        driver.set_window_size(int(command["width"]), int(command["height"]))
        return driver.execute_script("return window.innerWidth")
    if action == "screenshot":
        return driver.save_screenshot(command["path"])
    if action == "cookies":
        return driver.get_cookies()
    if action == "logs":
        return [entry for entry in driver.get_log("browser")]
    raise ValueError(f"unknown command {action!r}")


def main() -> None:
    driver = start(*sys.argv[1:4])
    print(json.dumps({"ok": "ready"}), flush=True)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            command = json.loads(line)
            if command["do"] == "quit":
                break
            try:
                answer: dict[str, Any] = {"ok": run(driver, command)}
            except (WebDriverException, ValueError, KeyError, TimeoutError) as exc:
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
