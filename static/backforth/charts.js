// Draws every <figure data-chart> (rendered by the chart tags, app/templatetags/charts.py) on its <canvas> with
// Chart.js (static/vendor/chartjs/). The data comes from the figure's json_script block, never from an inline
// script: the Content-Security-Policy allows scripts from our static files only, and Chart.js needs no eval.
// The same numbers are in the figure's table, so nothing is lost where this does not run.
(function () {
  "use strict";
  if (typeof window.Chart === "undefined") return;
  const Chart = window.Chart;

  // Okabe–Ito: stays distinguishable under the common forms of colour blindness (yellow last: hardest on white).
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"];
  const BAR = "#56B4E9";
  const MARKER = "#D55E00";

  Chart.defaults.font.family = "system-ui, sans-serif";
  Chart.defaults.color = "#333333";

  const fmt = (value) => (Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4))));
  const title = (text) => ({ display: Boolean(text), text: text || "" });

  // A dashed vertical line with its value at `options.value` on the scale `options.scale` (a histogram's
  // threshold), drawn when the value lies in the scale's range.
  const marker = {
    id: "marker",
    afterDatasetsDraw(chart, _args, options) {
      const scale = chart.scales[options.scale];
      const value = options.value;
      if (value === null || value === undefined || !scale || value < scale.min || value > scale.max) return;
      const { ctx, chartArea } = chart;
      const x = scale.getPixelForValue(value);
      const onRight = x > (chartArea.left + chartArea.right) / 2;
      ctx.save();
      ctx.strokeStyle = MARKER;
      ctx.fillStyle = MARKER;
      ctx.lineWidth = 1.5;
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      ctx.moveTo(x, chartArea.top);
      ctx.lineTo(x, chartArea.bottom);
      ctx.stroke();
      ctx.font = "11px system-ui, sans-serif";
      ctx.textAlign = onRight ? "right" : "left";
      ctx.textBaseline = "top";
      ctx.fillText(fmt(value), onRight ? x - 4 : x + 4, chartArea.top + 2);
      ctx.restore();
    },
  };

  const builders = {
    // One bar per bin on a category axis (which splits the width evenly, like the bins), and under it a
    // linear axis over the same [lo, hi] for round-number ticks and the marker.
    histogram(spec) {
      const edges = spec.edges;
      const last = spec.counts.length - 1;
      const labels = spec.counts.map(
        (_, i) => `[${fmt(edges[i])}, ${fmt(edges[i + 1])}${i === last ? "]" : ")"}`,
      );
      return {
        type: "bar",
        data: {
          labels,
          datasets: [
            {
              label: "count",
              data: spec.counts,
              xAxisID: "x",
              backgroundColor: BAR,
              borderColor: "#ffffff",
              borderWidth: 1,
              barPercentage: 1,
              categoryPercentage: 1,
            },
          ],
        },
        options: {
          scales: {
            x: { display: false },
            value: {
              type: "linear",
              position: "bottom",
              min: edges[0],
              max: edges[last + 1],
              offset: false,
              grid: { display: false },
              title: title(spec.xLabel),
            },
            y: { beginAtZero: true, ticks: { precision: 0 }, title: title(spec.yLabel) },
          },
          plugins: { legend: { display: false }, marker: { scale: "value", value: spec.marker } },
        },
        plugins: [marker],
      };
    },

    line(spec) {
      const many = spec.series.length > 1;
      return {
        type: "line",
        data: {
          datasets: spec.series.map((series, i) => ({
            label: series.name,
            data: series.points.map(([x, y]) => ({ x, y })),
            borderColor: PALETTE[i % PALETTE.length],
            backgroundColor: PALETTE[i % PALETTE.length],
            borderWidth: 1.5,
            pointRadius: series.points.length === 1 ? 3 : 0,
          })),
        },
        options: {
          interaction: { mode: "nearest", axis: "x", intersect: false },
          scales: {
            x: { type: "linear", title: title(spec.xLabel) },
            y: { title: title(spec.yLabel) },
          },
          plugins: { legend: { display: many }, title: title(spec.title) },
        },
      };
    },

    // One horizontal 100% bar: a stacked dataset per part, each keeping the colour of its position.
    "stacked-bar"(spec) {
      const colors = spec.colors && spec.colors.length ? spec.colors : PALETTE;
      const total = spec.parts.reduce((sum, part) => sum + part.value, 0);
      return {
        type: "bar",
        data: {
          labels: [""],
          datasets: spec.parts.map((part, i) => ({
            label: part.name ? `${part.name} ${part.share}` : part.share,
            data: [part.value],
            backgroundColor: colors[i % colors.length],
            barPercentage: 1,
            categoryPercentage: 1,
          })),
        },
        options: {
          indexAxis: "y",
          scales: {
            x: { stacked: true, display: false, min: 0, max: total },
            y: { stacked: true, display: false },
          },
          plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        },
      };
    },

    // A tiny trend line for a table cell: no axes, no legend, no tooltip; a dot on the last value.
    sparkline(spec) {
      const last = spec.points.length - 1;
      return {
        type: "line",
        data: {
          datasets: [
            {
              data: spec.points.map(([x, y]) => ({ x, y })),
              borderColor: PALETTE[0],
              backgroundColor: PALETTE[0],
              borderWidth: 1.5,
              pointRadius: (context) => (context.dataIndex === last ? 2 : 0),
            },
          ],
        },
        options: {
          events: [],
          layout: { padding: 3 },
          scales: { x: { type: "linear", display: false }, y: { display: false } },
          plugins: { legend: { display: false }, tooltip: { enabled: false } },
        },
      };
    },
  };

  function draw(root) {
    const figures = [...root.querySelectorAll("figure[data-chart]")];
    if (root.matches && root.matches("figure[data-chart]")) figures.push(root);
    figures.forEach((figure) => {
      const canvas = figure.querySelector("canvas");
      const data = figure.querySelector('script[type="application/json"]');
      if (!canvas || !data || Chart.getChart(canvas)) return;
      const spec = JSON.parse(data.textContent);
      const build = builders[spec.kind];
      if (!build) return;
      const config = build(spec);
      config.options = { animation: false, responsive: true, maintainAspectRatio: false, ...config.options };
      new Chart(canvas, config);
    });
  }

  draw(document);
  // Charts in content that htmx swaps in later.
  document.addEventListener("htmx:load", (event) => draw(event.target));
})();
