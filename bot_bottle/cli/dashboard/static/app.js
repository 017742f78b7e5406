// bot-bottle dashboard: reload the page when anyone commits to the database,
// unless the operator is typing. The only script the page runs (its
// Content-Security-Policy allows this file and nothing inline); it reads no
// page text and writes none but the status line below.
"use strict";
(function () {
  var body = document.body;
  var marker = body.getAttribute("data-marker");
  // Under the dashboard's secret root, which the page names (the session cookie goes nowhere else).
  var changes = body.getAttribute("data-changes");
  var live = document.getElementById("live");
  var INTERVAL_MS = 2000;

  function say(text) {
    if (live) {
      live.textContent = text;
    }
  }

  // A form being filled in is never thrown away by a refresh.
  function busy() {
    var active = document.activeElement;
    if (active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA")) {
      return true;
    }
    var fields = document.querySelectorAll("input[type=text], textarea");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value !== fields[i].defaultValue) {
        return true;
      }
    }
    return false;
  }

  function poll() {
    fetch(changes, { cache: "no-store", credentials: "same-origin" })
      .then(function (answer) {
        if (!answer.ok) {
          throw new Error("HTTP " + answer.status);
        }
        return answer.json();
      })
      .then(function (data) {
        if (data.marker !== marker && !busy()) {
          window.location.reload();
          return;
        }
        say(busy() && data.marker !== marker ? "changed: save or clear your form to refresh" : "live");
        window.setTimeout(poll, INTERVAL_MS);
      })
      .catch(function () {
        say("not refreshing: the dashboard is unreachable");
        window.setTimeout(poll, INTERVAL_MS * 2);
      });
  }

  if (marker !== null && changes !== null) {
    say("live");
    window.setTimeout(poll, INTERVAL_MS);
  }
})();
