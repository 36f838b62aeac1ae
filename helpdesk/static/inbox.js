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
})();
