// A sweep's trials: a table that fills in as trials start and end, and the validation loss of
// every trial on one chart (one line per trial), from the job's stored and live events.
(function () {
  "use strict";
  const COLORS = ["#2f6feb", "#e8590c", "#0ca678", "#7048e8", "#c2255c", "#f08c00", "#1098ad", "#5c940d"];
  const trials = new Map();  // number -> latest trial event
  const curves = new Map();  // number -> Map(step -> validation loss)
  let plot = null;

  function text(value) { return value == null ? "" : String(value); }

  function renderTable() {
    const body = document.querySelector("#trials-table [data-role=trials]");
    if (!body || !trials.size) return;
    body.replaceChildren(...[...trials.values()].sort((a, b) => a.number - b.number).map((trial) => {
      const row = document.createElement("tr");
      row.dataset.trial = String(trial.number);
      row.dataset.state = trial.state;
      const params = trial.params || {};
      const right = trial.total ? trial.right + " of " + trial.total : "";
      const loss = trial.eval_loss == null ? "" : Number(trial.eval_loss).toFixed(4);
      [trial.number + 1, params.learning_rate, params.num_epochs, params.lora_r, trial.state, loss, right]
        .forEach((value) => { const td = document.createElement("td"); td.textContent = text(value); row.appendChild(td); });
      return row;
    }));
  }

  function renderChart() {
    const el = document.getElementById("chart-trials");
    if (!el || !window.uPlot || !curves.size) return;
    const numbers = [...curves.keys()].sort((a, b) => a - b);
    const steps = [...new Set(numbers.flatMap((n) => [...curves.get(n).keys()]))].sort((a, b) => a - b);
    const data = [steps, ...numbers.map((n) => steps.map((s) => curves.get(n).get(s) ?? null))];
    if (plot && plot.series.length !== numbers.length + 1) { plot.destroy(); plot = null; }
    if (!plot) {
      plot = new uPlot({
        title: "Validation loss by trial", width: Math.max(320, el.clientWidth || 640), height: 260,
        scales: { x: { time: false } },
        series: [{ label: "step" }, ...numbers.map((n, i) => ({ label: "trial " + (n + 1), stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true }))],
      }, data, el);
    } else {
      plot.setData(data);
    }
    el.dataset.trials = String(numbers.length);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const watch = document.querySelector(".job-watch");
    if (!watch || !document.getElementById("sweep")) return;
    const KIND = window.LatheJobWire.event_kinds;
    watch.addEventListener("lathe:event", (e) => {
      const { kind, payload } = e.detail;
      if (kind === KIND.TRIAL) { trials.set(payload.number, { ...(trials.get(payload.number) || {}), ...payload }); renderTable(); }
      if (kind === KIND.METRIC && payload.trial != null && payload.eval_loss != null) {
        if (!curves.has(payload.trial)) curves.set(payload.trial, new Map());
        curves.get(payload.trial).set(payload.step, payload.eval_loss);
        renderChart();
      }
    });
  });
})();
