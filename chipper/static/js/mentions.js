// "@" in the composer offers the conversation's people (the page's #mention-people list):
// arrows move, Enter or Tab chooses, Escape closes. The server finds mentions in the text
// itself, so a name typed by hand (or without this script) is a mention all the same.
(function () {
  "use strict";

  var list = null;   // the open <ul role="listbox">, or null
  var active = 0;
  var start = -1;    // where the "@" being completed is in the text

  function people() {
    var source = document.getElementById("mention-people");
    if (!source) return [];
    return Array.prototype.map.call(source.content.querySelectorAll("li"), function (li) {
      return li.dataset.name;
    });
  }

  function close(box) {
    if (list) list.remove();
    list = null;
    start = -1;
    if (box) {
      box.removeAttribute("aria-activedescendant");
      box.setAttribute("aria-expanded", "false");
    }
  }

  function highlight(box) {
    var options = list.querySelectorAll("li");
    options.forEach(function (li, i) {
      li.setAttribute("aria-selected", i === active ? "true" : "false");
    });
    box.setAttribute("aria-activedescendant", options[active].id);
  }

  function choose(box, name) {
    var caret = box.selectionStart;
    var before = box.value.slice(0, start) + "@" + name + " ";
    box.value = before + box.value.slice(caret);
    box.setSelectionRange(before.length, before.length);
    close(box);
    box.focus();
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function offer(box) {
    var text = box.value.slice(0, box.selectionStart);
    // An "@" at the start or after a space, then up to 30 characters of a name.
    var match = /(^|[\s(])@([^@\n]{0,30})$/.exec(text);
    if (!match) return close(box);
    var typed = match[2].toLowerCase();
    var found = people().filter(function (name) {
      return name.toLowerCase().indexOf(typed) === 0;
    }).slice(0, 8);
    if (!found.length) return close(box);
    if (list) list.remove();
    start = text.length - match[2].length - 1;
    active = 0;
    list = document.createElement("ul");
    list.id = "mention-list";
    list.className = "mention-list";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "People to mention");
    found.forEach(function (name, i) {
      var li = document.createElement("li");
      li.id = "mention-option-" + i;
      li.setAttribute("role", "option");
      li.textContent = name;
      li.addEventListener("mousedown", function (event) {
        event.preventDefault(); // keep the focus in the box
        choose(box, name);
      });
      list.appendChild(li);
    });
    box.form.appendChild(list);
    box.setAttribute("aria-controls", "mention-list");
    box.setAttribute("aria-expanded", "true");
    highlight(box);
  }

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches(".composer textarea")) offer(event.target);
  });

  // Capturing, so that Enter chooses a name before chipper.js would send the message.
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (!list || !box.matches || !box.matches(".composer textarea")) return;
    var count = list.querySelectorAll("li").length;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      active = (active + (event.key === "ArrowDown" ? 1 : count - 1)) % count;
      highlight(box);
    } else if ((event.key === "Enter" || event.key === "Tab") && !event.isComposing) {
      choose(box, list.querySelectorAll("li")[active].textContent);
    } else if (event.key === "Escape") {
      close(box);
    } else {
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation();
  }, true);

  document.addEventListener("focusout", function (event) {
    if (list && event.target.matches && event.target.matches(".composer textarea")) close(event.target);
  });
  // A sent message empties the composer (htmx swaps a new one in).
  document.addEventListener("htmx:afterSwap", function () { if (list && !document.contains(list)) close(null); });
})();
