// Charts for dataset statistics, drawn with uPlot (vendored under static/vendor).
(function () {
  "use strict";
  function barChart(el, labels, values, seriesLabel) {
    if (!el || !window.uPlot) return;
    const xs = labels.map((_, i) => i);
    const opts = {
      width: Math.max(320, el.clientWidth || 480), height: 220,
      legend: { show: false },
      scales: { x: { time: false, range: [-0.5, labels.length - 0.5] } },
      axes: [{ values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) && labels[t] !== undefined ? labels[t] : "")) }, {}],
      series: [{}, { label: seriesLabel, fill: "rgba(47,111,235,0.35)", stroke: "#2f6feb", paths: uPlot.paths.bars({ size: [0.8, 80] }) }],
    };
    el.dataset.points = String(values.reduce((a, b) => a + b, 0));
    return new uPlot(opts, [xs, values], el);
  }
  document.addEventListener("DOMContentLoaded", () => {
    const node = document.getElementById("version-stats");
    if (!node) return;
    const stats = JSON.parse(node.textContent) || {};
    const hist = stats.token_length_histogram;
    if (hist && hist.counts) {
      const labels = hist.counts.map((_, i) => hist.edges[i] + "–" + (hist.edges[i + 1] !== undefined ? hist.edges[i + 1] : "+"));
      const counts = hist.counts.slice();
      if (hist.over_max) { labels.push(">" + hist.edges[hist.edges.length - 1]); counts.push(hist.over_max); }
      barChart(document.getElementById("histogram"), labels, counts, "rows");
    }
    const turns = stats.turns_per_conversation;
    if (turns) {
      const keys = Object.keys(turns).sort((a, b) => Number(a) - Number(b));
      barChart(document.getElementById("turns-chart"), keys, keys.map((k) => turns[k]), "conversations");
    }
  });
})();
