// Live training charts. Metric events arrive from job_watch.js (history first, then
// live); points are keyed by step, so a run resumed from a checkpoint continues the
// same curve: a step at or before the last one replaces the tail from there on.
(function () {
  "use strict";
  const CHARTS = [
    { id: "chart-loss", title: "Loss", series: [["loss", "training", "#2f6feb"], ["eval_loss", "validation", "#e8590c"]] },
    { id: "chart-lr", title: "Learning rate", series: [["learning_rate", "learning rate", "#7048e8"]] },
    { id: "chart-grad", title: "Gradient norm", series: [["grad_norm", "grad norm", "#0ca678"]] },
    { id: "chart-tps", title: "Tokens per second", series: [["tokens_per_second", "tokens/s", "#f08c00"]] },
    { id: "chart-acc", title: "Token accuracy", series: [["token_accuracy", "accuracy", "#1098ad"]] },
    { id: "chart-mem", title: "GPU memory (MB)", series: [["gpu_memory_mb", "MB", "#c2255c"]] },
  ];
  const steps = [];
  const values = {};  // key -> array aligned with steps
  const plots = [];

  function keys() { return CHARTS.flatMap((c) => c.series.map((s) => s[0])); }
  keys().forEach((k) => { values[k] = []; });

  function addPoint(p) {
    const step = p.step;
    if (step == null) return;
    // Resumed runs re-log steps after their checkpoint: cut the tail and continue.
    let cut = steps.length;
    while (cut > 0 && steps[cut - 1] >= step) cut--;
    if (cut < steps.length) { steps.length = cut; keys().forEach((k) => { values[k].length = cut; }); }
    steps.push(step);
    keys().forEach((k) => values[k].push(p[k] == null ? null : p[k]));
  }

  function redraw() {
    plots.forEach(({ plot, chart, el }) => {
      plot.setData([steps.slice(), ...chart.series.map((s) => values[s[0]].slice())]);
      el.dataset.points = String(steps.length);
    });
    const last = document.getElementById("last-loss");
    if (last && values.loss.length) {
      const loss = values.loss.filter((v) => v != null).slice(-1)[0];
      if (loss != null) last.textContent = loss.toFixed(4) + " at step " + steps[steps.length - 1];
    }
  }

  function build() {
    CHARTS.forEach((chart) => {
      const el = document.getElementById(chart.id);
      if (!el || !window.uPlot) return;
      const opts = {
        title: chart.title, width: Math.max(300, el.clientWidth || 420), height: 200,
        scales: { x: { time: false } },
        series: [{ label: "step" }, ...chart.series.map((s) => ({ label: s[1], stroke: s[2], width: 2, spanGaps: true }))],
      };
      plots.push({ plot: new uPlot(opts, [[], ...chart.series.map(() => [])], el), chart, el });
    });
  }

  function showSamples(payload) {
    const body = document.getElementById("samples-body");
    if (!body) return;
    body.replaceChildren(...payload.samples.map((sample) => {
      const row = document.createElement("tr");
      [sample.prompt, sample.reference, sample.answer].forEach((text) => {
        const cell = document.createElement("td");
        cell.textContent = text;  // model output is text, never HTML
        row.appendChild(cell);
      });
      return row;
    }));
    document.getElementById("samples-step").textContent = "at step " + payload.step;
  }

  let pending = false;
  function schedule() { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; redraw(); }); } }

  document.addEventListener("DOMContentLoaded", () => {
    const watch = document.querySelector(".job-watch");
    if (!watch || !document.getElementById("chart-loss")) return;
    build();
    watch.addEventListener("lathe:event", (e) => {
      if (e.detail.kind === "metric") { addPoint(e.detail.payload); schedule(); }
      if (e.detail.kind === "samples") showSamples(e.detail.payload);
    });
  });
})();
