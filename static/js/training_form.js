// Recompute the memory and time estimate as the recipe changes.
(function () {
  "use strict";
  const form = document.getElementById("training-form");
  if (!form) return;
  const out = document.getElementById("estimate-text");
  let timer = null;
  function fmtTime(s) {
    if (s == null) return "unknown";
    if (s < 120) return Math.round(s) + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  function update() {
    const params = new URLSearchParams(new FormData(form));
    params.delete("csrfmiddlewaretoken");
    params.set("tokens", form.dataset.tokens || "0");
    params.set("rows", form.dataset.rows || "0");  // rehearsal adds conversations in proportion
    fetch(form.dataset.estimateUrl + "?" + params.toString(), { credentials: "same-origin" })
      .then((r) => r.json())
      .then((e) => {
        if (e.error) { out.textContent = "Check the settings: " + Object.entries(e.error).map(([k, v]) => k + " " + v).join("; "); return; }
        out.className = e.fits ? "" : "error";
        out.textContent = e.verdict + (e.time_seconds != null ? " Estimated time: " + fmtTime(e.time_seconds) + "." : "");
      })
      .catch(() => { out.textContent = "The estimate is not available right now."; });
  }
  form.addEventListener("change", () => { clearTimeout(timer); timer = setTimeout(update, 250); });
  // GRPO's Start from: what the chosen adapter's held-out verdict says about reinforcing it.
  const notes = document.getElementById("grpo-start-notes");
  const start = document.querySelector("#reinforcement-start select");
  if (notes && start) {
    const byAdapter = JSON.parse(notes.textContent);
    start.addEventListener("change", () => {
      document.getElementById("grpo-start-note").textContent = byAdapter[start.value] || "";
    });
  }
  update();
})();
