// The programme health dashboard's charts (Chart.js, vendored under vendor/chartjs).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("health-dashboard-data").textContent);
  var labels = data.labels;
  // Okabe-Ito: distinguishable for most colour-blind readers (same palette as members/charts.py).
  var palette = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"];
  var quiet = { animation: false, responsive: true, maintainAspectRatio: false,
    interaction: { mode: "index", intersect: false }, plugins: { legend: { position: "bottom" } } };

  function thresholdLine(label, value, count, colour) {
    var values = [];
    for (var i = 0; i < count; i++) { values.push(value); }
    return { label: label + " " + value, data: values, borderColor: colour, borderDash: [6, 4],
      borderWidth: 1.5, pointRadius: 0, fill: false };
  }

  data.metrics.forEach(function (metric) {
    var canvas = document.getElementById("metric-" + metric.metric);
    if (!canvas) { return; }
    var datasets = [{ label: canvas.getAttribute("aria-label"), data: metric.values,
      borderColor: palette[0], backgroundColor: palette[0], pointRadius: 0, spanGaps: true }];
    if (metric.lower !== null) { datasets.push(thresholdLine(labels.lower, metric.lower, data.days.length, palette[3])); }
    if (metric.upper !== null) { datasets.push(thresholdLine(labels.upper, metric.upper, data.days.length, palette[3])); }
    new Chart(canvas, { type: "line", data: { labels: data.days, datasets: datasets }, options: quiet });
  });

  var flow = document.getElementById("health-flow");
  if (flow) {
    new Chart(flow, { type: "line", options: quiet, data: { labels: data.flow.days, datasets:
      ["issued", "spent", "redeemed", "expired"].map(function (key, i) {
        return { label: labels[key], data: data.flow[key], borderColor: palette[i],
          backgroundColor: palette[i], pointRadius: 0 };
      }) } });
  }

  var tiers = document.getElementById("health-tiers");
  if (tiers) {
    var fromZero = Object.assign({}, quiet, { scales: { y: { beginAtZero: true } } });
    new Chart(tiers, { type: "bar", options: fromZero, data: { labels: data.tiers.names, datasets: [
      { label: labels.members, data: data.tiers.members, backgroundColor: palette[0] }] } });
  }

  var segments = document.getElementById("health-segments");
  if (segments) {
    new Chart(segments, { type: "line", options: quiet, data: { labels: data.segments.days,
      datasets: data.segments.series.map(function (segment, i) {
        return { label: segment.name, data: segment.members, borderColor: palette[i % palette.length],
          backgroundColor: palette[i % palette.length], pointRadius: 0, spanGaps: true };
      }) } });
  }
})();
