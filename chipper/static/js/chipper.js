// Chipper's page script. Everything works without it; with it, htmx posts forms in place.
// It lives in a file (never inline) because pages ship a Content-Security-Policy.
(function () {
  "use strict";

  // Styles that need this script (the composer's icon-only file field) apply from here.
  document.documentElement.classList.add("js");

  if (window.htmx) {
    // No eval and no injected <style>: both would break the Content-Security-Policy.
    htmx.config.allowEval = false;
    htmx.config.allowScriptTags = false;
    htmx.config.includeIndicatorStyles = false;
    htmx.config.selfRequestsOnly = true;
    // Pages hold private conversations: never copy them into localStorage.
    htmx.config.historyCacheSize = 0;
    // So Back and Forward after opening conversations from the list load the whole page.
    htmx.config.refreshOnHistoryMiss = true;
    // 422 carries the form back with its error message, so it is swapped like a success.
    htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "[23]..", swap: true },
      { code: "422", swap: true },
      { code: "[45]..", swap: false, error: true },
    ];
  }

  var me = document.body.dataset.userId;

  // Messages are rendered the same for everyone; the reader's own ones are marked here.
  function markMine(root) {
    if (!me || !root.querySelectorAll) return;
    var selector = '.message[data-author-id="' + me + '"]';
    if (root.matches && root.matches(selector)) root.classList.add("mine");
    root.querySelectorAll(selector).forEach(function (el) {
      el.classList.add("mine");
    });
    root.querySelectorAll('.mention[data-user-id="' + me + '"]').forEach(function (el) {
      el.classList.add("you");
    });
    // The reader's own reactions, on messages rendered for everyone.
    root.querySelectorAll('.reaction[data-user-ids*=" ' + me + ' "]').forEach(function (el) {
      el.classList.add("yours");
      el.setAttribute("aria-pressed", "true");
    });
  }

  function toast(text) {
    var el = document.getElementById("toast");
    if (!el) return;
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { el.hidden = true; }, 6000);
  }

  function scrollTimelineToEnd() {
    var timeline = document.querySelector(".timeline");
    // The timeline is a column-reverse scroller: 0 is the newest end.
    if (timeline) timeline.scrollTop = 0;
  }

  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches(".composer textarea")) return;
    // Enter sends, Shift+Enter starts a new line; not while an IME is composing.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      box.form.requestSubmit();
    }
  });

  // A broadcast call box shows every action; keep the reader's own (see calls/_call.html).
  function markMyCallState(root) {
    if (!me || !root.querySelectorAll) return;
    var calls = Array.prototype.slice.call(root.querySelectorAll(".call[data-call-id]"));
    if (root.matches && root.matches(".call[data-call-id]")) calls.push(root);
    calls.forEach(function (call) {
      var mine = call.querySelector('.call-members [data-user-id="' + me + '"]');
      if (mine) call.dataset.myState = mine.dataset.state;
    });
  }

  // Runs and days, for messages that arrive live (the server marks those of a full page, see
  // filters.continues_run): messages of one sender a few minutes apart form a run, shown with
  // one name and avatar, and the first message of a new day (UTC, as the server's) gets its
  // divider.
  var RUN_GAP_MS = 5 * 60 * 1000;

  function postedAt(li) {
    var time = li.querySelector(".meta time[datetime]");
    return time ? new Date(time.getAttribute("datetime")) : null;
  }

  function day(date) {
    return date.toISOString().slice(0, 10);
  }

  function place(li) {
    if (!li || !li.parentElement || li.parentElement.id !== "messages") return;
    if (!li.classList.contains("message")) return;
    var prev = li.previousElementSibling;
    while (prev && !prev.classList.contains("message") && !prev.classList.contains("day")) {
      prev = prev.previousElementSibling;
    }
    var when = postedAt(li);
    if (!when) return;
    var before = prev && prev.classList.contains("message") ? postedAt(prev) : null;
    if (!prev || (before && day(before) !== day(when))) {
      var divider = document.createElement("li");
      divider.className = "day";
      var label = document.createElement("span");
      label.textContent = day(when) === day(new Date()) ? "Today" : when.toLocaleDateString();
      divider.appendChild(label);
      li.before(divider);
      before = null;
    }
    var plain = function (el) {
      return !el.classList.contains("deleted") && !el.classList.contains("call");
    };
    li.classList.toggle(
      "continued",
      Boolean(before) && plain(prev) && plain(li) && li.dataset.authorId !== "" &&
        prev.dataset.authorId === li.dataset.authorId && when - before < RUN_GAP_MS
    );
  }

  function placeAll(root) {
    if (!root.querySelectorAll) return;
    if (root.matches && root.matches("#messages > .message")) place(root);
    root.querySelectorAll("#messages > .message").forEach(place);
  }

  document.addEventListener("htmx:load", function (event) {
    markMine(event.detail.elt);
    markMyCallState(event.detail.elt);
    placeAll(event.detail.elt);
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "messages" && event.detail.requestConfig.verb !== "get") {
      scrollTimelineToEnd();
    }
  });

  document.addEventListener("htmx:afterSettle", function () {
    var box = document.querySelector(".composer textarea");
    if (box && document.activeElement === document.body) box.focus();
  });

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    var reason = event.detail.xhr.getResponseHeader("X-Chipper-Reason");
    if ((status === 403 || status === 409) && reason) {
      toast(decodeURIComponent(reason));
    } else if (status === 400 || status === 403) {
      toast("That did not work: " + (status === 400 ? "reload the page and try again." : "you are not allowed to do that."));
    } else if (status === 404) {
      toast("That is no longer there. Reload the page.");
    } else {
      toast("Something went wrong on the server. Try again in a moment.");
    }
  });

  document.addEventListener("htmx:sendError", function () {
    toast("You seem to be offline. Your text is still in the box.");
  });

  // Drafts: what is typed in a conversation's box outlives a reload of this tab (offline, the
  // saved copy comes back with an empty box). Kept in sessionStorage, which is this tab's and
  // which logging out clears; dropped once the message is sent.
  function draftKey(form) {
    return "chipper-draft:" + form.getAttribute("action");
  }
  function drafts() {
    try {
      return window.sessionStorage;
    } catch (error) {
      return null; // storage turned off
    }
  }
  document.addEventListener("input", function (event) {
    var box = event.target;
    if (!drafts() || !box.matches || !box.matches("#composer textarea")) return;
    if (box.value) drafts().setItem(draftKey(box.form), box.value);
    else drafts().removeItem(draftKey(box.form));
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    // The form that sent, even once swapped out (htmx then tells an ancestor instead).
    var form = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (drafts() && form && form.id === "composer" && event.detail.successful) {
      drafts().removeItem(draftKey(form));
    }
  });
  function restoreDraft() {
    var form = document.getElementById("composer");
    var box = form && form.querySelector("textarea");
    var saved = box && drafts() && drafts().getItem(draftKey(form));
    if (saved && !box.value) box.value = saved;
  }
  restoreDraft();

  // The two panes (conversations/_shell.html). A conversation opened from the list replaces
  // only the pane: the list keeps its scroll position and marks the open one; on a phone the
  // pane now shows instead of the list.
  var wide = window.matchMedia("(min-width: 900px)");
  // A row stays a plain link where the swap would do worse: a new tab or window (Ctrl, Cmd,
  // Shift, the middle button) and offline, where the page load gets the worker's saved copy.
  // Capturing at the document stops the click before htmx sees it.
  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest("#conversation-list a[hx-get]");
    if (!row) return;
    var modified = event.ctrlKey || event.metaKey || event.shiftKey || event.altKey || event.button !== 0;
    if (modified || navigator.onLine === false) event.stopPropagation();
  }, true);
  document.addEventListener("htmx:sendError", function (event) {
    var target = event.detail.target;
    if (target && target.id === "conversation-pane") location.assign(event.detail.pathInfo.requestPath);
  });
  // Enter in the person search searches (as you type already); it does not start the
  // conversation, the form's default button.
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (event.key === "Enter" && box.matches && box.matches('#new-conversation input[type="search"]')) {
      event.preventDefault();
    }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var panel = document.getElementById("details-panel");
    var toggle = document.querySelector("[data-details-toggle]");
    if (event.detail.target && event.detail.target.id === "conversation-header" && panel && toggle) {
      if (!panel.hidden) toggle.setAttribute("aria-expanded", "true");
    }
    if (!event.detail.target || event.detail.target.id !== "conversation-pane") return;
    var panes = document.querySelector(".panes");
    if (panes) panes.classList.add("has-pane");
    document.querySelectorAll("#conversation-list a[href]").forEach(function (link) {
      if (new URL(link.href).pathname === location.pathname) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    });
    restoreDraft();
    var box = document.querySelector("#composer textarea");
    if (box && wide.matches) box.focus();
  });

  // The details of a conversation: beside it from 900 px wide, their own page on a phone
  // (the link's plain behaviour, also without this script).
  function detailsPanel(open) {
    var panel = document.getElementById("details-panel");
    var toggle = document.querySelector("[data-details-toggle]");
    if (!panel || !toggle) return;
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) {
      var first = panel.querySelector("h2");
      if (first) first.setAttribute("tabindex", "-1");
      if (first) first.focus();
    }
  }
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest && event.target.closest("[data-details-toggle]");
    if (toggle && wide.matches) {
      event.preventDefault();
      detailsPanel(document.getElementById("details-panel").hidden);
      return;
    }
    if (event.target.closest && event.target.closest("[data-details-close]")) {
      detailsPanel(false);
      var back = document.querySelector("[data-details-toggle]");
      if (back) back.focus();
    }
  });
  document.addEventListener("keydown", function (event) {
    var panel = document.getElementById("details-panel");
    if (event.key === "Escape" && panel && !panel.hidden && panel.contains(event.target)) {
      detailsPanel(false);
      var toggle = document.querySelector("[data-details-toggle]");
      if (toggle) toggle.focus();
    }
  });

  // A conversation opens at "New messages" when there are some; messages that arrive while
  // the reader is further up are counted on a button that goes to the newest.
  var newBelow = 0;
  function timelineAtEnd() {
    var timeline = document.querySelector(".timeline");
    // A column-reverse scroller: 0 at the newest end, negative further up.
    return !timeline || timeline.scrollTop > -80;
  }
  function showNewBelow() {
    var button = document.getElementById("new-below");
    if (!button) return;
    button.hidden = newBelow === 0;
    button.textContent = newBelow === 1 ? "1 new message" : newBelow + " new messages";
  }
  // On a page load and when the list opens a conversation in the pane (htmx).
  function openTimeline() {
    newBelow = 0;
    showNewBelow();
    var divider = document.getElementById("unread");
    if (divider) divider.scrollIntoView({ block: "start" });
  }
  document.addEventListener("DOMContentLoaded", openTimeline);
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "conversation-pane") openTimeline();
  });
  // Scrolling does not bubble; caught on the way down, for whichever timeline is shown.
  document.addEventListener("scroll", function (event) {
    if (newBelow && event.target.classList && event.target.classList.contains("timeline") && timelineAtEnd()) {
      newBelow = 0;
      showNewBelow();
    }
  }, { capture: true, passive: true });
  document.addEventListener("click", function (event) {
    if (!event.target.closest || !event.target.closest("#new-below")) return;
    var latest = latestPage();
    if (latest) {
      location.assign(latest);
      return;
    }
    newBelow = 0;
    showNewBelow();
    scrollTimelineToEnd();
  });
  // The latest page's address when this one shows older history with newer messages left
  // out (?before= or ?around=): new messages are not appended below such a page.
  function latestPage() {
    var list = document.getElementById("messages");
    return list && list.getAttribute("data-latest");
  }

  // A reply's quote shows its original: scrolled to and outlined a moment when it is on the
  // page; otherwise the link opens the history around it.
  document.addEventListener("click", function (event) {
    var quote = event.target.closest && event.target.closest("a.quote[data-jump]");
    if (!quote) return;
    var original = document.getElementById(quote.getAttribute("data-jump"));
    if (!original) return;
    event.preventDefault();
    original.scrollIntoView({ block: "center" });
    original.classList.add("flash");
    setTimeout(function () { original.classList.remove("flash"); }, 1600);
  });

  // "Reply" fills the composer's reply slot: close the menu, and type straight away.
  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    var menu = elt && elt.closest && elt.closest(".message-menu");
    if (menu) menu.open = false;
    if (event.detail.target && event.detail.target.id === "reply-slot") {
      var box = document.querySelector("#composer textarea");
      if (box) box.focus();
    }
  });

  // Live updates (htmx's SSE extension, connected on <body>).

  // Remember the newest event id in the stream URL: after a hard failure the extension opens
  // a fresh EventSource from that URL, and the server replays from there.
  function noteEventId(id) {
    if (!/^\d+$/.test(id || "")) return;
    var url = new URL(document.body.getAttribute("sse-connect"), location.href);
    if (Number(id) > Number(url.searchParams.get("last_event_id") || 0)) {
      url.searchParams.set("last_event_id", id);
      document.body.setAttribute("sse-connect", url.pathname + url.search);
    }
  }

  // A message can reach the page twice (the POST answer and the broadcast, or a replay after
  // a reconnect): the DOM id decides. A known message is replaced in place (an edit shows the
  // new text, a deletion turns it into "message deleted"), except that an edit made elsewhere
  // leaves this tab's open edit form alone; a change to one not on the page is ignored.
  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var message = event.detail;
    noteEventId(message.lastEventId);
    if (message.type.indexOf("typing-") === 0) return;
    var template = document.createElement("template");
    template.innerHTML = (message.data || "").trim();
    var incoming = template.content.firstElementChild;
    if (!incoming || !incoming.id || !incoming.classList.contains("message")) return;
    var existing = document.getElementById(incoming.id);
    var editing = existing && existing.classList.contains("editing");
    if (editing && message.type.indexOf("message-updated-") === 0) {
      event.preventDefault();
    } else if (existing) {
      event.preventDefault();
      existing.replaceWith(incoming);
      htmx.process(incoming);
      markMine(incoming);
      place(incoming);
      place(incoming.nextElementSibling);
    } else if (message.type.indexOf("message-created-") !== 0 || latestPage()) {
      event.preventDefault();
    }
    if (message.type.indexOf("message-created-") === 0) {
      var typing = document.getElementById("typing");
      if (typing) typing.textContent = "";
      var below = !timelineAtEnd() || latestPage();
      if (!existing && below && incoming.getAttribute("data-author-id") !== me) {
        newBelow += 1;
        showNewBelow();
      }
    }
  });

  // The same for the answer to our own send: if the broadcast got here first, swap the
  // answer's copy in where the broadcast put it instead of appending a second one.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "messages" || !event.detail.serverResponse) return;
    var template = document.createElement("template");
    template.innerHTML = event.detail.serverResponse;
    var sent = template.content.querySelector("li.message[id]");
    if (latestPage() && sent && event.detail.xhr.status === 201) {
      // Sent from older history: the message is shown where it belongs, on the latest page.
      event.detail.shouldSwap = false;
      location.assign(latestPage() + "#" + sent.id);
      return;
    }
    var changed = false;
    Array.from(template.content.children).forEach(function (incoming) {
      if (!incoming.id || !incoming.classList.contains("message")) return;
      var existing = document.getElementById(incoming.id);
      if (!existing) return;
      incoming.remove();
      existing.replaceWith(incoming);
      htmx.process(incoming);
      markMine(incoming);
      changed = true;
    });
    if (changed) event.detail.serverResponse = template.innerHTML;
  });

  document.addEventListener("htmx:sseMessage", function (event) {
    noteEventId(event.detail.lastEventId);
  });

  function setPresence(userId, online) {
    document.querySelectorAll('[data-presence="' + userId + '"]').forEach(function (el) {
      el.classList.toggle("online", online);
    });
  }

  var wired = new WeakSet();
  var loggingOut = false;
  document.addEventListener("submit", function (event) {
    if (event.target.matches && event.target.matches("form[data-logout]")) loggingOut = true;
  });
  document.addEventListener("htmx:sseOpen", function (event) {
    var source = event.detail.source;
    if (!source || wired.has(source)) return;
    wired.add(source);
    source.addEventListener("presence", function (e) {
      var data = JSON.parse(e.data);
      setPresence(data.user_id, data.online);
    });
    // The server could not replay everything this page missed: start afresh.
    source.addEventListener("reload", function () { location.reload(); });
    // This sign-in was ended (signed out elsewhere, a password change): the next page load
    // goes to the login page. Logging out here ends it too, and goes there by itself.
    source.addEventListener("signed-out", function () {
      source.close();
      if (!loggingOut) location.reload();
    });
  });

  // Only a page someone is looking at marks messages read.
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt.id === "mark-read" && document.visibilityState !== "visible") {
      event.preventDefault();
    }
  });
  document.addEventListener("visibilitychange", function () {
    var form = document.getElementById("mark-read");
    if (form && document.visibilityState === "visible") htmx.trigger(form, "read-now");
  });

  markMine(document);
})();
