/* Offender page: the reputation series (percent of full reputation over block time). */
(function () {
  "use strict";
  const series = JSON.parse(document.getElementById("reputation-series").textContent);
  const canvas = document.getElementById("chart-reputation");
  if (!canvas || typeof Chart === "undefined" || !series.length) { return; }
  window.cmReputationChart = new Chart(canvas, {
    type: "line",
    data: {labels: series.map(function (point) { return point.t.replace("T", " ").slice(0, 19); }),
           datasets: [{label: "reputation %", data: series.map(function (p) { return p.percent; }),
                       borderColor: "#b91c1c", backgroundColor: "rgba(185,28,28,0.1)", fill: true,
                       pointRadius: 1, stepped: false, tension: 0.1}]},
    options: {responsive: true, maintainAspectRatio: false, animation: false,
              scales: {x: {ticks: {maxTicksLimit: 8}}, y: {min: 0, max: 100}}, plugins: {legend: {display: false}}}
  });
  document.body.dataset.chartsReady = "1";
}());
