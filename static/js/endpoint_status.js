// Follows an endpoint's state (starting → ready or failed) until it settles.
(function () {
  "use strict";
  const box = document.getElementById("endpoint-state");
  if (!box) return;
  const LABELS = { starting: "Starting", ready: "Ready", failed: "Failed", stopped: "Stopped" };
  const part = (role) => box.querySelector('[data-role="' + role + '"]');
  async function poll() {
    try {
      const response = await fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const status = await response.json();
        const stateEl = part("endpoint-state");
        stateEl.textContent = LABELS[status.state] || status.state;
        stateEl.className = "state state-" + status.state;
        const note = part("endpoint-note");
        if (note) { note.textContent = status.note || ""; note.hidden = !status.note; }
        if (status.error) part("endpoint-error").textContent = status.error.message + " " + (status.error.hint || "");
        part("playground-link").hidden = status.state !== "ready";
        if (status.state !== box.dataset.state && status.state !== "starting") {
          box.dataset.state = status.state;
          return;
        }
        box.dataset.state = status.state;
      }
    } catch (err) { /* the next poll tries again */ }
    setTimeout(poll, 1500);
  }
  if (box.dataset.state === "starting") poll();
})();
