// warden console: the live updates. No inline script anywhere (the CSP forbids it); this file
// is the console's only script.
//
// - One EventSource on /ui/live per page that has live parts; each `head` event (the ledger's
//   committed head moved) refreshes them:
//   - [data-live="URL"]: its inner HTML is replaced by GET URL (not while the operator is
//     typing into or focused on a form inside it);
//   - [data-live-append="URL"][data-after="SEQ"]: GET URL?after=SEQ is appended (HTML rows),
//     and the answer's X-Warden-Last-Seq header becomes its new data-after.
// - One fetch at a time per element; a head that moves meanwhile is fetched once after.
// - A fetch answered with a redirect (the console session ended) goes to the sign-in page.
"use strict";
(function () {
  var SIGN_IN = "/ui/login";
  var busy = new WeakMap();

  function signedOut() {
    window.location.assign(SIGN_IN);
  }

  function fetchPart(url) {
    return fetch(url, {
      credentials: "same-origin",
      redirect: "manual",
      headers: { Accept: "text/html" },
    }).then(function (r) {
      if (r.type === "opaqueredirect" || r.status === 401) {
        signedOut();
        return null;
      }
      return r.ok ? r : null;
    });
  }

  // Runs job(el) unless one runs already; then runs it once more when that one ends.
  function once(el, job) {
    var state = busy.get(el);
    if (state) {
      state.again = true;
      return;
    }
    state = { again: false };
    busy.set(el, state);
    job(el)
      .catch(function () {})
      .then(function () {
        busy.delete(el);
        if (state.again) {
          once(el, job);
        }
      });
  }

  // Whether the operator is using a form inside el: a field or button of it has the focus, or a
  // field holds something typed. Such a part is not replaced (what was typed would be lost, and
  // a lift form under a busy ledger could never be sent); the next head after refreshes it.
  function editing(el) {
    var active = document.activeElement;
    if (active && active !== document.body && el.contains(active)) {
      return true;
    }
    return Array.prototype.some.call(
      el.querySelectorAll("input, textarea, select"),
      function (f) {
        return f.type !== "hidden" && f.value !== f.defaultValue;
      }
    );
  }

  function refresh(el) {
    if (editing(el)) {
      return Promise.resolve(null);
    }
    return fetchPart(el.getAttribute("data-live")).then(function (r) {
      return r && r.text().then(function (html) {
        if (!editing(el)) {
          el.innerHTML = html;
        }
      });
    });
  }

  function append(el) {
    var url = new URL(el.getAttribute("data-live-append"), window.location.href);
    url.searchParams.set("after", el.getAttribute("data-after") || "0");
    return fetchPart(url.toString()).then(function (r) {
      if (!r) {
        return null;
      }
      var last = r.headers.get("X-Warden-Last-Seq");
      return r.text().then(function (html) {
        if (html.trim() !== "") {
          el.insertAdjacentHTML("beforeend", html);
        }
        if (last) {
          el.setAttribute("data-after", last);
        }
      });
    });
  }

  function onHead() {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      once(el, refresh);
    });
    document.querySelectorAll("[data-live-append]").forEach(function (el) {
      once(el, append);
    });
  }

  function connect() {
    var source = new EventSource("/ui/live");
    source.addEventListener("head", onHead);
    source.onerror = function () {
      if (source.readyState !== EventSource.CLOSED) {
        return; // the browser reconnects by itself
      }
      // Closed for good (signed out, or too many live views): find out which, later.
      window.setTimeout(function () {
        fetchPart(window.location.href).then(function (r) {
          if (r) {
            connect();
          }
        });
      }, 5000);
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (document.querySelector("[data-live], [data-live-append]")) {
      connect();
    }
  });
})();
