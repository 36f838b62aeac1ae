/* Helpdesk support widget: one <script src=".../widget.js" data-…> tag on a course page.
 *
 * data-locale="nb|en", data-title="…", data-identity-token="…" (signed by the course
 * platform for a signed-in learner), data-privacy-url="…" (defaults to the helpdesk's
 * privacy notice). Hand-written, no dependencies. Everything lives in a shadow root so the
 * host page's styles cannot reach in and ours cannot leak out. The conversation token is
 * kept in localStorage, so a reload or another page of the site continues the chat.
 * Replies arrive by Server-Sent Events read through fetch() (EventSource cannot send the
 * Authorization header), resumed with Last-Event-ID; after repeated failures the widget
 * polls instead.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__helpdeskWidget) return;
  window.__helpdeskWidget = true;

  var API = new URL(script.src).origin;
  var data = script.dataset;
  var LOCALE = (data.locale || document.documentElement.lang || "nb").slice(0, 2) === "en" ? "en" : "nb";
  var STORE_KEY = "helpdesk-widget:" + API;
  var TEXT = {
    nb: {
      open: "Kontakt kundeservice", close: "Lukk chatten", title: data.title || "Kundeservice",
      intro: "Skriv til oss, så svarer vi her. Du kan også lukke siden; svaret venter på deg.",
      name: "Navn", email: "E-post", message: "Melding", start: "Send", send: "Send",
      yourMessage: "Skriv en melding", you: "Deg", support: "Kundeservice",
      privacy: "Personvern", unverified: "Bekreft e-postadressen din, så får du også svar på e-post.",
      sendCode: "Send kode", code: "Kode fra e-posten", confirm: "Bekreft",
      codeSent: "Vi har sendt deg en kode på e-post.", verified: "E-postadressen din er bekreftet.",
      offline: "Mistet forbindelsen. Vi prøver igjen …", failed: "Det gikk ikke. Prøv igjen.",
      newChat: "Ny samtale", unread: "nye svar", leaveEmpty: "La dette feltet stå tomt",
      attach: "Legg ved bilde eller PDF (maks 10 MB)"
    },
    en: {
      open: "Contact support", close: "Close the chat", title: data.title || "Support",
      intro: "Write to us and we answer here. You can close the page; the answer waits for you.",
      name: "Name", email: "Email", message: "Message", start: "Send", send: "Send",
      yourMessage: "Write a message", you: "You", support: "Support",
      privacy: "Privacy", unverified: "Confirm your email address to get answers by email too.",
      sendCode: "Send code", code: "Code from the email", confirm: "Confirm",
      codeSent: "We have sent you a code by email.", verified: "Your email address is confirmed.",
      offline: "Connection lost. Trying again …", failed: "That did not work. Please try again.",
      newChat: "New conversation", unread: "new replies", leaveEmpty: "Leave this field empty",
      attach: "Attach an image or PDF (max 10 MB)"
    }
  }[LOCALE];

  var CSS = [
    ":host{all:initial}",
    "[hidden]{display:none !important}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif}",
    ".launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:60px;height:60px;border-radius:50%;border:0;background:#0b6e4f;color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);display:grid;place-items:center}",
    ".launcher:focus-visible,button:focus-visible,textarea:focus-visible,input:focus-visible,a:focus-visible{outline:3px solid #f5b700;outline-offset:2px}",
    ".badge{position:absolute;top:-2px;right:-2px;min-width:22px;height:22px;border-radius:11px;background:#c62828;color:#fff;font-size:13px;line-height:22px;text-align:center;padding:0 6px}",
    ".panel{position:fixed;right:20px;bottom:92px;z-index:2147483001;width:370px;max-width:calc(100vw - 24px);height:560px;max-height:calc(100vh - 112px);background:#fff;color:#1d2733;border-radius:14px;box-shadow:0 10px 40px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden;font-size:15px;line-height:1.45}",
    ".panel[hidden]{display:none}",
    "@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;max-width:100vw;height:100%;max-height:100%;border-radius:0}.launcher{right:14px;bottom:14px}}",
    "header{display:flex;align-items:center;justify-content:space-between;padding:12px 14px;background:#0b6e4f;color:#fff}",
    "header h2{margin:0;font-size:16px}",
    ".x{background:transparent;border:0;color:#fff;font-size:22px;cursor:pointer;width:36px;height:36px;border-radius:8px}",
    ".body{flex:1;overflow-y:auto;padding:12px 14px;display:flex;flex-direction:column;gap:8px;background:#f5f7f9}",
    ".bubble{max-width:85%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word;background:#fff;border:1px solid #dde3ea}",
    ".bubble.mine{align-self:flex-end;background:#e3f2ec;border-color:#bfe0d2}",
    ".who{display:block;font-size:12px;color:#5b6b7c}",
    "form{display:flex;flex-direction:column;gap:8px}",
    "label{font-weight:600;font-size:14px}",
    "input,textarea{font:inherit;width:100%;padding:8px 10px;border:1px solid #c9d2dc;border-radius:8px;background:#fff;color:#1d2733}",
    "textarea{resize:vertical;min-height:44px}",
    ".primary{font:inherit;font-weight:600;padding:9px 16px;border:0;border-radius:8px;background:#0b6e4f;color:#fff;cursor:pointer}",
    ".primary[disabled]{opacity:.6;cursor:default}",
    ".link{background:none;border:0;padding:0;color:#0b6e4f;text-decoration:underline;cursor:pointer;font:inherit}",
    ".composer{display:flex;flex-direction:row;align-items:flex-end;gap:8px;padding:10px 12px;border-top:1px solid #dde3ea;background:#fff}",
    ".composer textarea{flex:1;height:44px}",
    ".notice{margin:0;padding:8px 12px;font-size:14px;background:#fff1d6;color:#6b4600}",
    ".notice:empty{display:none}",
    ".verify{padding:8px 12px;font-size:13px;background:#eef4fb;border-top:1px solid #dde3ea}",
    ".verify form{flex-direction:row;align-items:center;margin-top:6px}",
    ".verify input{width:9em}",
    "footer{padding:6px 12px;font-size:12px;color:#5b6b7c;background:#fff;border-top:1px solid #eef1f4;display:flex;justify-content:space-between}",
    "footer a{color:#5b6b7c}",
    ".clip{display:grid;place-items:center;width:40px;height:40px;border:1px solid #c9d2dc;border-radius:8px;cursor:pointer;color:#5b6b7c;flex:none}",
    ".clip:hover{border-color:#0b6e4f;color:#0b6e4f}",
    ".clip:focus-within{outline:3px solid #f5b700}",
    ".file{display:flex;align-items:center;gap:4px;margin-top:4px;font-size:13px;text-align:left}",
    ".file svg{flex:none}",
    ".file span{overflow-wrap:anywhere}",
    ".trap{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}",
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}"
  ].join("\n");

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), attrs[key]);
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  // --- storage ------------------------------------------------------------------------
  function loadSaved() {
    try { return JSON.parse(localStorage.getItem(STORE_KEY) || "null"); } catch (e) { return null; }
  }
  function save(value) {
    try {
      if (value) localStorage.setItem(STORE_KEY, JSON.stringify(value));
      else localStorage.removeItem(STORE_KEY);
    } catch (e) { /* private mode: the chat lasts as long as the page */ }
  }

  // --- the DOM --------------------------------------------------------------------------
  var host = el("div", { id: "helpdesk-widget" });
  var root = host.attachShadow({ mode: "open" });
  if (root.adoptedStyleSheets !== undefined && window.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    root.appendChild(el("style", { text: CSS }));
  }
  var badge = el("span", { class: "badge", hidden: "" });
  var launcher = el("button", {
    class: "launcher", type: "button", "aria-label": TEXT.open, "aria-expanded": "false",
    "aria-controls": "hd-panel", onclick: function () { toggle(); }
  }, [iconChat(), badge]);
  var notice = el("p", { class: "notice", role: "alert" });
  var body = el("div", { class: "body", role: "log", "aria-live": "polite", "aria-label": TEXT.title, tabindex: "0" });
  var verifyBox = el("div", { class: "verify", hidden: "" });
  var fileInput = el("input", {
    id: "hd-file", type: "file", class: "sr", accept: "image/png,image/jpeg,image/gif,image/webp,application/pdf",
    onchange: onFile
  });
  var composer = el("form", { class: "composer", hidden: "", onsubmit: onSend }, [
    el("label", { class: "clip", title: TEXT.attach }, [
      iconClip(20),
      el("span", { class: "sr", text: TEXT.attach }),
      fileInput
    ]),
    el("label", { for: "hd-composer", class: "sr", text: TEXT.yourMessage }),
    el("textarea", { id: "hd-composer", name: "body", rows: "1", placeholder: TEXT.yourMessage, maxlength: "5000", required: "" }),
    el("button", { class: "primary", type: "submit", text: TEXT.send })
  ]);
  composer.querySelector("textarea").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); composer.requestSubmit(); }
  });
  var privacyUrl = data.privacyUrl || API + "/support/privacy";
  var panel = el("section", { class: "panel", id: "hd-panel", role: "dialog", "aria-label": TEXT.title, hidden: "" }, [
    el("header", {}, [
      el("h2", { text: TEXT.title }),
      el("button", { class: "x", type: "button", "aria-label": TEXT.close, text: "\u00d7", onclick: function () { toggle(false); } })
    ]),
    notice, body, verifyBox, composer,
    el("footer", {}, [
      el("a", { href: privacyUrl, target: "_blank", rel: "noopener", text: TEXT.privacy }),
      el("button", { class: "link", type: "button", text: TEXT.newChat, onclick: forget })
    ])
  ]);
  root.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !panel.hidden) toggle(false);
  });
  root.appendChild(launcher);
  root.appendChild(panel);

  function iconChat() {
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24"); svg.setAttribute("width", "28"); svg.setAttribute("height", "28");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z");
    svg.appendChild(path);
    return svg;
  }

  // A paper clip drawn here (no icon font: a missing glyph would show as an empty box).
  function iconClip(size) {
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", String(size)); svg.setAttribute("height", String(size));
    svg.setAttribute("aria-hidden", "true"); svg.setAttribute("focusable", "false");
    var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("fill", "none"); path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "2"); path.setAttribute("stroke-linecap", "round");
    path.setAttribute("stroke-linejoin", "round");
    path.setAttribute("transform", "rotate(40 12 12)");
    path.setAttribute("d", "M8 7v9a4 4 0 0 0 8 0V6a2.5 2.5 0 0 0-5 0v9.5a1 1 0 0 0 2 0V8");
    svg.appendChild(path);
    return svg;
  }

  // --- state ----------------------------------------------------------------------------
  var saved = loadSaved();
  var shown = {};           // message id -> true
  var lastId = 0;           // newest message id received
  var lastAcked = 0;        // newest id reported as displayed
  var unread = 0;
  var stream = null;        // AbortController of the event stream
  var pollTimer = null;

  function toggle(open) {
    var willOpen = open === undefined ? panel.hidden : open;
    panel.hidden = !willOpen;
    launcher.setAttribute("aria-expanded", String(willOpen));
    if (willOpen) {
      unread = 0; renderBadge();
      var first = composer.hidden ? body.querySelector("input,textarea") : composer.querySelector("textarea");
      if (first) first.focus();
      scrollDown(); acknowledge();
    } else {
      launcher.focus();
    }
  }
  function renderBadge() {
    badge.hidden = unread === 0;
    badge.textContent = unread ? String(unread) : "";
    launcher.setAttribute("aria-label", unread ? TEXT.open + " (" + unread + " " + TEXT.unread + ")" : TEXT.open);
  }
  function say(text) { notice.textContent = text || ""; }
  function scrollDown() { body.scrollTop = body.scrollHeight; }

  // --- HTTP -----------------------------------------------------------------------------
  function api(path, options) {
    options = options || {};
    var headers = { "Content-Type": "application/json" };
    if (saved && saved.token) headers.Authorization = "Bearer " + saved.token;
    return fetch(API + "/api/v1/widget/conversations" + path, {
      method: options.method || "GET", headers: headers, mode: "cors", credentials: "omit",
      body: options.body ? JSON.stringify(options.body) : undefined
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        if (response.ok) return json;
        var error = new Error(json.detail || TEXT.failed);
        error.status = response.status; error.json = json;
        var wait = response.headers.get("Retry-After");
        if (response.status === 429 && wait) error.message = json.detail + " (" + wait + " s)";
        throw error;
      });
    });
  }

  // --- views ----------------------------------------------------------------------------
  function showIntake() {
    body.textContent = "";
    composer.hidden = true; verifyBox.hidden = true;
    var form = el("form", { onsubmit: onStart, novalidate: "" }, [
      el("p", { text: TEXT.intro }),
      el("label", { for: "hd-name", text: TEXT.name }),
      el("input", { id: "hd-name", name: "name", autocomplete: "name", required: "", maxlength: "200" }),
      el("label", { for: "hd-email", text: TEXT.email }),
      el("input", { id: "hd-email", name: "email", type: "email", autocomplete: "email", required: "", maxlength: "254" }),
      el("label", { for: "hd-message", text: TEXT.message }),
      el("textarea", { id: "hd-message", name: "message", rows: "4", required: "", maxlength: "5000" }),
      el("div", { class: "trap", "aria-hidden": "true" }, [
        el("label", { for: "hd-website", text: TEXT.leaveEmpty }),
        el("input", { id: "hd-website", name: "website", tabindex: "-1", autocomplete: "off" })
      ]),
      el("button", { class: "primary", type: "submit", text: TEXT.start })
    ]);
    body.appendChild(form);
  }

  function onStart(event) {
    event.preventDefault();
    var form = event.target, button = form.querySelector("button");
    var fields = form.elements;
    var payload = {
      name: fields.namedItem("name").value, email: fields.namedItem("email").value,
      message: fields.namedItem("message").value, website: fields.namedItem("website").value
    };
    if (data.identityToken) payload.identity_token = data.identityToken;
    button.disabled = true; say("");
    api("", { method: "POST", body: payload }).then(function (result) {
      saved = { id: result.conversation.id, token: result.token };
      save(saved);
      openConversation(result.conversation);
    }).catch(function (error) {
      button.disabled = false;
      var fields = error.json && error.json.fields;
      say(fields ? Object.keys(fields).map(function (k) { return fields[k]; }).join(" ") : error.message);
    });
  }

  function openConversation(conversation) {
    body.textContent = ""; shown = {}; lastId = 0;
    composer.hidden = false;
    renderVerification(conversation);
    loadMessages().then(connect);
    if (!panel.hidden) composer.querySelector("textarea").focus();
  }

  function renderVerification(conversation) {
    verifyBox.textContent = "";
    if (conversation.verified) { verifyBox.hidden = true; return; }
    if (data.identityToken) {
      api("/" + saved.id + "/identity", { method: "POST", body: { identity_token: data.identityToken } })
        .then(function () { verifyBox.hidden = true; }).catch(function () { /* stays unverified */ });
    }
    verifyBox.hidden = false;
    var codeForm = el("form", { hidden: "", onsubmit: onConfirm }, [
      el("label", { for: "hd-code", class: "sr", text: TEXT.code }),
      el("input", { id: "hd-code", name: "code", inputmode: "numeric", autocomplete: "one-time-code", placeholder: TEXT.code, maxlength: "6" }),
      el("button", { class: "primary", type: "submit", text: TEXT.confirm })
    ]);
    verifyBox.appendChild(el("span", { text: TEXT.unverified + " " }));
    verifyBox.appendChild(el("button", { class: "link", type: "button", text: TEXT.sendCode, onclick: function () {
      api("/" + saved.id + "/verification", { method: "POST", body: { locale: LOCALE } }).then(function (r) {
        say(r.detail || TEXT.codeSent); codeForm.hidden = false; codeForm.code.focus();
      }).catch(function (error) { say(error.message); });
    } }));
    verifyBox.appendChild(codeForm);
  }

  function onConfirm(event) {
    event.preventDefault();
    api("/" + saved.id + "/verification/confirm", { method: "POST", body: { code: event.target.code.value } })
      .then(function (r) { say(r.detail || TEXT.verified); verifyBox.hidden = true; })
      .catch(function (error) { say(error.message); });
  }

  function onSend(event) {
    event.preventDefault();
    var field = composer.querySelector("textarea"), text = field.value;
    if (!text.trim()) return;
    var button = composer.querySelector("button");
    button.disabled = true; say("");
    api("/" + saved.id + "/messages", { method: "POST", body: { body: text } }).then(function (message) {
      field.value = ""; addMessage(message);
    }).catch(function (error) {
      say(error.message);
    }).then(function () { button.disabled = false; field.focus(); });
  }

  function onFile() {
    var file = fileInput.files && fileInput.files[0];
    if (!file || !saved) return;
    if (file.size > 10 * 1024 * 1024) { say(TEXT.attach); fileInput.value = ""; return; }
    var form = new FormData(), field = composer.querySelector("textarea");
    form.append("file", file, file.name);
    form.append("body", field.value);
    say("");
    fetch(API + "/api/v1/widget/conversations/" + saved.id + "/attachments", {
      method: "POST", body: form, mode: "cors", credentials: "omit",
      headers: { Authorization: "Bearer " + saved.token }
    }).then(function (response) {
      return response.json().then(function (json) {
        if (!response.ok) throw new Error(fieldText(json) || TEXT.failed);
        field.value = ""; addMessage(json);
      });
    }).catch(function (error) { say(error.message); }).then(function () { fileInput.value = ""; });
  }

  function fieldText(json) {
    var fields = json && json.fields;
    return fields ? Object.keys(fields).map(function (k) { return fields[k]; }).join(" ") : json && json.detail;
  }

  function download(attachment) {
    fetch(API + "/api/v1/widget/conversations/" + saved.id + "/attachments/" + attachment.id, {
      headers: { Authorization: "Bearer " + saved.token }, mode: "cors", credentials: "omit"
    }).then(function (response) {
      if (!response.ok) throw new Error(TEXT.failed);
      return response.blob();
    }).then(function (blob) {
      var url = URL.createObjectURL(blob), link = document.createElement("a");
      link.href = url; link.download = attachment.filename;
      root.appendChild(link); link.click(); link.remove();
      setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
    }).catch(function (error) { say(error.message); });
  }

  function addMessage(message) {
    if (shown[message.id]) return;
    shown[message.id] = true;
    lastId = Math.max(lastId, message.id);
    var mine = message.direction === "inbound";
    var bubble = el("div", { class: "bubble" + (mine ? " mine" : ""), "data-message-id": String(message.id) }, [
      el("span", { class: "who", text: mine ? TEXT.you : (message.author.name || TEXT.support) }),
      el("span", { class: "text", text: message.text })
    ].concat((message.attachments || []).map(function (attachment) {
      return el("button", {
        class: "link file", type: "button", onclick: function () { download(attachment); }
      }, [iconClip(14), el("span", { text: attachment.filename })]);
    })));
    // Keep the order by id even when the stream and a POST answer cross.
    var later = Array.prototype.find.call(body.children, function (node) {
      return Number(node.getAttribute("data-message-id")) > message.id;
    });
    body.insertBefore(bubble, later || null);
    if (!mine && panel.hidden) { unread += 1; renderBadge(); }
    scrollDown();
    acknowledge();
  }

  // Tell the helpdesk what the learner has actually seen, so the reply is not mailed too.
  function acknowledge() {
    if (!saved || panel.hidden || document.visibilityState !== "visible" || lastId <= lastAcked) return;
    var upTo = lastId;
    api("/" + saved.id + "/displayed", { method: "POST", body: { message: upTo } })
      .then(function () { lastAcked = Math.max(lastAcked, upTo); }).catch(function () {});
  }
  document.addEventListener("visibilitychange", acknowledge);

  function loadMessages() {
    return api("/" + saved.id + "/messages" + (lastId ? "?after=" + lastId : "")).then(function (list) {
      list.items.forEach(addMessage);
    });
  }

  // --- live updates ---------------------------------------------------------------------
  function connect(failures) {
    failures = failures || 0;
    if (!saved) return;
    if (failures >= 3 || !window.ReadableStream || !window.TextDecoder) return poll();
    var controller = new AbortController();
    stream = controller;
    var headers = { Authorization: "Bearer " + saved.token, Accept: "text/event-stream" };
    if (lastId) headers["Last-Event-ID"] = String(lastId);
    fetch(API + "/api/v1/widget/conversations/" + saved.id + "/events", {
      headers: headers, mode: "cors", credentials: "omit", cache: "no-store", signal: controller.signal
    }).then(function (response) {
      if (response.status === 404) return forget();
      if (!response.ok || !response.body) throw new Error("stream");
      say(""); failures = 0;
      var reader = response.body.getReader(), decoder = new TextDecoder(), buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) return;
          buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
          var end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            handleEvent(buffer.slice(0, end)); buffer = buffer.slice(end + 2);
          }
          return pump();
        });
      }
      return pump();
    }).then(function () {
      if (stream === controller) setTimeout(function () { connect(0); }, 500);
    }).catch(function () {
      if (stream !== controller || controller.signal.aborted) return;
      say(TEXT.offline);
      setTimeout(function () { connect(failures + 1); }, 1000 * Math.pow(2, failures));
    });
  }

  function handleEvent(block) {
    var event = "message", dataLines = [];
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) event = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) dataLines.push(line.slice(5).replace(/^ /, ""));
    });
    if (event === "message" && dataLines.length) {
      try { addMessage(JSON.parse(dataLines.join("\n"))); } catch (e) { /* ignore a broken event */ }
    }
  }

  function poll() {
    clearTimeout(pollTimer);
    if (!saved) return;
    loadMessages().then(function () { say(""); }).catch(function (error) {
      if (error.status === 404) return forget();
    }).then(function () { pollTimer = setTimeout(poll, 5000); });
  }

  function forget() {
    if (stream) stream.abort();
    stream = null; clearTimeout(pollTimer);
    saved = null; save(null); lastId = 0; lastAcked = 0; say("");
    showIntake();
  }

  // --- start ----------------------------------------------------------------------------
  function start() {
    document.body.appendChild(host);
    if (!saved) return showIntake();
    api("/" + saved.id).then(openConversation).catch(function (error) {
      if (error.status === 404) forget(); else { say(error.message); showIntake(); }
    });
  }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
