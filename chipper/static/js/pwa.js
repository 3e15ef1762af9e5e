// The installable app, page side: registers the service worker, says when the page is offline,
// keeps the app icon's badge at the unread count, and turns push notifications on and off.
// Nothing here is needed for Chipper to work; without it (or without JavaScript) the pages are
// the same, only not kept for offline reading.
(function () {
  "use strict";

  var body = document.body;
  var worker = "serviceWorker" in navigator ? navigator.serviceWorker : null;

  if (worker && body.dataset.serviceWorker) {
    worker.register(body.dataset.serviceWorker, { scope: "/" }).catch(function () {});
    // A page that loaded while the worker was activating is not claimed with the others:
    // ask again, so this page too is kept for offline reading.
    worker.ready.then(function (registration) {
      if (!worker.controller && registration.active) {
        registration.active.postMessage({ type: "claim" });
      }
    });
  }

  function tellWorker(message) {
    if (!worker) return;
    worker.ready.then(function (registration) {
      if (registration.active) registration.active.postMessage(message);
    });
  }

  // A signed-out page (after logging out, or when the session ended) leaves no private page
  // behind on this device. The logout answer also clears site data; this covers the rest.
  if (body.dataset.session === "out") tellWorker({ type: "signed-out" });
  document.addEventListener("submit", function (event) {
    if (event.target.matches && event.target.matches("form[data-logout]")) {
      tellWorker({ type: "signed-out" });
    }
  });

  // Offline notice. The service worker unhides it on a saved copy (data-offline-copy); a live
  // page shows it while the connection is down.
  var notice = document.querySelector("[data-offline-notice]");
  var savedCopy = notice && notice.hasAttribute("data-offline-copy");
  function showConnection() {
    if (!notice) return;
    notice.hidden = !savedCopy && navigator.onLine;
  }
  window.addEventListener("offline", showConnection);
  window.addEventListener("online", function () {
    showConnection();
    if (savedCopy) reloadWhenReachable();
  });
  showConnection();

  // A saved copy gives way to the real page as soon as the server answers again. "online"
  // only says a network is there (and fires early), so the server is asked first: a HEAD
  // request, which the service worker leaves to the network. Also tried every few seconds,
  // for a server that was down while the network was not.
  var retryTimer = null;
  function reloadWhenReachable() {
    clearTimeout(retryTimer);
    fetch(location.href, { method: "HEAD", cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (response.status < 500) location.reload();
        else retryLater();
      }, retryLater);
  }
  function retryLater() {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(reloadWhenReachable, 5000);
  }
  if (savedCopy) retryLater();

  var retry = document.querySelector("[data-retry]");
  if (retry) {
    retry.addEventListener("click", function (event) {
      event.preventDefault();
      location.reload();
    });
  }

  // The app icon's badge follows the unread count in the navigation.
  function unreadCount() {
    var badge = document.querySelector("#nav-unread .badge");
    var n = badge ? parseInt(badge.textContent, 10) : 0;
    return isNaN(n) ? 0 : n;
  }
  function updateBadge() {
    if (body.dataset.session !== "in" || savedCopy || !("setAppBadge" in navigator)) return;
    var n = unreadCount();
    (n > 0 ? navigator.setAppBadge(n) : navigator.clearAppBadge()).catch(function () {});
  }
  // A conversation opened from the list (only its pane swapped in): the worker fetches and
  // saves the whole page, as it does for a page load, so it can be read offline too.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "conversation-pane" || !worker || !worker.controller) return;
    worker.controller.postMessage({ type: "save-page", url: event.detail.pathInfo.requestPath });
  });

  // After any swap: the badge is swapped out whole (outerHTML) when the count changes.
  document.addEventListener("htmx:afterSettle", updateBadge);
  updateBadge();

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function send(method, url, data) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      keepalive: true,
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrfToken(),
      },
      body: JSON.stringify(data),
    });
  }

  // Whether this tab is visible, told to the server under the stream's name (its "hello"
  // event): people looking at a visible tab get no push notification for what they see.
  var streamName = null;
  function reportVisibility() {
    if (!streamName || !body.dataset.visibilityUrl) return;
    send("POST", body.dataset.visibilityUrl, {
      stream: streamName,
      visible: document.visibilityState === "visible",
    }).catch(function () {});
  }
  var wired = new WeakSet();
  document.addEventListener("htmx:sseOpen", function (event) {
    var source = event.detail.source;
    if (!source || wired.has(source)) return;
    wired.add(source);
    source.addEventListener("hello", function (e) {
      streamName = JSON.parse(e.data).stream;
      // A new stream counts as visible; say so only when it is not.
      if (document.visibilityState !== "visible") reportVisibility();
    });
  });
  document.addEventListener("visibilitychange", reportVisibility);

  // Push notifications: the "Turn on notifications" control on the conversation list.
  var control = document.querySelector("[data-push-control]");
  var pushable = control && control.dataset.pushKey && worker &&
    "PushManager" in window && "Notification" in window;
  if (pushable) {
    var state = control.querySelector("[data-push-state]");
    var onButton = control.querySelector("[data-push-on]");
    var offButton = control.querySelector("[data-push-off]");

    var show = function (subscribed, message) {
      control.hidden = false;
      onButton.hidden = subscribed;
      offButton.hidden = !subscribed;
      if (Notification.permission === "denied") {
        onButton.hidden = true;
        message = message || "Notifications are blocked for Chipper in this browser's site settings.";
      }
      state.textContent = message || (subscribed
        ? "Notifications are on for this browser."
        : "Get a notification for new messages and calls when Chipper is not open.");
    };

    var applicationServerKey = function () {
      var text = control.dataset.pushKey.replace(/-/g, "+").replace(/_/g, "/");
      var raw = atob(text + "===".slice((text.length + 3) % 4));
      return Uint8Array.from(raw, function (c) { return c.charCodeAt(0); });
    };

    worker.ready.then(function (registration) {
      registration.pushManager.getSubscription().then(function (subscription) {
        show(Boolean(subscription));
      });

      onButton.addEventListener("click", function () {
        onButton.disabled = true;
        Notification.requestPermission().then(function (permission) {
          if (permission !== "granted") throw new Error("permission " + permission);
          return registration.pushManager.subscribe({
            userVisibleOnly: true,
            applicationServerKey: applicationServerKey(),
          });
        }).then(function (subscription) {
          return send("POST", control.dataset.pushUrl, subscription.toJSON()).then(function (r) {
            if (!r.ok) throw new Error("the server answered " + r.status);
          });
        }).then(function () {
          show(true);
        }, function (error) {
          show(false, Notification.permission === "denied" ? null
            : "Notifications could not be turned on (" + error.message + ").");
        }).finally(function () { onButton.disabled = false; });
      });

      offButton.addEventListener("click", function () {
        offButton.disabled = true;
        registration.pushManager.getSubscription().then(function (subscription) {
          if (!subscription) return null;
          var endpoint = subscription.endpoint;
          return subscription.unsubscribe().then(function () {
            return send("DELETE", control.dataset.pushUrl, { endpoint: endpoint });
          });
        }).then(function () { show(false); }, function () {
          show(true, "Notifications could not be turned off. Try again.");
        }).finally(function () { offButton.disabled = false; });
      });
    });
  }
})();
