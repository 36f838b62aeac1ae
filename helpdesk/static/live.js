// Live updates of the inbox (progressive enhancement: without JavaScript the pages work,
// they just do not change until reloaded). A ticket page follows its Server-Sent Events
// stream: new messages are inserted as the server rendered them, replies' delivery status
// and the ticket's fields change in place, and the page shows which colleagues have the
// ticket open and who is typing. A queue page follows the counts and its first page.
// Served as a file, so the Content-Security-Policy needs no 'unsafe-inline'.
(function () {
  "use strict";

  var TYPING_REPEAT_MS = 3000; // while typing, tell the others again this often
  var TYPING_IDLE_MS = 5000; // no key for this long: stopped typing

  function randomTab() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function csrfToken() {
    var field = document.querySelector('input[name="_csrf"]');
    return field ? field.value : "";
  }

  function show(element, text) {
    if (!element) return;
    element.textContent = text;
    element.hidden = !text;
  }

  function follow(url, handlers, onStopped) {
    if (!window.EventSource) return null;
    var source = new EventSource(url);
    Object.keys(handlers).forEach(function (name) {
      source.addEventListener(name, function (event) {
        var data = {};
        try { data = JSON.parse(event.data || "{}"); } catch (error) { return; }
        handlers[name](data);
      });
    });
    source.addEventListener("signed-out", function () {
      source.close();
      onStopped("You were signed out. Reload the page to sign in again.");
    });
    source.onerror = function () {
      // The browser reconnects by itself (with Last-Event-ID) unless the server refused.
      if (source.readyState === EventSource.CLOSED) onStopped("Live updates stopped. Reload the page to see changes.");
    };
    window.addEventListener("pagehide", function () { source.close(); });
    return source;
  }

  // --- the ticket page -------------------------------------------------------------

  function followTicket(bar) {
    var tab = randomTab();
    var conversation = document.querySelector("ol.conversation");
    var notice = bar.querySelector("[data-live-notice]");
    var presenceList = bar.querySelector("[data-presence-list]");
    var seenField = document.querySelector('#reply input[name="seen_message"]');
    var url = bar.getAttribute("data-events") + "?tab=" + tab + "&after=" + encodeURIComponent(bar.getAttribute("data-after") || "0");
    var source;

    function stopped(text) { show(notice, text); }

    function insertMessage(data) {
      if (!conversation || document.getElementById("message-" + data.id)) return;
      // In conversation order: after the message it follows (one moved in may be older).
      var previous = data.after === null ? null : document.getElementById("message-" + data.after);
      if (previous && previous.parentNode === conversation) previous.insertAdjacentHTML("afterend", data.html);
      else if (data.after === null) conversation.insertAdjacentHTML("afterbegin", data.html);
      else conversation.insertAdjacentHTML("beforeend", data.html);
      var item = document.getElementById("message-" + data.id);
      if (item) item.classList.add("is-new");
      if (seenField && Number(data.id) > Number(seenField.value || 0)) seenField.value = String(data.id);
      if (data.side === "learner") warnComposer();
    }

    function warnComposer() {
      var form = document.getElementById("reply");
      if (!form || form.querySelector(".live-composer-notice")) return;
      var warning = document.createElement("p");
      warning.className = "live-composer-notice";
      warning.textContent = "A new message from the learner just arrived — it is shown above.";
      form.insertBefore(warning, form.querySelector("label"));
    }

    function removeMessages(data) {
      (data.ids || []).forEach(function (id) {
        var item = document.getElementById("message-" + id);
        if (item) item.remove();
      });
      show(notice, "Messages were moved to another ticket by a colleague.");
    }

    function updateDelivery(data) {
      var item = document.getElementById("message-" + data.message);
      if (!item) return;
      var badge = item.querySelector(".delivery");
      if (!badge) {
        var foot = item.querySelector(".msg-foot");
        if (!foot) return;
        badge = document.createElement("span");
        foot.insertBefore(badge, foot.firstChild);
      }
      badge.className = "delivery delivery-" + data.status;
      badge.textContent = data.label;
    }

    function assigneeShown() {
      var select = document.querySelector('select[name="assignee"]');
      if (!select || select.selectedIndex < 0) return undefined;
      var option = select.options[select.selectedIndex];
      return option.value ? option.textContent.replace(/ \(me\)$/, "") : null;
    }

    function updateTicket(data) {
      var status = document.querySelector(".ticket-facts .status");
      var priority = document.querySelector('.ticket-facts [class*="prio-"]');
      var changes = [];
      if (status && status.textContent.trim() !== data.status_label) {
        changes.push("status " + data.status_label);
        status.className = "badge status status-" + data.status;
        status.textContent = data.status_label;
      }
      if (priority && priority.textContent.trim() !== data.priority_label) {
        changes.push(data.priority_label.toLowerCase());
        priority.className = "badge prio-" + data.priority;
        priority.textContent = data.priority_label;
      }
      var shown = assigneeShown();
      if (shown !== undefined && shown !== data.assignee) {
        changes.push(data.assignee ? "assigned to " + data.assignee : "unassigned");
      }
      if (changes.length) show(notice, "Changed by a colleague: " + changes.join(", ") + ". Reload to edit the ticket's fields.");
    }

    function showPresence(data) {
      presenceList.textContent = "";
      var people = data.people || [];
      if (!people.length) { presenceList.hidden = true; return; }
      var label = document.createElement("span");
      label.className = "presence-label";
      label.textContent = "Also here:";
      presenceList.appendChild(label);
      people.forEach(function (person) {
        var entry = document.createElement("span");
        entry.className = "presence-person" + (person.typing ? " is-typing" : "");
        var avatar = document.createElement("span");
        avatar.className = "avatar small";
        avatar.setAttribute("aria-hidden", "true");
        avatar.textContent = person.initials;
        entry.appendChild(avatar);
        entry.appendChild(document.createTextNode(
          person.name + (person.typing ? " is typing " + (person.typing === "note" ? "a note…" : "a reply…") : "")
        ));
        presenceList.appendChild(entry);
      });
      presenceList.hidden = false;
    }

    // One at a time, in order: leaving the reply box ("idle") and starting a note
    // ("typing") must reach the others in that order, or the note would look idle.
    var presenceSent = Promise.resolve();
    function sendPresence(state, what) {
      var body = new URLSearchParams({ tab: tab, state: state, what: what || "" });
      presenceSent = presenceSent.then(function () {
        return window.fetch(bar.getAttribute("data-presence"), {
          method: "POST",
          credentials: "same-origin",
          headers: { "x-csrf-token": csrfToken() },
          body: body
        }).catch(function () { /* presence is best effort */ });
      });
    }

    function watchTyping(field, what) {
      if (!field) return;
      var lastSent = 0;
      var idleTimer = null;
      function idle() {
        if (!lastSent) return;
        lastSent = 0;
        window.clearTimeout(idleTimer);
        sendPresence("idle", what);
      }
      field.addEventListener("input", function () {
        var now = Date.now();
        if (now - lastSent > TYPING_REPEAT_MS) {
          lastSent = now;
          sendPresence("typing", what);
        }
        window.clearTimeout(idleTimer);
        idleTimer = window.setTimeout(idle, TYPING_IDLE_MS);
      });
      field.addEventListener("blur", idle);
    }

    source = follow(url, {
      message: insertMessage,
      removed: removeMessages,
      delivery: updateDelivery,
      ticket: updateTicket,
      presence: showPresence,
      gone: function () { source.close(); stopped("This ticket was deleted."); }
    }, stopped);
    if (source) {
      watchTyping(document.getElementById("reply-body"), "reply");
      watchTyping(document.getElementById("note-body"), "note");
    }
  }

  // --- queue pages -----------------------------------------------------------------

  function followQueue(marker) {
    var url = marker.getAttribute("data-events");
    var current = new URLSearchParams(url.split("?")[1] || "").get("queue");

    function updateCounts(counts) {
      Object.keys(counts).forEach(function (key) {
        var count = document.querySelector('.queue-nav a[href="/inbox?queue=' + key + '"] .count');
        if (count) count.textContent = counts[key];
      });
      var title = document.querySelector("#queue-title .muted");
      if (title && current in counts) title.textContent = counts[current];
    }

    function squeeze(text) { return (text || "").replace(/\s+/g, " ").trim(); }

    function updateRows(data) {
      var list = document.querySelector("ol.ticket-list");
      if (!list) {
        if (!data.html) return;
        list = document.createElement("ol");
        list.className = "ticket-list";
        list.setAttribute("data-list", "tickets");
        list.setAttribute("data-live", ""); // its rows are all new
        var empty = document.querySelector(".queue-main .empty");
        if (!empty) return;
        empty.replaceWith(list);
      }
      // The first event after (re)connecting refreshes the list; later ones bring news.
      var first = !list.hasAttribute("data-live");
      list.setAttribute("data-live", "");
      var incoming = document.createElement("template");
      incoming.innerHTML = data.html;
      if (squeeze(incoming.content.textContent) === squeeze(list.textContent)) return; // unchanged
      // Keep the keyboard position (j/k selection and focus) on the same ticket.
      var selected = list.querySelector(".is-selected a");
      var selectedHref = selected ? selected.getAttribute("href") : null;
      var focused = list.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
      var before = {};
      list.querySelectorAll("a.ticket-link").forEach(function (link) { before[link.getAttribute("href")] = true; });
      list.innerHTML = data.html;
      if (!first) {
        list.querySelectorAll("a.ticket-link").forEach(function (link) {
          if (!before[link.getAttribute("href")]) link.closest("[data-item]").classList.add("is-new");
        });
      }
      if (selectedHref) {
        var again = list.querySelector('a[href="' + selectedHref + '"]');
        if (again) again.closest("[data-item]").classList.add("is-selected");
      }
      if (focused) {
        var link = list.querySelector('a[href="' + focused + '"]');
        if (link) link.focus({ preventScroll: true });
      }
    }

    follow(url, { counts: updateCounts, rows: updateRows }, function () {});
  }

  var ticketBar = document.getElementById("live-ticket");
  if (ticketBar) followTicket(ticketBar);
  var queueMarker = document.getElementById("live-queue");
  if (queueMarker) followQueue(queueMarker);
})();
