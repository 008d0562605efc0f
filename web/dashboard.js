/*
 * dashboard.js - draws kiln's /dashboard: live uPlot charts of the history
 * kept by the running kiln (per GPU: utilization, memory, temperature, power;
 * host CPU and memory; per model: throughput, p50/p99 latency, queue time per
 * request) and the table of active alerts.
 *
 * Data comes only from this kiln: /api/v1/query_range (selectors, one per
 * chart, on a step grid so all series share one x axis) and /api/v1/alerts.
 * Counters are turned into rates here in the browser, because the history
 * API answers selectors, not PromQL functions.  window.kiln exposes what was
 * drawn so the headless-browser test can check it.
 */
(function () {
  "use strict";

  var GiB = 1024 * 1024 * 1024;
  var state = { range: 300, timer: null, charts: {}, loading: false };
  var kiln = (window.kiln = { charts: {}, errors: [], loads: 0, gpus: 0 });

  // Chart definitions: which selector, how to turn values into what is drawn,
  // and how each series is named in the legend.
  var GPU_CHARTS = [
    { id: "gpu_util", title: "GPU utilization (%)", query: "nv_gpu_utilization", scale: 100, percent: true, name: gpuName },
    { id: "gpu_mem", title: "GPU memory used (GiB)", query: "nv_gpu_memory_used_bytes", scale: 1 / GiB, name: gpuName },
    { id: "gpu_temp", title: "GPU temperature (°C)", query: "kiln_gpu_temperature_celsius", scale: 1, name: gpuName },
    { id: "gpu_power", title: "GPU power (W)", query: "nv_gpu_power_usage", scale: 1, name: gpuName }
  ];
  var HOST_CHARTS = [
    { id: "cpu_util", title: "Host CPU utilization (%)", query: "nv_cpu_utilization", scale: 100, percent: true,
      name: constName("cpu") },
    { id: "host_mem", title: "Host memory (GiB)", query: '{__name__=~"nv_cpu_memory_used_bytes|nv_cpu_memory_total_bytes"}',
      scale: 1 / GiB, name: function (m) { return m.__name__ === "nv_cpu_memory_total_bytes" ? "total" : "used"; } }
  ];
  var MODEL_CHARTS = [
    { id: "throughput", title: "Throughput (inferences/s)", query: "nv_inference_count", rate: true, scale: 1, name: modelName },
    { id: "latency", title: "Request latency p50 / p99 (ms)",
      query: 'kiln_inference_request_latency_us{quantile=~"0.5|0.99"}', scale: 0.001,
      name: function (m) { return modelName(m) + " p" + Math.round(parseFloat(m.quantile) * 100); } },
    { id: "queue", title: "Queue time per request (ms)", ratio: ["nv_inference_queue_duration_us", "nv_inference_request_success"],
      scale: 0.001, name: modelName }
  ];

  function gpuName(m) {
    var id = m.gpu_uuid || m.gpu || "gpu";
    return (m.gpu !== undefined ? "GPU " + m.gpu + " " : "") + (id.length > 16 ? id.slice(0, 16) + "…" : id);
  }
  function modelName(m) { return (m.model || "?") + (m.version ? "/" + m.version : ""); }
  function constName(s) { return function () { return s; }; }

  var PALETTE = ["#f0883e", "#58a6ff", "#3fb950", "#d2a8ff", "#ff7b72", "#e3b341", "#79c0ff", "#56d4dd"];

  function $(id) { return document.getElementById(id); }

  function setStatus(text) { $("status").textContent = text; }

  function fail(where, err) {
    var msg = where + ": " + (err && err.message ? err.message : String(err));
    kiln.errors.push(msg);
    setStatus(msg);
  }

  function getJSON(url) {
    return fetch(url, { cache: "no-store" }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok || body.status !== "success")
          throw new Error(url.split("?")[0] + " answered " + r.status + ": " + (body.error || "unexpected body"));
        return body.data;
      });
    });
  }

  // The step grid of the current range: about 300 points per series.
  function grid() {
    var end = Math.floor(Date.now() / 1000);
    var step = Math.max(1, Math.round(state.range / 300));
    var start = end - state.range;
    start -= start % step;
    var xs = [];
    for (var t = start; t <= end; t += step) xs.push(t);
    return { start: start, end: xs[xs.length - 1], step: step, xs: xs };
  }

  function queryRange(query, g) {
    var url = "/api/v1/query_range?query=" + encodeURIComponent(query) + "&start=" + g.start + "&end=" + g.end +
      "&step=" + g.step + "s";
    return getJSON(url).then(function (d) { return d.result || []; });
  }

  // One result series -> an array aligned on the grid (null where missing).
  function align(series, g) {
    var ys = new Array(g.xs.length).fill(null);
    (series.values || []).forEach(function (p) {
      var i = Math.round((p[0] - g.start) / g.step);
      if (i >= 0 && i < ys.length) ys[i] = parseFloat(p[1]);
    });
    return ys;
  }

  // Per-second rate of a counter on the grid; a drop is a counter reset.
  function rate(ys, g) {
    var out = new Array(ys.length).fill(null), prev = null, prevI = -1;
    for (var i = 0; i < ys.length; i++) {
      if (ys[i] === null) continue;
      if (prev !== null) {
        var d = ys[i] >= prev ? ys[i] - prev : ys[i];
        out[i] = d / ((i - prevI) * g.step);
      }
      prev = ys[i]; prevI = i;
    }
    return out;
  }

  function delta(ys) {
    var out = new Array(ys.length).fill(null), prev = null;
    for (var i = 0; i < ys.length; i++) {
      if (ys[i] === null) continue;
      if (prev !== null) out[i] = ys[i] >= prev ? ys[i] - prev : ys[i];
      prev = ys[i];
    }
    return out;
  }

  function key(m, skip) {
    return Object.keys(m).filter(function (k) { return skip.indexOf(k) < 0; }).sort()
      .map(function (k) { return k + "=" + m[k]; }).join(",");
  }

  // Fetches one chart's data: {names: [...], ys: [[...], ...]}.
  function load(def, g) {
    if (def.ratio) {
      return Promise.all([queryRange(def.ratio[0], g), queryRange(def.ratio[1], g)]).then(function (r) {
        var den = {};
        r[1].forEach(function (s) { den[key(s.metric, ["__name__"])] = delta(align(s, g)); });
        var names = [], ys = [];
        r[0].forEach(function (s) {
          var d = den[key(s.metric, ["__name__"])];
          if (!d) return;
          var num = delta(align(s, g));
          names.push(def.name(s.metric));
          ys.push(num.map(function (v, i) { return v === null || !d[i] ? null : (v / d[i]) * def.scale; }));
        });
        return { names: names, ys: ys };
      });
    }
    return queryRange(def.query, g).then(function (result) {
      var names = [], ys = [];
      result.forEach(function (s) {
        var a = align(s, g);
        if (def.rate) a = rate(a, g);
        names.push(def.name(s.metric));
        ys.push(a.map(function (v) { return v === null ? null : v * def.scale; }));
      });
      return { names: names, ys: ys };
    });
  }

  function chartBox(container, def) {
    var box = $("chart-" + def.id);
    if (!box) {
      box = document.createElement("div");
      box.className = "chart";
      box.id = "chart-" + def.id;
      var h = document.createElement("h3");
      h.textContent = def.title;
      box.appendChild(h);
      var body = document.createElement("div");
      body.className = "body";
      box.appendChild(body);
      container.appendChild(box);
    }
    return box;
  }

  function draw(container, def, data, g) {
    var box = chartBox(container, def);
    var body = box.querySelector(".body");
    var points = 0;
    data.ys.forEach(function (ys) { ys.forEach(function (v) { if (v !== null) points++; }); });
    kiln.charts[def.id] = { series: data.ys.length, points: points, title: def.title };
    var old = state.charts[def.id];
    var sig = data.names.join("|");
    if (data.ys.length === 0) {
      if (old) { old.plot.destroy(); delete state.charts[def.id]; }
      body.innerHTML = '<div class="nodata">no data in this range</div>';
      return;
    }
    var aligned = [g.xs].concat(data.ys);
    if (old && old.sig === sig) {
      old.plot.setData(aligned);
      return;
    }
    if (old) old.plot.destroy();
    body.innerHTML = "";
    var series = [{}].concat(data.names.map(function (n, i) {
      return { label: n, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false,
               value: function (u, v) { return v === null ? "–" : v.toFixed(2); } };
    }));
    var opts = {
      width: Math.max(300, box.clientWidth - 16), height: 200, series: series,
      axes: [{ stroke: "#8a96a3", grid: { stroke: "#2a323b" }, space: 90 },
             { stroke: "#8a96a3", grid: { stroke: "#2a323b" }, size: 60 }],
      // Percentages keep a fixed 0..100 axis so charts compare at a glance.
      scales: { x: { time: true }, y: def.percent ? { range: [0, 100] } : {} }, legend: { show: true }
    };
    state.charts[def.id] = { plot: new uPlot(opts, aligned, body), sig: sig };
  }

  function renderAlerts(data) {
    var alerts = (data && data.alerts) || [];
    var tbody = $("alerts").querySelector("tbody");
    tbody.innerHTML = "";
    var firing = 0;
    alerts.forEach(function (a) {
      if (a.state === "firing") firing++;
      var tr = document.createElement("tr");
      function td(text, cls) {
        var c = document.createElement("td");
        c.textContent = text;
        if (cls) c.className = cls;
        tr.appendChild(c);
        return c;
      }
      td(a.state, "state-" + a.state);
      td(a.labels.alertname || "");
      var lc = td("", "labels");
      Object.keys(a.labels).sort().forEach(function (k) {
        if (k === "alertname") return;
        var s = document.createElement("span");
        s.textContent = k + "=" + a.labels[k];
        lc.appendChild(s);
      });
      td(new Date(a.activeAt).toLocaleString());
      td(a.value);
      td((a.annotations && (a.annotations.summary || a.annotations.description)) || "");
      tbody.appendChild(tr);
    });
    if (!alerts.length) tbody.innerHTML = '<tr class="empty"><td colspan="6">No active alerts.</td></tr>';
    var badge = $("alert-count");
    badge.textContent = alerts.length;
    badge.className = "badge" + (firing ? " firing" : "");
    kiln.alerts = alerts.length;
  }

  function refresh() {
    if (state.loading) return;
    state.loading = true;
    var g = grid();
    var jobs = [];
    var gpuData = {};
    jobs.push(Promise.all(GPU_CHARTS.map(function (d) {
      return load(d, g).then(function (data) { gpuData[d.id] = data; });
    })).then(function () {
      var gpus = gpuData.gpu_util.ys.length;
      kiln.gpus = gpus;
      $("no-gpu").hidden = gpus > 0;
      $("gpu-charts").hidden = gpus === 0;
      if (gpus > 0) GPU_CHARTS.forEach(function (d) { draw($("gpu-charts"), d, gpuData[d.id], g); });
    }));
    HOST_CHARTS.forEach(function (d) {
      jobs.push(load(d, g).then(function (data) { draw($("host-charts"), d, data, g); }));
    });
    var modelSeries = 0;
    MODEL_CHARTS.forEach(function (d) {
      jobs.push(load(d, g).then(function (data) {
        modelSeries += data.ys.length;
        draw($("model-charts"), d, data, g);
      }));
    });
    jobs.push(getJSON("/api/v1/alerts").then(renderAlerts));
    Promise.all(jobs).then(function () {
      $("no-models").hidden = modelSeries > 0;
      kiln.loads++;
      document.body.dataset.state = "ready";
      setStatus("updated " + new Date().toLocaleTimeString());
    }).catch(function (e) {
      document.body.dataset.state = "error";
      fail("refresh", e);
    }).then(function () { state.loading = false; });
  }

  function schedule() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
    if ($("live").checked) state.timer = setInterval(refresh, state.range <= 3600 ? 5000 : 60000);
  }

  document.querySelectorAll("#ranges button").forEach(function (b) {
    b.addEventListener("click", function () {
      document.querySelectorAll("#ranges button").forEach(function (o) { o.classList.remove("active"); });
      b.classList.add("active");
      state.range = parseInt(b.dataset.range, 10);
      refresh();
      schedule();
    });
  });
  $("live").addEventListener("change", schedule);
  window.addEventListener("resize", function () {
    Object.keys(state.charts).forEach(function (id) {
      var box = $("chart-" + id);
      state.charts[id].plot.setSize({ width: Math.max(300, box.clientWidth - 16), height: 200 });
    });
  });
  $("host").textContent = location.host;
  if (typeof uPlot === "undefined") {
    fail("startup", "uPlot did not load (/dashboard/uPlot.iife.min.js)");
    document.body.dataset.state = "error";
    return;
  }
  refresh();
  schedule();
})();
