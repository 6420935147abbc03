/* Confusion matrix heat map on an intent model version's admin page (data from json_script). */
(function () {
  "use strict";
  function draw() {
    var el = document.getElementById("kefu-confusion");
    var source = document.getElementById("kefu-confusion-data");
    if (!el || !source) { return; }
    if (!window.echarts) { el.style.display = "none"; return; }  // the table below still shows it
    var data = JSON.parse(source.textContent);
    var chart = window.echarts.init(el);
    chart.setOption({
      tooltip: {
        formatter: function (p) { return data.labels[p.value[1]] + " → " + data.labels[p.value[0]] + ": " + p.value[2]; }
      },
      grid: { left: 120, right: 20, top: 10, bottom: 110 },
      xAxis: { type: "category", data: data.labels, axisLabel: { rotate: 60 }, name: el.dataset.predicted },
      yAxis: { type: "category", data: data.labels, inverse: true, name: el.dataset.truth },
      visualMap: {
        min: 0, max: data.max, calculable: true, orient: "horizontal", left: "center", bottom: 0,
        inRange: { color: ["#ffffff", "#c62828"] }
      },
      series: [{
        type: "heatmap", data: data.data,
        label: { show: true, formatter: function (p) { return p.value[2] || ""; } }
      }]
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
