// Chipper's service worker, served at /sw.js (scope: the whole site) with `self.CHIPPER`
// set in front of it by the server: its version, what to precache, what never to touch.
//
// - The app shell (CSS, scripts, icons, the offline page) is precached per version.
// - Pages go to the network first. Pages the server marks `X-Offline-Copy: save` (the
//   conversation list and the latest messages of a conversation) are kept, the 30 most recent,
//   so they can be read offline, with a notice saying so.
// - Only GET requests are answered here: posts, the live stream and attachments always go to
//   the network, untouched.
// - Signing out (or a page seen signed out) deletes every saved page.
// - Push messages become notifications; clicking one opens its conversation.
"use strict";

var settings = self.CHIPPER;
var SHELL = "chipper-shell-" + settings.version;
var PAGES = "chipper-pages";

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(SHELL)
      .then(function (cache) { return cache.addAll(settings.precache); })
      .then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys()
      .then(function (keys) {
        return Promise.all(keys.filter(function (key) {
          return key.indexOf("chipper-shell-") === 0 && key !== SHELL;
        }).map(function (key) { return caches.delete(key); }));
      })
      .then(function () { return self.clients.claim(); })
  );
});

function untouchable(url) {
  return url.origin !== self.location.origin || settings.never.some(function (path) {
    return url.pathname === path || (path.slice(-1) === "/" && url.pathname.indexOf(path) === 0);
  });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (untouchable(url)) return;
  if (request.mode === "navigate") {
    event.respondWith(page(event));
  } else if (settings.precache.indexOf(url.pathname) !== -1 && !url.search) {
    // ignoreVary: the server varies every answer on Accept, which differs between a
    // stylesheet's request and the precache's.
    event.respondWith(caches.open(SHELL).then(function (cache) {
      return cache.match(request, { ignoreVary: true }).then(function (hit) {
        return hit || fetch(request);
      });
    }));
  }
});

function page(event) {
  var request = event.request;
  return fetch(request).then(function (response) {
    if (response.ok && response.headers.get("X-Offline-Copy") === "save") {
      event.waitUntil(save(request, response.clone()));
    }
    return response;
  }, function () {
    return caches.open(PAGES)
      .then(function (cache) { return cache.match(request, { ignoreVary: true }); })
      .then(function (saved) {
        if (saved) return savedCopy(saved);
        return caches.open(SHELL)
          .then(function (cache) { return cache.match(settings.offline, { ignoreVary: true }); })
          .then(function (offline) { return offline || Response.error(); });
      });
  });
}

function save(request, response) {
  return caches.open(PAGES).then(function (cache) {
    // Deleted first so the page moves to the end: keys() lists the oldest first.
    return cache.delete(request)
      .then(function () { return cache.put(request, response); })
      .then(function () { return cache.keys(); })
      .then(function (keys) {
        var extra = keys.length - settings.savedPages;
        return Promise.all(keys.slice(0, Math.max(extra, 0)).map(function (key) {
          return cache.delete(key);
        }));
      });
  });
}

// A saved page says that it is one, and since when (the time it was fetched).
function savedCopy(saved) {
  var when = saved.headers.get("Date");
  return saved.text().then(function (html) {
    var label = "";
    if (when) {
      label = " from " + new Date(when).toLocaleString([], {
        dateStyle: "medium", timeStyle: "short",
      });
    }
    html = html
      .replace("data-offline-notice hidden", "data-offline-notice data-offline-copy")
      .replace("data-saved-copy hidden", "data-saved-copy")
      .replace("<span data-saved-at></span>", "<span data-saved-at>" + label + "</span>");
    return new Response(html, {
      status: 200,
      headers: {
        "Content-Type": saved.headers.get("Content-Type") || "text/html; charset=utf-8",
        "Content-Security-Policy": saved.headers.get("Content-Security-Policy") || "",
      },
    });
  });
}

function forgetPages() {
  return caches.delete(PAGES);
}

self.addEventListener("message", function (event) {
  var data = event.data || {};
  if (data.type === "claim") event.waitUntil(self.clients.claim());
  if (data.type === "signed-out") event.waitUntil(forgetPages());
  if (data.type === "badge") event.waitUntil(setBadge(data.unread));
  if (data.type === "save-page" && typeof data.url === "string") event.waitUntil(savePage(data.url));
});

// A page the tab showed without loading it (a pane swapped in): fetched whole and saved, if
// the server marks it as one to keep, like a page load's answer.
function savePage(path) {
  var url = new URL(path, self.location.origin);
  if (url.origin !== self.location.origin || untouchable(url)) return Promise.resolve();
  var request = new Request(url.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
  return fetch(request).then(function (response) {
    if (response.ok && response.headers.get("X-Offline-Copy") === "save") {
      return save(request, response);
    }
  }, function () {});
}

// Push: a new message or an incoming call, for someone not looking at Chipper right now.

function setBadge(count) {
  if (!("setAppBadge" in self.navigator)) return Promise.resolve();
  var done = count > 0 ? self.navigator.setAppBadge(count) : self.navigator.clearAppBadge();
  return done.catch(function () {});
}

self.addEventListener("push", function (event) {
  var data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (error) {
    data = { body: event.data.text() };
  }
  var call = data.type === "call";
  var options = {
    body: data.body || "",
    tag: data.tag,
    renotify: Boolean(data.tag),
    requireInteraction: call,
    // The sender's picture (a same-origin path), else the app's icon.
    icon: data.icon || settings.icon,
    badge: settings.badge,
    data: { url: data.url || settings.home },
  };
  if (call) options.vibrate = [300, 200, 300, 200, 300];
  var work = [self.registration.showNotification(data.title || "Chipper", options)];
  if (typeof data.unread === "number") work.push(setBadge(data.unread));
  event.waitUntil(Promise.all(work));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var target = new URL(event.notification.data.url, self.location.origin).href;
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true })
    .then(function (windows) {
      var exact = windows.find(function (w) { return w.url === target; });
      if (exact) return exact.focus();
      if (windows.length && "navigate" in windows[0]) {
        return windows[0].focus().then(function (w) { return w.navigate(target); });
      }
      return self.clients.openWindow(target);
    }));
});

// The browser replaced this device's push subscription: tell the server the new one.
self.addEventListener("pushsubscriptionchange", function (event) {
  if (!settings.pushSubscriptions || !settings.publicKey) return;
  event.waitUntil(
    self.registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: settings.publicKey,
    }).then(function (subscription) {
      return fetch(settings.csrfUrl, { headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (body) {
          return fetch(settings.pushSubscriptions, {
            method: "POST",
            headers: { "Content-Type": "application/json", "X-CSRFToken": body.csrf_token },
            body: JSON.stringify(subscription.toJSON()),
          });
        });
    })
  );
});
