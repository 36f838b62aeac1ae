// Keyboard shortcuts of the inbox, documented in the "?" overlay (inbox/shortcuts.html).
// Progressive enhancement: every action also works with the mouse and without JavaScript.
// A file of its own so the Content-Security-Policy needs no 'unsafe-inline'.
//   j / k   next / previous queue row (or message on a ticket), Enter opens it
//   r / n   focus the reply / internal note      e   mark the ticket as solved
//   /       search                              ?   show or hide the help overlay
//   Esc     close the overlay or leave a text field; Ctrl+Enter sends the form being typed
(function () {
  "use strict";

  var help = document.getElementById("shortcut-help");
  var selected = -1;

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function items() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-item]"));
  }

  function select(index) {
    var list = items();
    if (!list.length) return false;
    selected = Math.max(0, Math.min(index, list.length - 1));
    list.forEach(function (item, i) {
      item.classList.toggle("is-selected", i === selected);
      if (i === selected) item.setAttribute("aria-current", "true"); else item.removeAttribute("aria-current");
    });
    list[selected].scrollIntoView({ block: "nearest" });
    var link = list[selected].querySelector("a[href]");
    if (link) link.focus({ preventScroll: true });
    return true;
  }

  function focusField(name) {
    var field = document.querySelector('[data-shortcut="' + name + '"]');
    if (!field) return false;
    field.scrollIntoView({ block: "center" });
    field.focus();
    return true;
  }

  function solve() {
    var form = document.querySelector('form[data-shortcut="solve"]');
    if (!form) return false;
    form.requestSubmit();
    return true;
  }

  function toggleHelp(show) {
    if (!help) return false;
    help.hidden = show === undefined ? !help.hidden : !show;
    if (!help.hidden) help.querySelector("button").focus();
    return true;
  }

  var keys = {
    j: function () { return select(selected + 1); },
    k: function () { return select(selected < 0 ? 0 : selected - 1); },
    r: function () { return focusField("reply"); },
    n: function () { return focusField("note"); },
    e: solve,
    "/": function () { return focusField("search"); },
    "?": function () { return toggleHelp(); }
  };

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      if (help && !help.hidden) { toggleHelp(false); return; }
      if (typing(event.target)) event.target.blur();
      return;
    }
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && event.target.form &&
        event.target.tagName === "TEXTAREA") {
      event.preventDefault();
      event.target.form.requestSubmit();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (help && !help.hidden && event.key !== "?") return;
    var action = Object.prototype.hasOwnProperty.call(keys, event.key) ? keys[event.key] : null;
    if (action && action()) event.preventDefault();
  });

  if (help) {
    help.addEventListener("click", function (event) {
      if (event.target === help || event.target.hasAttribute("data-close-help")) toggleHelp(false);
    });
  }
})();
