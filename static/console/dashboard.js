/* SOC dashboard: charts from the embedded data, refreshed periodically; live commit feed over
   WebSocket (server pushes {"type": "blocks", "blocks": [...]}; reconnects with backoff). */
(function () {
  "use strict";
  const palette = {low: "#38bdf8", medium: "#facc15", high: "#fb923c", critical: "#b91c1c"};
  const categoryColors = ["#6366f1", "#14b8a6", "#f97316", "#ef4444", "#84cc16", "#a855f7",
    "#0ea5e9", "#eab308", "#ec4899", "#64748b", "#22c55e"];
  const charts = {};
  window.cmCharts = charts;
  const config = document.getElementById("dashboard-config");

  function chart(id, type, data, options) {
    const canvas = document.getElementById(id);
    if (!canvas || typeof Chart === "undefined") { return null; }
    if (charts[id]) { charts[id].data = data; charts[id].update(); return charts[id]; }
    charts[id] = new Chart(canvas, {type: type, data: data, options: Object.assign({
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: {legend: {position: "bottom", labels: {boxWidth: 10}}}}, options || {})});
    return charts[id];
  }

  function render(data) {
    const rate = data.commit_rate;
    chart("chart-commit-rate", "bar", {labels: rate.labels, datasets: [
      {label: "blocks", data: rate.blocks, backgroundColor: "#334155", yAxisID: "y"},
      {label: "transactions", data: rate.transactions, type: "line", borderColor: "#16a34a",
       backgroundColor: "#16a34a", yAxisID: "y1", pointRadius: 0}]},
      {scales: {x: {ticks: {maxTicksLimit: 8}}, y: {beginAtZero: true, position: "left"},
                y1: {beginAtZero: true, position: "right", grid: {drawOnChartArea: false}}}});
    const events = data.events;
    chart("chart-severity", "bar", {labels: events.labels, datasets:
      ["low", "medium", "high", "critical"].map(function (name) {
        return {label: name, data: events.by_severity[name] || [], backgroundColor: palette[name]};
      })}, {scales: {x: {stacked: true, ticks: {maxTicksLimit: 8}},
                y: {stacked: true, beginAtZero: true}}});
    chart("chart-category", "bar", {labels: events.labels, datasets:
      Object.keys(events.by_category).map(function (name, index) {
        const color = categoryColors[index % categoryColors.length];
        return {label: name, data: events.by_category[name], backgroundColor: color};
      })}, {scales: {x: {stacked: true, ticks: {maxTicksLimit: 8}},
                     y: {stacked: true, beginAtZero: true}}});
    const top = data.top_offenders;
    chart("chart-offenders", "bar", {labels: top.map(function (o) { return o.kind + ":" + o.value; }),
      datasets: [{label: "events", data: top.map(function (o) { return o.events; }),
                  backgroundColor: top.map(function (o) {
                    return o.worst_severity >= 9 ? palette.critical : o.worst_severity >= 7 ?
                      palette.high : o.worst_severity >= 4 ? palette.medium : palette.low; })}]},
      {indexAxis: "y", plugins: {legend: {display: false}},
       onClick: function (_event, elements) {
         if (!elements.length || !config) { return; }
         const offender = top[elements[0].index];
         window.location = config.dataset.offenderUrl.replace("KIND", offender.kind)
           .replace("VALUE", encodeURIComponent(offender.value));
       }});
    const sla = data.open_cases;
    chart("chart-sla", "bar", {labels: sla.labels, datasets: [
      {label: "within half the SLA", data: sla.ok, backgroundColor: "#22c55e"},
      {label: "past half", data: sla.due, backgroundColor: "#eab308"},
      {label: "overdue", data: sla.overdue, backgroundColor: "#dc2626"}]},
      {scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true}}});
    const dlqTopics = Object.keys(data.dlq.topics || {});
    chart("chart-queues", "bar", {labels: ["mempool"].concat(dlqTopics), datasets: [{
      label: "messages", data: [data.mempool.transactions].concat(
        dlqTopics.map(function (t) { return data.dlq.topics[t]; })),
      backgroundColor: ["#334155"].concat(dlqTopics.map(function () { return "#b91c1c"; }))}]},
      {plugins: {legend: {display: false}}, scales: {y: {beginAtZero: true}}});
    setText("stat-height", data.tip_height === null ? "\u2014" : data.tip_height);
    setText("stat-rate", rate.blocks_per_minute);
    setText("stat-open", sla.total);
    setText("stat-mempool", data.mempool.transactions);
    setText("stat-dlq", data.dlq.available ? data.dlq_total : "n/a");
    setText("stat-events", events.total);
    document.body.dataset.chartsReady = String(Object.keys(charts).length);
  }

  function setText(id, value) {
    const node = document.getElementById(id);
    if (node) { node.textContent = String(value); }
  }

  function refresh() {
    if (!config) { return; }
    fetch(config.dataset.dataUrl, {credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) { if (data) { render(data); } })
      .catch(function () { /* keep the last charts; the next refresh tries again */ });
  }

  function addBlocks(blocks) {
    const feed = document.getElementById("live-feed");
    if (!feed) { return; }
    blocks.forEach(function (block) {
      if (feed.querySelector('li[data-height="' + block.height + '"]')) { return; }
      const item = document.createElement("li");
      item.dataset.height = block.height;
      item.className = "cm-new";
      item.textContent = "#" + block.height + " " + block.hash.slice(0, 16) + " \u00b7 " +
        block.tx_count + " tx \u00b7 " + block.proposer + " \u00b7 " + block.time_text;
      feed.insertBefore(item, feed.firstChild);
      setTimeout(function () { item.className = ""; }, 2000);
      setText("stat-height", block.height);
    });
    while (feed.children.length > 100) { feed.removeChild(feed.lastChild); }
  }

  let delay = 1000;
  function connect() {
    if (!config) { return; }
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + config.dataset.wsPath);
    const state = document.getElementById("live-state");
    socket.onopen = function () {
      delay = 1000;
      if (state) { state.textContent = "live"; state.className = "cm-live cm-on"; }
    };
    socket.onmessage = function (message) {
      const payload = JSON.parse(message.data);
      if (payload.type === "blocks") { addBlocks(payload.blocks); }
    };
    socket.onclose = function () {
      if (state) { state.textContent = "reconnecting"; state.className = "cm-live"; }
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  render(JSON.parse(document.getElementById("dashboard-data").textContent));
  connect();
  setInterval(refresh, 15000);
}());
