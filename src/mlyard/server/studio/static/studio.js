// The studio's small scripts: sign-in links, metric charts (uPlot), the live job log, compare filters, keys.
(function () {
  "use strict";

  function getJSON(url) {
    return fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}}).then(function (r) {
      if (r.status === 401) { window.location.assign("/studio/signin?next=" + encodeURIComponent(location.pathname)); }
      if (!r.ok) { throw new Error(url + ": HTTP " + r.status); }
      return r.json();
    });
  }

  // --- sign-in: `mlyard studio` opens /studio/signin#code=...; the code is posted, never sent in a URL
  function signIn() {
    var form = document.getElementById("signin-form");
    if (!form) { return; }
    var match = /(?:^#|&)code=([^&]+)/.exec(window.location.hash);
    if (!match) { return; }
    history.replaceState(null, "", window.location.pathname + window.location.search);
    document.getElementById("signin-code").value = decodeURIComponent(match[1]);
    form.submit();
  }

  // --- charts
  var PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777",
                 "#4b5563", "#65a30d"];
  var chartState = null;

  function smooth(values, weight) {
    if (!weight) { return values; }
    // an exponential moving average, debiased as TensorBoard's: early points are not pulled towards 0
    var out = [], last = 0, n = 0;
    for (var i = 0; i < values.length; i++) {
      var v = values[i];
      if (v === null || v === undefined) { out.push(null); continue; }
      last = last * weight + (1 - weight) * v;
      n++;
      out.push(last / (1 - Math.pow(weight, n)));
    }
    return out;
  }

  function seriesFor(h, axis, weight) {
    var xs = axis === "time" ? h.timestamp.map(function (t) { return (t - h.timestamp[0]) / 1000; }) : h.step;
    // uPlot needs increasing x: keep the last value at each x
    var byX = new Map();
    var ys = smooth(h.value, weight);
    for (var i = 0; i < xs.length; i++) { byX.set(xs[i], ys[i]); }
    var keys = Array.from(byX.keys()).sort(function (a, b) { return a - b; });
    return [keys, keys.map(function (k) { return byX.get(k); })];
  }

  function drawCharts() {
    var box = document.getElementById("charts");
    if (!box || !chartState) { return; }
    var axis = document.getElementById("xaxis").value;
    var weight = parseFloat(document.getElementById("smoothing").value) || 0;
    document.getElementById("smoothing-value").textContent = weight.toFixed(2);
    box.innerHTML = "";
    chartState.keys.forEach(function (key) {
      var tables = [], series = [{label: axis === "time" ? "seconds" : "step"}];
      chartState.runs.forEach(function (run, i) {
        var h = chartState.data[run.id + "\u0000" + key];
        if (!h || !h.value.length) { return; }
        tables.push(seriesFor(h, axis, weight));
        series.push({label: run.name, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: true});
      });
      var figure = document.createElement("figure");
      figure.className = "chart";
      figure.setAttribute("data-metric", key);
      var caption = document.createElement("figcaption");
      caption.textContent = key;
      figure.appendChild(caption);
      box.appendChild(figure);
      if (!tables.length) { return; }
      var data = tables.length === 1 ? tables[0] : uPlot.join(tables);
      var width = Math.max(280, Math.min(560, box.clientWidth - 16));
      new uPlot({width: width, height: 220, series: series, scales: {x: {time: false}},
                 legend: {show: chartState.runs.length > 1},
                 axes: [{label: axis === "time" ? "seconds" : "step"}, {}]}, data, figure);
      figure.setAttribute("data-points", String(data[0].length));
    });
  }

  // --- parallel coordinates (compare): an SVG, one vertical axis per param or metric, one line per run
  var SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, parent) {
    var el = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(el); }
    return el;
  }

  function parallel(cfg) {
    var box = document.getElementById("parallel");
    var axes = (cfg.axes || []).filter(function (a) { return a.values.some(function (v) { return v !== null; }); });
    cfg = {runs: cfg.runs, axes: axes};
    if (!box || cfg.axes.length < 2) {
      if (box) { box.textContent = "Fewer than two numeric params and metrics: nothing to draw."; }
      return;
    }
    var width = Math.max(480, Math.min(1200, box.clientWidth || 900)), height = 280, top = 24, bottom = 40;
    var step = (width - 80) / (cfg.axes.length - 1);
    var root = svg("svg", {width: width, height: height, role: "img", "aria-label": "parallel coordinates"}, box);
    var scales = cfg.axes.map(function (axis) {
      var nums = axis.values.filter(function (v) { return v !== null; });
      var lo = Math.min.apply(null, nums), hi = Math.max.apply(null, nums);
      return function (v) { return hi === lo ? (top + height - bottom) / 2 : top + (hi - v) / (hi - lo) * (height - top - bottom); };
    });
    cfg.axes.forEach(function (axis, i) {
      var x = 40 + i * step;
      svg("line", {x1: x, x2: x, y1: top, y2: height - bottom, stroke: "#9ca3af"}, root);
      var label = svg("text", {x: x, y: height - bottom + 16, "text-anchor": "middle", "font-size": 12, fill: "#374151"}, root);
      label.textContent = axis.name;
      var nums = axis.values.filter(function (v) { return v !== null; });
      [Math.max.apply(null, nums), Math.min.apply(null, nums)].forEach(function (v, j) {
        var t = svg("text", {x: x + 4, y: j ? height - bottom - 2 : top - 6, "font-size": 10, fill: "#6b7280"}, root);
        t.textContent = Number(v.toPrecision(4)).toString();
      });
    });
    cfg.runs.forEach(function (run, r) {
      var points = [];
      cfg.axes.forEach(function (axis, i) {
        var v = axis.values[r];
        if (v !== null) { points.push((40 + i * step) + "," + scales[i](v)); }
      });
      var line = svg("polyline", {points: points.join(" "), fill: "none", stroke: PALETTE[r % PALETTE.length],
                                  "stroke-width": 2, "data-run": run.id}, root);
      svg("title", {}, line).textContent = run.name;
    });
    box.setAttribute("data-lines", String(cfg.runs.length));
  }

  function charts() {
    var spec = document.getElementById("chart-data");
    if (!spec || typeof uPlot === "undefined") { return; }
    var cfg = JSON.parse(spec.textContent);
    parallel(cfg);
    if (!document.getElementById("charts")) { return; }
    chartState = {runs: cfg.runs, keys: cfg.keys, data: {}};
    var loads = [];
    cfg.runs.forEach(function (run) {
      cfg.keys.forEach(function (key) {
        var url = "/studio/api/runs/" + encodeURIComponent(run.id) + "/metrics?key=" + encodeURIComponent(key);
        loads.push(getJSON(url).then(function (h) { chartState.data[run.id + "\u0000" + key] = h; })
          .catch(function () { /* a run without this metric: no line */ }));
      });
    });
    Promise.all(loads).then(drawCharts);
    document.getElementById("xaxis").addEventListener("change", drawCharts);
    document.getElementById("smoothing").addEventListener("input", drawCharts);
  }

  // --- live job log
  function jobLog() {
    var pre = document.getElementById("job-log");
    if (!pre) { return; }
    var offset = 0;
    function poll() {
      getJSON("/studio/api/jobs/" + encodeURIComponent(pre.dataset.job) + "/log?offset=" + offset).then(function (chunk) {
        var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        if (chunk.text) { pre.appendChild(document.createTextNode(chunk.text)); }
        if (atBottom) { pre.scrollTop = pre.scrollHeight; }
        offset = chunk.offset;
        pre.setAttribute("data-offset", String(offset));
        if (chunk.done) { pre.setAttribute("data-done", "true"); return; }
        setTimeout(poll, chunk.text.length >= 262144 ? 0 : 1000);
      }).catch(function () { setTimeout(poll, 3000); });
    }
    poll();
  }

  // --- compare: only the parameters that differ
  function compareFilter() {
    var box = document.getElementById("only-diff");
    if (!box) { return; }
    box.addEventListener("change", function () {
      document.getElementById("compare-params").classList.toggle("only-diff", box.checked);
    });
  }

  // --- keys: "/" focuses the filter box
  document.addEventListener("keydown", function (e) {
    var filter = document.getElementById("filter");
    if (e.key === "/" && filter && document.activeElement !== filter &&
        !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName)) {
      e.preventDefault();
      filter.focus();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    signIn();
    charts();
    jobLog();
    compareFilter();
  });
})();
