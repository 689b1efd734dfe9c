// Several runs' loss curves overlaid on one chart: steps of every run on one axis, gaps where a run
// logged nothing at that step.
(function () {
  "use strict";
  const COLOURS = ["#2f6feb", "#e8590c", "#0ca678", "#7048e8", "#c2255c", "#f08c00", "#1098ad", "#495057"];

  function overlay(el, curves, key, title) {
    const steps = Array.from(new Set(curves.flatMap((c) => c.steps))).sort((a, b) => a - b);
    const series = curves.map((curve) => {
      const byStep = new Map(curve.steps.map((step, i) => [step, curve[key][i]]));
      return steps.map((step) => (byStep.has(step) ? byStep.get(step) : null));
    });
    const drawn = series.filter((values) => values.some((v) => v != null)).length;
    el.dataset.series = String(drawn);
    el.dataset.points = String(steps.length);
    if (!window.uPlot) return;
    new uPlot({
      title: title, width: Math.max(320, el.clientWidth || 480), height: 240, scales: { x: { time: false } },
      series: [{ label: "step" }, ...curves.map((c, i) => ({ label: "job " + c.job_id, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: true }))],
    }, [steps, ...series], el);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const data = document.getElementById("compare-curves");
    if (!data) return;
    const curves = JSON.parse(data.textContent);
    overlay(document.getElementById("compare-loss"), curves, "loss", "Training loss");
    overlay(document.getElementById("compare-eval-loss"), curves, "eval_loss", "Validation loss");
  });
})();
