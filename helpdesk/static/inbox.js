// Small progressive enhancements of the inbox pages (keyboard shortcuts are in
// keyboard.js, canned replies in canned.js). Served as a file so the
// Content-Security-Policy needs no 'unsafe-inline'.
(function () {
  "use strict";

  // A submitted form shows it is working and cannot be sent twice by a double click.
  document.addEventListener("submit", function (event) {
    var button = event.target.querySelector("button[type=submit]");
    if (button) {
      window.setTimeout(function () { button.disabled = true; }, 0);
    }
  });

  // On a phone the queue list is a strip that scrolls sideways: keep the current queue in sight.
  var current = document.querySelector(".queue-nav ul [aria-current=page]");
  var strip = current && current.closest("ul");
  if (strip && strip.scrollWidth > strip.clientWidth) {
    strip.scrollLeft += current.getBoundingClientRect().left - strip.getBoundingClientRect().left - 8;
  }
})();
