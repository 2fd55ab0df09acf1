"use strict";
// Progressive enhancement only: every page works without this file. No inline script
// anywhere (the Content-Security-Policy forbids it); this file is served by the UI itself.
(function () {
  // A submitted form shows that it is working, and is not sent twice. Its buttons are not
  // disabled: a disabled button's name and value would not be sent.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-pending")) return;
    if (form.getAttribute("aria-busy") === "true") {
      event.preventDefault();
      return;
    }
    var bad = form.querySelector("[data-client-invalid]");
    if (bad) {
      event.preventDefault();
      bad.focus();
      return;
    }
    form.setAttribute("aria-busy", "true");
    var button = event.submitter;
    if (button) {
      button.classList.add("pending");
      button.setAttribute("aria-disabled", "true");
      button.dataset.label = button.textContent;
      button.textContent = "Working…";
    }
  });

  // Back from the browser's cache: forms are usable again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[aria-busy='true']").forEach(function (form) {
      form.removeAttribute("aria-busy");
      form.querySelectorAll(".pending").forEach(function (b) {
        b.classList.remove("pending");
        b.removeAttribute("aria-disabled");
        if (b.dataset.label) b.textContent = b.dataset.label;
      });
    });
  });

  function showError(input, errorId, message) {
    var error = document.getElementById(errorId);
    if (error) error.textContent = message || "";
    if (message) {
      input.setAttribute("aria-invalid", "true");
      input.dataset.clientInvalid = "true";
    } else {
      input.removeAttribute("aria-invalid");
      delete input.dataset.clientInvalid;
    }
  }

  // The key rule, in the server's words, while typing: asked of this UI (/check/key), which
  // checks with the same rule as the CLI and the webhook; nothing is sent to the cluster.
  document.querySelectorAll("input[data-check-key]").forEach(function (input) {
    var timer = null;
    var check = function () {
      var key = input.value;
      if (!key) {
        showError(input, "key-error", "");
        return;
      }
      fetch("/check/key?key=" + encodeURIComponent(key), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (answer) {
          if (answer && input.value === key) showError(input, "key-error", answer.error);
        })
        .catch(function () {});
    };
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(check, 200);
    });
    input.addEventListener("blur", check);
  });

  // A file over the limit is refused before it is sent, in the server's words (/check/value).
  document.querySelectorAll("input[type=file][data-max-bytes]").forEach(function (input) {
    input.addEventListener("change", function () {
      var file = input.files && input.files[0];
      if (!file) {
        showError(input, "value-error", "");
        return;
      }
      fetch("/check/value?size=" + file.size, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (answer) { if (answer) showError(input, "value-error", answer.error); })
        .catch(function () {});
    });
  });

  // A job's state follows the cluster until the job is over.
  var box = document.getElementById("job-state");
  if (box && box.dataset.poll) {
    var poll = function () {
      var inner = box.querySelector("[data-finished]");
      if (inner && inner.getAttribute("data-finished") === "true") return;
      fetch(box.dataset.poll, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html !== null) box.innerHTML = html;
          setTimeout(poll, 2000);
        })
        .catch(function () { setTimeout(poll, 5000); });
    };
    setTimeout(poll, 1000);
  }

  // After a refused form, the first field to fix has the focus.
  var invalid = document.querySelector("main [aria-invalid='true']");
  if (invalid) invalid.focus();
})();
