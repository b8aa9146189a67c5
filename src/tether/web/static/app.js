/* tether member page. No inline handlers, no eval: everything is wired here, under the CSP
 * nonce of the page that loads this file. htmx does the requests and swaps; this file opens
 * the source's sign-in (popup or this window) and listens for the completion page's message. */
(function () {
  "use strict";

  var ORIGIN = window.location.origin;
  var POPUP_NAME = "tether-connect";
  var popup = null;
  var watcher = null;

  function flash(text, isError) {
    var region = document.getElementById("flash");
    if (!region) return;
    region.textContent = "";
    var box = document.createElement("div");
    box.className = "alert " + (isError ? "error" : "info");
    box.setAttribute("role", isError ? "alert" : "status");
    var p = document.createElement("p");
    p.textContent = text;
    box.appendChild(p);
    region.appendChild(box);
  }

  function refreshConnections(params) {
    var query = params ? "?" + new URLSearchParams(params).toString() : "";
    if (window.htmx && document.getElementById("connections")) {
      window.htmx.ajax("GET", "/app/connections" + query, { target: "#connections", swap: "outerHTML" });
    }
  }

  function stopWatching() {
    if (watcher) { window.clearInterval(watcher); watcher = null; }
  }

  function clearFlash() {
    var region = document.getElementById("flash");
    if (region) region.textContent = "";
  }

  function watchPopup(win) {
    stopWatching();
    watcher = window.setInterval(function () {
      if (!win.closed) return;
      stopWatching();
      // The completion page posts its message just before it closes, and the message may be
      // dispatched after this tick: give it a moment, then refresh plainly if none came.
      window.setTimeout(function () {
        if (popup === win) { popup = null; clearFlash(); refreshConnections(); }
      }, 500);
    }, 800);
  }

  // When a connection's status changes, the search results' buttons may change too.
  var signature = null;
  function connectionsLoaded(element) {
    var section = element.id === "connections" ? element : element.querySelector("#connections");
    if (!section) return;
    var now = section.getAttribute("data-signature");
    var results = document.querySelector("#results .list");
    var search = document.getElementById("search");
    if (signature !== null && now !== signature && results && search && window.htmx) {
      window.htmx.trigger(search, "submit");
    }
    signature = now;
  }

  // The completion page (same origin) posts {statusCode, connectionId} to its opener.
  window.addEventListener("message", function (event) {
    if (event.origin !== ORIGIN) return;
    if (!popup || event.source !== popup) return;
    var data = event.data;
    if (!data || typeof data.statusCode !== "string" || typeof data.connectionId !== "string") return;
    stopWatching();
    popup = null;
    refreshConnections({ status_code: data.statusCode, connectionId: data.connectionId });
  });

  function setBusy(form, busy) {
    var button = form.querySelector("button[type=submit]");
    if (button) { button.disabled = busy; button.setAttribute("aria-busy", busy ? "true" : "false"); }
  }

  // Connect and reconnect: getOauthUrl, then the launch link in a popup, or in this window
  // when popups are blocked or unavailable (webviews) or the app asked for that.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-connect")) return;
    event.preventDefault();
    var win = null;
    if (document.body.getAttribute("data-display") !== "redirect") {
      // Opened synchronously, inside the click, so that popup blockers allow it.
      win = window.open("", POPUP_NAME, "popup=yes,width=520,height=720");
    }
    var body = new URLSearchParams(new FormData(form));
    body.set("display", win ? "popup" : "redirect");
    setBusy(form, true);
    fetch(form.action, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      return response.json().then(function (answer) { return { ok: response.ok, answer: answer }; });
    }).then(function (result) {
      setBusy(form, false);
      if (!result.ok || typeof result.answer.redirectUrl !== "string") {
        if (win) win.close();
        flash(result.answer.detail || "The connection could not be started. Please try again.", true);
        return;
      }
      if (win) {
        popup = win;
        win.location.replace(result.answer.redirectUrl);
        watchPopup(win);
        flash("Sign in at the data source in the window that opened.", false);
      } else {
        window.location.assign(result.answer.redirectUrl);
      }
    }).catch(function () {
      setBusy(form, false);
      if (win) win.close();
      flash("tether could not be reached. Check your connection and try again.", true);
    });
  });

  // "Keep it" closes the delete confirmation and puts focus back on its button.
  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target.closest("[data-close-details]") : null;
    if (!target) return;
    var details = target.closest("details");
    if (details) {
      details.open = false;
      var summary = details.querySelector("summary");
      if (summary) summary.focus();
    }
  });

  function localTimes(root) {
    var nodes = (root || document).querySelectorAll("time[data-local]");
    for (var i = 0; i < nodes.length; i++) {
      var when = new Date(nodes[i].getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        nodes[i].textContent = when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
      }
    }
  }

  function enter() {
    // The app link's secret is in the fragment: take it, erase it, and post it.
    var token = window.location.hash.slice(1);
    window.history.replaceState(null, "", window.location.pathname);
    var form = document.getElementById("enter-form");
    if (!token || !form) {
      var problem = document.getElementById("enter-problem");
      if (problem) problem.hidden = false;
      return;
    }
    document.getElementById("enter-token").value = token;
    form.submit();
  }

  function start() {
    var page = document.body.getAttribute("data-page");
    if (page === "enter") { enter(); return; }
    if (page === "entered") { window.location.replace("/app"); return; }
    localTimes(document);
    if (window.htmx) {
      window.htmx.onLoad(function (element) { localTimes(element); connectionsLoaded(element); });
      document.body.addEventListener("htmx:sendError", function () {
        flash("tether could not be reached. Check your connection; the page will try again.", true);
      });
      // After an action replaced the list, keep keyboard focus somewhere sensible.
      document.body.addEventListener("htmx:afterSettle", function (event) {
        var source = event.detail && event.detail.requestConfig ? event.detail.requestConfig.elt : null;
        if (source && source.tagName === "FORM" && document.activeElement === document.body) {
          var heading = document.getElementById("connections-title");
          if (heading) heading.focus();
        }
      });
      document.body.addEventListener("htmx:responseError", function (event) {
        var status = event.detail && event.detail.xhr ? event.detail.xhr.status : 0;
        flash("Something went wrong on tether's side (HTTP " + status + "). Please try again.", true);
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
