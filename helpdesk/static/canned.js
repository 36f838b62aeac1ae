// Canned replies in the reply form: choosing one inserts its text (variables already
// filled in by the server) at the cursor, so the "Insert" button is only needed without
// JavaScript. The text comes from a data attribute and is set as the textarea's value,
// never as HTML.
(function () {
  "use strict";

  var choice = document.querySelector("select[data-canned-target]");
  if (!choice) return;
  var body = document.getElementById(choice.getAttribute("data-canned-target"));
  var button = document.querySelector("[data-canned-insert]");
  if (!body) return;
  if (button) button.hidden = true;

  // Where the operator's cursor was in the draft; the end of the draft until they click in it.
  var caret = null;
  function remember() { caret = [body.selectionStart, body.selectionEnd]; }
  body.addEventListener("keyup", remember);
  body.addEventListener("click", remember);

  function insert(text) {
    var value = body.value;
    var start = caret ? caret[0] : value.length, end = caret ? caret[1] : value.length;
    var before = value.slice(0, start), after = value.slice(end);
    var gap = before && !/\n\n$/.test(before) ? (/\n$/.test(before) ? "\n" : "\n\n") : "";
    body.value = before + gap + text + after;
    var after_insert = (before + gap + text).length;
    body.focus();
    body.setSelectionRange(after_insert, after_insert);
    caret = [after_insert, after_insert];
    body.dispatchEvent(new Event("input", { bubbles: true }));
  }

  choice.addEventListener("change", function () {
    var option = choice.options[choice.selectedIndex];
    var text = option && option.getAttribute("data-text");
    if (text) insert(text);
    choice.selectedIndex = 0;
  });
})();
