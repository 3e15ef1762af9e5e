// Chipper's page script. Everything works without it; with it, htmx posts forms in place.
// It lives in a file (never inline) because pages ship a Content-Security-Policy.
(function () {
  "use strict";

  if (window.htmx) {
    // No eval and no injected <style>: both would break the Content-Security-Policy.
    htmx.config.allowEval = false;
    htmx.config.allowScriptTags = false;
    htmx.config.includeIndicatorStyles = false;
    htmx.config.selfRequestsOnly = true;
    // Pages hold private conversations: never copy them into localStorage.
    htmx.config.historyCacheSize = 0;
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
    root.querySelectorAll('.message[data-author-id="' + me + '"]').forEach(function (el) {
      el.classList.add("mine");
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

  document.addEventListener("htmx:load", function (event) {
    markMine(event.detail.elt);
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
    if (status === 400 || status === 403) {
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

  markMine(document);
})();
