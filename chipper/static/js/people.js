// People: a name's card in a dialog (without this script the link opens the card's page), and
// new names and pictures shown live when someone changes theirs ("profile-updated" events).
(function () {
  "use strict";

  var dialog;

  function cardDialog() {
    if (dialog) return dialog;
    dialog = document.createElement("dialog");
    dialog.className = "card-dialog";
    dialog.setAttribute("aria-label", "Profile");
    // A click on the backdrop (the dialog itself, outside its card) closes it.
    dialog.addEventListener("click", function (event) {
      if (event.target === dialog) dialog.close();
    });
    document.body.append(dialog);
    return dialog;
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-card]");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    fetch(link.href, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status);
        return response.text();
      })
      .then(function (html) {
        var box = cardDialog();
        box.innerHTML = html;
        var close = document.createElement("button");
        close.type = "button";
        close.className = "icon-button close";
        close.setAttribute("aria-label", "Close");
        close.textContent = "×";
        close.addEventListener("click", function () { box.close(); });
        var card = box.querySelector(".profile-card");
        (card || box).prepend(close);
        if (window.htmx) htmx.process(box);
        box.showModal();
        var action = box.querySelector(".button, button[type=submit]");
        if (action) action.focus();
      })
      .catch(function () { location.assign(link.href); });
  });

  function showProfile(person) {
    document.querySelectorAll('[data-avatar="' + person.user_id + '"]').forEach(function (el) {
      if (person.avatar) {
        var img = el.querySelector("img") || document.createElement("img");
        img.alt = "";
        img.src = person.avatar;
        el.replaceChildren(img);
      } else {
        el.textContent = person.initials;
      }
    });
    document.querySelectorAll('[data-user-name="' + person.user_id + '"]').forEach(function (el) {
      el.textContent = person.name;
    });
  }

  var wired = new WeakSet();
  document.addEventListener("htmx:sseOpen", function (event) {
    var source = event.detail.source;
    if (!source || wired.has(source)) return;
    wired.add(source);
    source.addEventListener("profile-updated", function (e) {
      showProfile(JSON.parse(e.data));
    });
  });
})();
