// Live training charts. Metric events arrive from job_watch.js (history first, then
// live); points are keyed by step, so a run resumed from a checkpoint continues the
// same curve: a "resumed" event (from_step) drops the points after the checkpoint, as the
// server does for its history, and a step at or before the last one replaces the tail.
(function () {
  "use strict";
  const CHARTS = [
    { id: "chart-loss", title: "Loss", series: [["loss", "training", "#2f6feb"], ["eval_loss", "validation", "#e8590c"]] },
    { id: "chart-lr", title: "Learning rate", series: [["learning_rate", "learning rate", "#7048e8"]] },
    { id: "chart-grad", title: "Gradient norm", series: [["grad_norm", "grad norm", "#0ca678"]] },
    { id: "chart-tps", title: "Tokens per second", series: [["tokens_per_second", "tokens/s", "#f08c00"]] },
    { id: "chart-acc", title: "Token accuracy", series: [["token_accuracy", "accuracy", "#1098ad"]] },
    { id: "chart-mem", title: "Memory (MB)", series: [["gpu_memory_mb", "GPU peak", "#c2255c"], ["process_memory_mb", "worker RAM", "#5f3dc4"]] },
    // Preference runs (DPO and its kin): the page shows these only for them (KTO: no accuracy).
    { id: "chart-rewards", title: "Rewards", series: [["reward_chosen", "chosen", "#2b8a3e"], ["reward_rejected", "rejected", "#c92a2a"], ["reward_margin", "margin", "#495057"], ["eval_reward_margin", "validation margin", "#e8590c"]] },
    { id: "chart-preference", title: "Preference accuracy", series: [["preference_accuracy", "training pairs", "#1864ab"], ["eval_preference_accuracy", "validation pairs", "#e8590c"]] },
    // GRPO runs: the share of right answers and the mean reward, and how long the answers are.
    { id: "chart-right", title: "Right answers", series: [["right_answers", "training questions", "#2b8a3e"], ["eval_right_answers", "validation questions", "#e8590c"], ["reward", "reward", "#495057"], ["nothing_to_learn", "questions with nothing to learn", "#adb5bd"]] },
    { id: "chart-answers", title: "Answer length (tokens)", series: [["answer_tokens", "mean length", "#7048e8"]] },
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

  function cutAfter(step) {
    let cut = steps.length;
    while (cut > 0 && steps[cut - 1] > step) cut--;
    if (cut < steps.length) { steps.length = cut; keys().forEach((k) => { values[k].length = cut; }); }
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

  // Axis labels people can read: 2e-4 rather than "0", 1.5k tokens/s rather than 1500.00.
  function tick(value) {
    if (value == null) return "";
    const size = Math.abs(value);
    if (size === 0) return "0";
    if (size < 1e-2 || size >= 1e5) return value.toExponential(1).replace("e+", "e");
    return String(Number(value.toPrecision(3)));
  }

  function build() {
    CHARTS.forEach((chart) => {
      const el = document.getElementById(chart.id);
      if (!el || !window.uPlot) return;
      const opts = {
        title: chart.title, width: Math.max(300, el.clientWidth || 420), height: 200,
        scales: { x: { time: false } },
        axes: [{}, { size: 60, values: (u, splits) => splits.map(tick) }],
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

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);  // model output is text, never HTML
    if (className) td.className = className;
    return td;
  }

  function showVerdict(payload) {
    const section = document.getElementById("verdict");
    if (!section) return;
    section.hidden = false;
    section.dataset.grade = payload.grade;
    section.querySelector("[data-role=summary]").textContent = payload.summary;
    section.querySelector("[data-role=next-step]").textContent = payload.next_step;
    section.querySelector("[data-role=examples]").replaceChildren(...payload.examples.map((example) => {
      const row = document.createElement("tr");
      row.append(
        cell(example.prompt), cell(example.reference),
        cell(example.answer, example.right ? "right" : "wrong"),
        cell(example.base_answer, example.base_right ? "right" : "wrong"),
      );
      return row;
    }));
  }

  let pending = false;
  function schedule() { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; redraw(); }); } }

  window.LatheCharts = { tick };

  document.addEventListener("DOMContentLoaded", () => {
    const watch = document.querySelector(".job-watch");
    if (!watch || !document.getElementById("chart-loss")) return;
    build();
    const KIND = window.LatheJobWire.event_kinds;
    watch.addEventListener("lathe:event", (e) => {
      if (e.detail.kind === KIND.METRIC) { addPoint(e.detail.payload); schedule(); }
      if (e.detail.kind === KIND.RESUMED) { cutAfter(e.detail.payload.from_step || 0); schedule(); }
      if (e.detail.kind === KIND.SAMPLES) showSamples(e.detail.payload);
      if (e.detail.kind === KIND.VERDICT) showVerdict(e.detail.payload);
    });
  });
})();
