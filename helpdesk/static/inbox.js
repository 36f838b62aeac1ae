// Keyboard shortcuts of the inbox (progressive enhancement: every action also works
// without JavaScript). Served as a file so the Content-Security-Policy needs no
// 'unsafe-inline'. j/k move, Enter opens, r reply, n note, e solve, / search, ? help.
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
    if (!list.length) return;
    selected = Math.max(0, Math.min(index, list.length - 1));
    list.forEach(function (item, i) { item.classList.toggle("is-selected", i === selected); });
    list[selected].scrollIntoView({ block: "nearest" });
    var link = list[selected].querySelector("a");
    if (link) link.focus({ preventScroll: true });
  }

  function focusField(name) {
    var field = document.querySelector('[data-shortcut="' + name + '"]');
    if (!field) return false;
    field.scrollIntoView({ block: "center" });
    field.focus();
    return true;
  }

  function toggleHelp(show) {
    if (!help) return;
    help.hidden = show === undefined ? !help.hidden : !show;
    if (!help.hidden) help.querySelector("button").focus();
  }

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
    var handled = true;
    switch (event.key) {
      case "j": select(selected + 1); break;
      case "k": select(selected - 1); break;
      case "r": handled = focusField("reply"); break;
      case "n": handled = focusField("note"); break;
      case "/": handled = focusField("search"); break;
      case "?": toggleHelp(); break;
      case "e":
        var solve = document.querySelector('form[data-shortcut="solve"]');
        if (solve) solve.requestSubmit(); else handled = false;
        break;
      default: handled = false;
    }
    if (handled) event.preventDefault();
  });

  if (help) {
    help.addEventListener("click", function (event) {
      if (event.target === help || event.target.hasAttribute("data-close-help")) toggleHelp(false);
    });
  }

  // A submitted form shows it is working and cannot be sent twice by a double click.
  document.addEventListener("submit", function (event) {
    var button = event.target.querySelector("button[type=submit]");
    if (button) {
      window.setTimeout(function () { button.disabled = true; }, 0);
    }
  });
})();
