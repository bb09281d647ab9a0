// console.js: what the pages need beyond htmx. No token is ever read or
// kept here: the session is an HttpOnly cookie; the CSRF token is in the
// page (meta csrf-token) and goes along as X-CSRF-Token.
(function () {
  "use strict";

  var csrf = function () {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  };

  var netError = function (show) {
    var box = document.getElementById("net-error");
    if (box) { box.hidden = !show; }
  };

  document.addEventListener("click", function (e) {
    if (e.target && e.target.id === "net-retry") { window.location.reload(); }
  });

  // Forms: a confirmation where asked, and a loading state on submit.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { e.preventDefault(); return; }
    if (form.id === "upload-form") { return; }
    var btn = form.querySelector("button[data-loading]");
    if (btn && !form.hasAttribute("hx-get")) {
      form.setAttribute("aria-busy", "true");
      btn.textContent = btn.getAttribute("data-loading");
      window.setTimeout(function () { btn.disabled = true; }, 0);
    }
  });

  // htmx: busy markers, and the retry banner when the server cannot be
  // reached or answers an error htmx does not swap.
  document.addEventListener("htmx:beforeRequest", function (e) {
    if (e.target) { e.target.setAttribute("aria-busy", "true"); }
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    if (e.target) { e.target.removeAttribute("aria-busy"); }
    if (e.detail && e.detail.successful) { netError(false); }
  });
  document.addEventListener("htmx:sendError", function () { netError(true); });
  document.addEventListener("htmx:responseError", function () { netError(true); });

  // ---- upload ----
  var setup = function () {
    var form = document.getElementById("upload-form");
    if (!form) { return; }
    var input = document.getElementById("files");
    var zone = document.getElementById("dropzone");
    var list = document.getElementById("selected");
    var errors = document.getElementById("upload-errors");
    var submit = document.getElementById("upload-submit");
    var row = document.getElementById("upload-progress-row");
    var bar = document.getElementById("upload-progress");
    var pct = document.getElementById("upload-percent");
    var maxFile = Number(form.getAttribute("data-max-file"));
    var maxRequest = Number(form.getAttribute("data-max-request"));
    var maxFiles = Number(form.getAttribute("data-max-files"));
    var types = (form.getAttribute("data-types") || "").split(",");
    var files = [];

    var human = function (n) {
      if (n >= 1048576) { return (n / 1048576).toFixed(1) + " MiB"; }
      if (n >= 1024) { return (n / 1024).toFixed(1) + " KiB"; }
      return n + " B";
    };

    var showErrors = function (msgs, retry) {
      errors.textContent = "";
      msgs.forEach(function (m) {
        var p = document.createElement("p");
        p.textContent = m;
        errors.appendChild(p);
      });
      if (retry) {
        var b = document.createElement("button");
        b.type = "button";
        b.id = "upload-retry";
        b.textContent = "Try again";
        b.addEventListener("click", send);
        errors.appendChild(b);
      }
      errors.hidden = msgs.length === 0;
    };

    // The limits the API applies, checked before sending; the API checks
    // again, by content rather than by the browser's guess of the type.
    var check = function () {
      var msgs = [];
      var total = 0;
      if (files.length > maxFiles) { msgs.push("At most " + maxFiles + " files at once (" + files.length + " chosen)."); }
      files.forEach(function (f) {
        total += f.size;
        if (f.size > maxFile) { msgs.push(f.name + " is " + human(f.size) + ": the limit is " + human(maxFile) + " a file."); }
        if (f.size === 0) { msgs.push(f.name + " is empty."); }
        if (f.type && types.indexOf(f.type) < 0) { msgs.push(f.name + " is " + f.type + ", which is not accepted (" + types.join(", ") + ")."); }
      });
      if (total > maxRequest) { msgs.push("The files add up to " + human(total) + ": the limit is " + human(maxRequest) + " an upload."); }
      showErrors(msgs, false);
      submit.disabled = msgs.length > 0 || files.length === 0;
      return msgs.length === 0;
    };

    var choose = function (chosen) {
      files = Array.prototype.slice.call(chosen);
      list.textContent = "";
      files.forEach(function (f) {
        var li = document.createElement("li");
        li.textContent = f.name + " — " + human(f.size);
        list.appendChild(li);
      });
      check();
    };

    input.addEventListener("change", function () { choose(input.files); });
    ["dragenter", "dragover"].forEach(function (t) {
      zone.addEventListener(t, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      zone.addEventListener(t, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files) {
        try { input.files = e.dataTransfer.files; } catch (ignore) { /* older browsers */ }
        choose(e.dataTransfer.files);
      }
    });

    var send = function () {
      if (!check()) { return; }
      var data = new FormData();
      files.forEach(function (f) { data.append("files", f, f.name); });
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/upload");
      xhr.setRequestHeader("X-CSRF-Token", csrf());
      xhr.setRequestHeader("Accept", "application/json");
      row.hidden = false;
      bar.value = 0;
      pct.textContent = "0 %";
      submit.disabled = true;
      form.setAttribute("aria-busy", "true");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          var v = Math.round(100 * e.loaded / e.total);
          bar.value = v;
          bar.textContent = v + " %";
          pct.textContent = v + " %";
        }
      });
      xhr.addEventListener("load", function () {
        form.removeAttribute("aria-busy");
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (ignore) { body = {}; }
        if (xhr.status === 202 && body.location) { window.location.assign(body.location); return; }
        if (xhr.status === 401 || xhr.status === 303) { window.location.assign("/signin"); return; }
        submit.disabled = false;
        row.hidden = true;
        var retry = xhr.status >= 500 || xhr.status === 429;
        var msg = xhr.status >= 500 ? "The server could not take the upload just now; nothing was stored." : (body.detail || body.title || "The upload was refused.");
        if (retry && xhr.getResponseHeader("Retry-After")) { msg += " Try again in " + xhr.getResponseHeader("Retry-After") + " s."; }
        showErrors([msg], retry);
      });
      xhr.addEventListener("error", function () {
        form.removeAttribute("aria-busy");
        submit.disabled = false;
        row.hidden = true;
        showErrors(["The server could not be reached; nothing was stored."], true);
      });
      xhr.send(data);
    };

    form.addEventListener("submit", function (e) { e.preventDefault(); send(); });
    submit.disabled = true;
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
}());
