// jghub ops dashboard: refresh live parts, confirm replays. No framework, no network but the hub.
(function () {
  "use strict";
  function refresh() {
    var live = document.querySelector("[data-live]");
    if (!live) { return; }
    fetch(live.getAttribute("data-live"), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { live.innerHTML = html; } })
      .catch(function () { /* the hub may be restarting; try again next tick */ });
  }
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { ev.preventDefault(); return; }
    if (question) { form.querySelector("input[name=confirm]").value = "yes"; }
  });
  var every = Number(document.body.getAttribute("data-refresh") || "0");
  if (every > 0) { setInterval(refresh, every); }
})();
