// bot-bottle dashboard: the page's one script (its Content-Security-Policy allows this file and nothing
// inline). It keeps the page live without ever changing what a form decides:
//
// - Every 2 s it asks ROOT/api/changes; when anyone committed it fetches the same page again and replaces
//   only the parts (data-part) that changed, so a selection, the focus and a form being filled in stay. A
//   proposal's page asks with the digest of what it shows: a proposal changed since (rewritten in the
//   database) is marked changed, with the difference, and its forms are disabled; it is never swapped for
//   the new content. The pending count is in the tab's title; a browser notification when a proposal
//   arrives, if switched on (off by default).
// - Keys (? lists them): j/k, Enter, a, r, m, /, u. Enter in a text box never decides (the forms' first
//   button is a disabled one, and this script says so); Ctrl+Enter sends the form. Keys and clicks on a
//   decision within GUARD_MS after the page or the proposal under the cursor changed are dropped, with a
//   message: they were meant for what was there before.
//
// It writes text only with textContent, and inserts only nodes parsed from our own pages.
"use strict";
(function () {
  var body = document.body;
  var data = body.dataset;
  var live = document.getElementById("live");
  var notice = document.getElementById("notice");
  var INTERVAL_MS = 2000;
  var GUARD_MS = 800;
  var marker = data.marker;
  var changedAt = Date.now(); // the page itself is a change: keys typed on the way to it are dropped
  var frozen = false; // the proposal changed under this page: nothing is patched any more
  var known = null; // the pending proposals' ids at the last look, for notifications
  var selected = null; // the inbox row the keys act on

  function say(text) {
    if (live) {
      live.textContent = text;
    }
  }

  function warn(text) {
    if (notice) {
      notice.textContent = text;
      notice.hidden = !text;
    }
  }

  function typing(element) {
    var tag = element && element.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
  }

  // True (and a message) when an action comes too soon after what it would act on changed.
  function guarded(what) {
    var now = Date.now();
    if (now - changedAt >= GUARD_MS) {
      return false;
    }
    changedAt = now; // a burst of keys is dropped whole
    say(what + " ignored: the page changed just now; look, then do it again");
    return true;
  }

  // ---- Forms: Enter never decides, Ctrl+Enter sends, nothing is sent too soon -------------------------

  function decisionForm(element) {
    var form = element && element.closest ? element.closest("form") : null;
    return form && (form.classList.contains("decide") || form.classList.contains("revoke")) ? form : null;
  }

  function sendButton(form) {
    return form.querySelector("button[name=decision]:not([disabled])");
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[name=decision]") : null;
    if (button && decisionForm(button) && guarded("that click")) {
      event.preventDefault();
    }
  }, true);

  function formKey(event) {
    var form = decisionForm(event.target);
    if (!form || event.key !== "Enter") {
      return false;
    }
    if (event.ctrlKey || event.metaKey) {
      event.preventDefault();
      var button = sendButton(form);
      if (button && !guarded("Ctrl+Enter")) {
        button.click();
      }
      return true;
    }
    if (event.target.tagName === "INPUT" || event.target.tagName === "SELECT") {
      event.preventDefault(); // the disabled first button already makes Enter send nothing
      say("Enter does not decide: use the button, or Ctrl+Enter");
      return true;
    }
    if (event.target.tagName === "BUTTON" && guarded("Enter")) {
      event.preventDefault();
    }
    return true;
  }

  // ---- Keys ----------------------------------------------------------------------------------------------

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("tr[data-row]"));
  }

  function select(row) {
    rows().forEach(function (one) {
      one.classList.remove("selected");
    });
    selected = row ? row.getAttribute("data-row") : null;
    if (row) {
      row.classList.add("selected");
      row.scrollIntoView({ block: "nearest" });
    }
  }

  function selectedRow() {
    return selected ? document.querySelector('tr[data-row="' + selected + '"]') : null;
  }

  function move(step) {
    var all = rows();
    if (!all.length) {
      return;
    }
    var at = all.indexOf(selectedRow());
    select(all[at < 0 ? (step > 0 ? 0 : all.length - 1) : Math.max(0, Math.min(all.length - 1, at + step))]);
  }

  function open(fragment) {
    var row = selectedRow();
    if (!row) {
      say("no proposal is selected: j/k selects one");
      return;
    }
    window.location.assign(row.getAttribute("data-href") + fragment);
  }

  function focusForm(name) {
    var form = document.getElementById(name);
    var field = form && form.querySelector("input[type=text], textarea");
    if (field && !field.disabled) {
      field.focus();
      field.scrollIntoView({ block: "center" });
    } else {
      say("there is no " + name + " form on this page");
    }
  }

  function go(path) {
    if (path) {
      window.location.assign(path);
    } else {
      say("no other pending proposal that way");
    }
  }

  function toggleHelp() {
    var help = document.getElementById("keys");
    if (help) {
      help.hidden = !help.hidden;
    }
  }

  var inbox = {
    j: function () { move(1); },
    ArrowDown: function () { move(1); },
    k: function () { move(-1); },
    ArrowUp: function () { move(-1); },
    Enter: function () { open(""); },
    o: function () { open(""); },
    a: function () { open("#approve"); },
    r: function () { open("#reject"); },
    m: function () { open("#modify"); },
    "/": function () { var search = document.getElementById("search"); if (search) { search.focus(); } }
  };
  var proposal = {
    j: function () { go(data.next); },
    k: function () { go(data.prev); },
    a: function () { focusForm("approve"); },
    r: function () { focusForm("reject"); },
    m: function () { focusForm("modify"); }
  };
  var confirming = {
    a: function () {
      var button = document.querySelector("#confirm button.send");
      if (button && !button.disabled) {
        button.focus(); // Enter or Space then presses it: the page has named what it grants
      }
    }
  };
  var everywhere = {
    "?": toggleHelp,
    u: function () { go(data.root + "/"); },
    Escape: function () { go(data.root + "/"); }
  };

  document.addEventListener("keydown", function (event) {
    if (formKey(event)) {
      return;
    }
    if (typing(event.target)) {
      if (event.key === "Escape") {
        event.target.blur();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    var help = document.getElementById("keys");
    if (event.key === "Escape" && help && !help.hidden) {
      toggleHelp();
      return;
    }
    if (event.key === "Enter" && (event.target.tagName === "A" || event.target.tagName === "BUTTON")) {
      return; // a focused link or button does what it says
    }
    var keys = data.page === "inbox" ? inbox : data.page === "proposal" ? proposal :
      data.page === "confirm" ? confirming : {};
    var action = keys[event.key] || (data.page !== "inbox" || event.key === "?" ? everywhere[event.key] : null);
    if (!action) {
      return;
    }
    event.preventDefault();
    if (event.key !== "?" && guarded("'" + event.key + "'")) {
      return;
    }
    action();
  });

  var helpButton = document.getElementById("help-button");
  if (helpButton) {
    helpButton.addEventListener("click", toggleHelp);
  }
  if (data.page === "proposal" && /^#(approve|reject|modify)$/.test(window.location.hash)) {
    focusForm(window.location.hash.slice(1));
  }

  // ---- Live: parts updated in place ----------------------------------------------------------------------

  // What a part shows, without what changes by itself (ages: "42s", "(3m ago)").
  function shape(element) {
    return element.innerHTML.replace(/<time([^>]*)>[^<]*<\/time>/g, "<time$1></time>")
      .replace(/\(\d+[smhd] ago\)/g, "");
  }

  function worked(part) {
    var fields = part.querySelectorAll("input[type=text], input[type=search], textarea, select");
    for (var i = 0; i < fields.length; i++) {
      var field = fields[i];
      var edited = field.tagName === "SELECT" ? field.selectedIndex > 0 : field.value !== field.defaultValue;
      if (edited || field === document.activeElement) {
        return true;
      }
    }
    return false;
  }

  function disable(scope) {
    var controls = scope.querySelectorAll("form.decide input, form.decide textarea, form.decide select, " +
      "form.decide button");
    for (var i = 0; i < controls.length; i++) {
      controls[i].disabled = true;
    }
  }

  function patchRows(old, fresh) {
    var mine = {};
    rows().forEach(function (row) {
      mine[row.getAttribute("data-row")] = row;
    });
    var wanted = {};
    var previous = null;
    Array.prototype.forEach.call(fresh.querySelectorAll("tr[data-row]"), function (row) {
      var id = row.getAttribute("data-row");
      wanted[id] = true;
      var current = mine[id];
      if (!current) {
        current = document.importNode(row, true);
        current.classList.add("arrived");
      } else if (shape(current) !== shape(row)) {
        var replacement = document.importNode(row, true);
        if (id === selected) {
          replacement.classList.add("selected");
        }
        current.replaceWith(replacement);
        current = replacement;
      }
      var place = previous ? previous.nextSibling : old.firstChild;
      if (current !== place) {
        old.insertBefore(current, place);
      }
      previous = current;
    });
    Object.keys(mine).forEach(function (id) {
      if (!wanted[id]) {
        mine[id].remove();
        if (id === selected) {
          selected = null;
          changedAt = Date.now();
          warn(id.slice(0, 8) + " left the inbox (decided, or expired); nothing is selected: j/k selects one");
        }
      }
    });
  }

  function patch(doc) {
    document.title = doc.title;
    Array.prototype.forEach.call(doc.querySelectorAll("[data-part]"), function (fresh) {
      var name = fresh.getAttribute("data-part");
      var old = document.querySelector('[data-part="' + name + '"]');
      if (!old) {
        return;
      }
      if (old.hasAttribute("data-rows")) {
        patchRows(old, fresh);
        return;
      }
      if (shape(old) === shape(fresh) && old.hidden === fresh.hidden) {
        return;
      }
      if (worked(old)) {
        disable(old);
        warn("This changed while you were filling in its form (decided elsewhere?): the form is disabled; " +
          "reload to see it now.");
        return;
      }
      old.replaceWith(document.importNode(fresh, true));
      if (name === "decide") {
        changedAt = Date.now(); // its forms came or went: what a key or click would do changed
      }
    });
  }

  function freeze(changed) {
    frozen = true;
    disable(document);
    var main = document.querySelector("main");
    main.insertBefore(document.importNode(changed, true), main.firstChild);
    changedAt = Date.now();
    say("changed: this page decides nothing now; reload to see the proposal as it is");
  }

  function refresh(next) {
    var url = window.location.pathname + window.location.search;
    if (data.page === "proposal") {
      url = window.location.pathname + "?shown=" + encodeURIComponent(data.digest);
    }
    return fetch(url, { cache: "no-store", credentials: "same-origin" })
      .then(function (answer) { return answer.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var changed = doc.querySelector('[data-part="changed"]');
        if (data.page === "proposal" && changed) {
          freeze(changed);
        } else if (!frozen) {
          patch(doc);
        }
        marker = next;
      });
  }

  function count(pending) {
    var base = document.title.replace(/^\(\d+\) /, "");
    document.title = (pending ? "(" + pending + ") " : "") + base;
    var shown = document.querySelector('[data-part="count"]');
    if (shown) {
      shown.textContent = String(pending);
    }
  }

  // ---- Notifications: off by default; this browser's choice, kept for this dashboard's address ------------

  var notify = document.getElementById("notify");
  function notifying() {
    return "Notification" in window && Notification.permission === "granted" &&
      window.localStorage.getItem("bot-bottle-notify") === "on";
  }
  function showNotify() {
    if (notify) {
      notify.textContent = "notifications: " + (notifying() ? "on" : "off");
    }
  }
  if (notify && "Notification" in window) {
    notify.hidden = false;
    showNotify();
    notify.addEventListener("click", function () {
      if (notifying()) {
        window.localStorage.setItem("bot-bottle-notify", "off");
        showNotify();
        return;
      }
      Notification.requestPermission().then(function (permission) {
        window.localStorage.setItem("bot-bottle-notify", permission === "granted" ? "on" : "off");
        showNotify();
      });
    });
  }

  function arrivals(ids) {
    var now = {};
    var fresh = [];
    ids.forEach(function (pair) {
      now[pair[0]] = true;
      if (known && !known[pair[0]]) {
        fresh.push(pair);
      }
    });
    known = now;
    if (fresh.length && notifying()) {
      var bottles = fresh.map(function (pair) { return pair[1]; })
        .filter(function (one, at, all) { return all.indexOf(one) === at; });
      new Notification("bot-bottle: " + fresh.length + " new proposal" + (fresh.length > 1 ? "s" : ""),
        { body: "from " + bottles.join(", "), tag: "bot-bottle" });
    }
  }

  // ---- The loop ------------------------------------------------------------------------------------------

  // A duration as the server spells it (timestamps.spell_duration): its two largest units, "23h59m".
  function spelled(seconds) {
    var left = Math.max(0, Math.floor(seconds));
    var parts = [];
    [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]].some(function (unit) {
      if (left >= unit[1] || (unit[0] === "s" && !parts.length)) {
        parts.push(Math.floor(left / unit[1]) + unit[0]);
        left %= unit[1];
      }
      return parts.length === 2;
    });
    return parts.join("");
  }

  function ages() {
    Array.prototype.forEach.call(document.querySelectorAll("time[datetime]"), function (time) {
      var seconds = Math.max(0, Math.floor((Date.now() - Date.parse(time.getAttribute("datetime"))) / 1000));
      var text = seconds >= 86400 ? Math.floor(seconds / 86400) + "d" : seconds >= 3600 ?
        Math.floor(seconds / 3600) + "h" : seconds >= 60 ? Math.floor(seconds / 60) + "m" : seconds + "s";
      if (time.textContent !== text) {
        time.textContent = text;
      }
    });
    // How long each pending proposal may still wait, counted down (the next look of the server closes it).
    Array.prototype.forEach.call(document.querySelectorAll("time[data-ends]"), function (time) {
      var ends = Date.parse(time.getAttribute("data-ends"));
      var text = isNaN(ends) ? time.textContent : ends > Date.now() ? spelled((ends - Date.now()) / 1000) : "ended";
      if (time.textContent !== text) {
        time.textContent = text;
      }
    });
  }

  function poll() {
    var delay = INTERVAL_MS;
    fetch(data.changes, { cache: "no-store", credentials: "same-origin" })
      .then(function (answer) { return answer.json(); })
      .then(function (feed) {
        if (feed.problem) {
          warn(feed.problem);
          disable(document);
          say("not live: the database cannot be used");
          delay = INTERVAL_MS * 2;
          return null;
        }
        if (data.page === "problem") {
          window.location.reload(); // the problem passed: show the page it stood for
          return null;
        }
        count(feed.pending);
        arrivals(feed.ids);
        say(frozen ? "changed: this page decides nothing now; reload to see the proposal as it is" : "live");
        return feed.marker !== marker ? refresh(feed.marker) : null;
      })
      .catch(function () {
        say("not live: the dashboard is unreachable");
        delay = INTERVAL_MS * 2;
      })
      .then(function () {
        window.setTimeout(poll, delay);
      });
  }

  if (marker !== undefined && data.changes !== undefined) {
    say("live");
    window.setInterval(ages, 10000);
    window.setTimeout(poll, data.page === "problem" ? INTERVAL_MS : 0);
  }
})();
