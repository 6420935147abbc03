/* The service dashboard (/dashboard/): fetches /api/v1/analytics/dashboard/ with the filters, draws the ECharts
   charts (vendored, static/vendor/echarts) and fills the tables. No inline script: the page passes its URLs and
   texts in data-* attributes and the table columns in a JSON block. Every number shown is one the API computed
   in SQL; this file only formats it. */
(function () {
  "use strict";

  var root = document.getElementById("dashboard");
  if (!root) { return; }
  var t = root.dataset;
  var form = document.getElementById("dash-filters");
  var status = document.getElementById("dash-status");
  var tables = JSON.parse(document.getElementById("dashboard-tables").textContent);
  var charts = {};
  var COLORS = ["#1aad19", "#2f7ed8", "#f28f43", "#8bbc21", "#910000", "#1aadce", "#492970", "#77a1e5", "#c42525", "#a6c96a"];

  // -- formatting ---------------------------------------------------------------------------------------------
  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function pct(v) { return isNum(v) ? (v * 100).toFixed(1) + "%" : "–"; }
  function num(v, digits) {
    if (!isNum(v)) { return "–"; }
    return digits ? v.toFixed(digits) : v.toLocaleString("en-US");
  }
  function seconds(v) { return isNum(v) ? v.toFixed(1) : "–"; }
  function ms(v) { return isNum(v) ? v.toFixed(1) : "–"; }
  function fmt(v) { return String(v); }
  function tr(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_m, k) { return values[k] === undefined ? "" : values[k]; });
  }

  // how a cell of a table column is shown (by table and column key)
  function cell(table, key, value) {
    if (value === null || value === undefined || value === "") { return "–"; }
    if (Array.isArray(value)) { return value.join("、"); }
    if (/(^|_)(rate|share)$/.test(key)) { return pct(value); }
    if (key === "csat_average") { return num(value, 2); }
    if (table === "response_times" && (key === "p50" || key === "p90")) { return seconds(value); }
    if (table === "latency" && key !== "n") { return ms(value); }
    if (/_p50$/.test(key)) { return seconds(value); }
    if (isNum(value)) { return num(value); }
    return fmt(value);
  }

  // -- filters and URLs ------------------------------------------------------------------------------------------
  function query() {
    var params = new URLSearchParams();
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.name && el.value) { params.set(el.name, el.value); }
    });
    return params.toString();
  }

  function fromLocation() {
    var params = new URLSearchParams(window.location.search);
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.name && params.has(el.name)) { el.value = params.get(el.name); }
    });
  }

  function updateExports(q) {
    document.querySelectorAll("a.export").forEach(function (a) {
      a.href = t.exportUrl.replace("{name}", a.dataset.table).replace("{fmt}", a.dataset.fmt) + (q ? "?" + q : "");
    });
  }

  // -- KPIs -------------------------------------------------------------------------------------------------------
  function kpi(id, text, value) {
    var el = document.getElementById("kpi-" + id);
    if (!el) { return; }
    el.textContent = text;
    el.dataset.value = value === null || value === undefined ? "" : String(value);
  }

  function renderKpis(data) {
    var s = data.summary, lat = data.latency;
    kpi("conversations", num(s.conversations), s.conversations);
    kpi("messages_in", num(s.messages_in), s.messages_in);
    kpi("bot_solve_rate", pct(s.bot_solve_rate), s.bot_solve_rate);
    document.getElementById("kpi-bot_solve_detail").textContent =
      isNum(s.ended) ? num(s.bot_solved) + " / " + num(s.ended) : "";
    kpi("handoff_rate", pct(s.handoff_rate), s.handoff_rate);
    kpi("conversion_rate", pct(s.conversion_rate), s.conversion_rate);
    kpi("csat_average", num(s.csat_average, 2), s.csat_average);
    document.getElementById("kpi-csat_detail").textContent = s.csat_answers ? "n = " + num(s.csat_answers) : "";
    kpi("latency", ms(lat.p50) + " / " + ms(lat.p95) + " / " + ms(lat.p99) + " ms",
        [lat.p50, lat.p95, lat.p99].join(","));
    kpi("unanswered", num(s.unanswered), s.unanswered);
    status.textContent = s.computed_at
      ? tr(t.tComputed, { time: new Date(s.computed_at).toLocaleString("zh-CN", { hour12: false }) })
      : t.tNotComputed;
  }

  // -- tables ------------------------------------------------------------------------------------------------------
  function renderTable(name, rows) {
    var spec = tables[name];
    var table = document.getElementById("table-" + name);
    if (!spec || !table) { return; }
    var head = table.tHead, body = table.tBodies[0];
    head.textContent = "";
    body.textContent = "";
    var hr = head.insertRow();
    spec.columns.forEach(function (col) {
      var th = document.createElement("th");
      th.textContent = col[1];
      th.dataset.key = col[0];
      hr.appendChild(th);
    });
    if (!rows.length) {
      var empty = body.insertRow().insertCell();
      empty.colSpan = spec.columns.length;
      empty.className = "empty";
      empty.textContent = t.tEmpty;
      return;
    }
    rows.forEach(function (row) {
      var r = body.insertRow();
      spec.columns.forEach(function (col) {
        var td = r.insertCell();
        var value = row[col[0]];
        td.textContent = cell(name, col[0], value);  // textContent: customers' words are never HTML
        td.dataset.key = col[0];
        if (isNum(value)) { td.dataset.value = String(value); td.className = "num"; }
      });
    });
  }

  // -- charts ------------------------------------------------------------------------------------------------------
  function chart(id, option) {
    var el = document.getElementById(id);
    if (!el || !window.echarts) { return; }
    if (!charts[id]) { charts[id] = window.echarts.init(el, null, { renderer: "canvas" }); }
    option.animation = false;  // drawn at once (and testable)
    option.color = COLORS;
    charts[id].setOption(option, true);
  }

  function renderCharts(data) {
    var days = data.daily.map(function (d) { return d.day.slice(5); });
    chart("chart-daily", {
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 50, right: 50, top: 30, bottom: 30 },
      xAxis: { type: "category", data: days },
      yAxis: [{ type: "value", name: t.tConversations }, { type: "value", name: t.tMessagesIn }],
      series: [
        { name: t.tConversations, type: "bar", data: data.daily.map(function (d) { return d.conversations; }) },
        { name: t.tMessagesIn, type: "line", yAxisIndex: 1, data: data.daily.map(function (d) { return d.messages_in; }) },
        { name: t.tMessagesOut, type: "line", yAxisIndex: 1, data: data.daily.map(function (d) { return d.messages_out; }) }
      ]
    });
    chart("chart-solve", {
      tooltip: { trigger: "axis", valueFormatter: function (v) { return pct(v); } },
      grid: { left: 50, right: 20, top: 20, bottom: 30 },
      xAxis: { type: "category", data: days },
      yAxis: { type: "value", min: 0, max: 1, axisLabel: { formatter: function (v) { return Math.round(v * 100) + "%"; } } },
      series: [{ name: t.tSolveRate, type: "line", connectNulls: true, areaStyle: { opacity: 0.15 },
                 data: data.daily.map(function (d) { return d.bot_solve_rate; }) }]
    });
    chart("chart-reasons", {
      tooltip: { trigger: "item" },
      legend: { type: "scroll", bottom: 0 },
      series: [{ type: "pie", radius: ["35%", "65%"], center: ["50%", "45%"],
                 data: data.handoff_reasons.map(function (r) { return { name: r.label, value: r.tickets }; }) }]
    });
    chart("chart-times", {
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 110, right: 20, top: 30, bottom: 30 },
      yAxis: { type: "category", inverse: true, data: data.response_times.map(function (r) { return r.label; }) },
      xAxis: { type: "value", name: t.tSeconds },
      series: [
        { name: t.tP50, type: "bar", data: data.response_times.map(function (r) { return r.p50; }) },
        { name: t.tP90, type: "bar", data: data.response_times.map(function (r) { return r.p90; }) }
      ]
    });
    var intents = data.intents.slice().reverse();
    chart("chart-intents", {
      tooltip: { trigger: "axis" },
      grid: { left: 120, right: 20, top: 10, bottom: 30 },
      yAxis: { type: "category", data: intents.map(function (r) { return r.label; }) },
      xAxis: { type: "value", minInterval: 1 },
      series: [{ name: t.tDecisions, type: "bar", data: intents.map(function (r) { return r.decisions; }) }]
    });
    chart("chart-csat", {
      tooltip: { trigger: "axis" },
      grid: { left: 50, right: 20, top: 20, bottom: 30 },
      xAxis: { type: "category", data: data.csat.map(function (r) { return tr(t.tScore, { n: r.score }); }) },
      yAxis: { type: "value", minInterval: 1 },
      series: [{ name: t.tAnswers, type: "bar", data: data.csat.map(function (r) { return r.answers; }) }]
    });
    chart("chart-segments", {
      tooltip: { trigger: "item" },
      legend: { type: "scroll", bottom: 0 },
      series: [{ type: "pie", radius: "60%", center: ["50%", "45%"],
                 data: data.segments.map(function (r) { return { name: r.label, value: r.conversations }; }) }]
    });
  }

  // -- loading ------------------------------------------------------------------------------------------------------
  var sequence = 0;

  function load() {
    var q = query();
    var mine = ++sequence;
    root.dataset.state = "loading";
    status.textContent = t.tLoading;
    updateExports(q);
    fetch(t.apiUrl + (q ? "?" + q : ""), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) { throw new Error((body.error && body.error.message) || response.statusText); }
          return body;
        });
      })
      .then(function (data) {
        if (mine !== sequence) { return; }
        renderKpis(data);
        Object.keys(tables).forEach(function (name) {
          renderTable(name, name === "latency" ? [data.latency] : (data[name] || []));
        });
        renderCharts(data);
        root.dataset.state = "ready";
      })
      .catch(function (error) {
        if (mine !== sequence) { return; }
        root.dataset.state = "error";
        status.textContent = t.tFailed + " " + error.message;
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var q = query();
    window.history.replaceState(null, "", window.location.pathname + (q ? "?" + q : ""));
    load();
  });
  window.addEventListener("resize", function () {
    Object.keys(charts).forEach(function (id) { charts[id].resize(); });
  });

  fromLocation();
  load();
})();
