// taskexec: draws the task health dashboard, in place of datasette-dashboards' dashboards.js on
// this one page (templates/taskexec_dashboard.html): the same charts drawn the same way (each
// chart's Vega-Lite through vega-embed, as SVG; the page's cards come out identical), sooner:
// - every chart's rows are asked for by the page's head (link preload) while Vega still loads
//   (deferred: nothing waits for it); the fetch here gets that answer, and charts sharing a
//   query share one request;
// - metrics and tables show as soon as their rows arrive, without waiting for Vega; the Vega
//   charts are drawn one at a time, in the order their rows arrive;
// - the Vega-Lite charts come compiled to Vega (task-health.vega.json, served for the charts
//   whose spec it still matches): ``window.vegaLite`` is a stand-in whose compile() answers
//   those, so Vega-Lite is neither loaded nor run; a chart without one loads the real
//   Vega-Lite and compiles in the page as before.
// renderChart(slug, chart, query_string, absolute_url) is dashboards.js's: the page's inline
// script calls it per chart and autorefresh.js calls it again; like dashboards.js's, it resolves
// once the rows are in: a metric or table drawn, a Vega chart on its way.
(() => {
  const me = document.currentScript.dataset;
  const base = JSON.parse(me.base); // datasette-dashboards' wrapper of every chart's spec
  // The compiled Vega of the charts that have one: {vegaLite: version, specs: {slug: spec}}.
  const compiled = me.specs
    ? fetch(me.specs)
        .then((r) => (r.ok ? r.json() : {}))
        .catch(() => ({}))
    : Promise.resolve({});
  // Vega and vega-embed are deferred scripts: there once the document is parsed.
  const parsed = new Promise((resolve) => {
    if (document.readyState !== "loading") resolve();
    else document.addEventListener("DOMContentLoaded", () => resolve(), { once: true });
  });

  // Vega-Lite as vega-embed sees it (it takes window.vegaLite when it loads, after this):
  // compiled specs for the specs drawn here, the real Vega-Lite for any other.
  // vega-embed reads the version as it loads: the page says which Vega-Lite compiled them.
  const ready = new WeakMap(); // a Vega-Lite spec -> its compiled Vega, rows in
  let real = null;
  const version = me.vegaLiteVersion || undefined;
  window.vegaLite = {
    get version() {
      return real ? real.version : version;
    },
    compile(spec, options) {
      if (ready.has(spec)) return { spec: ready.get(spec) };
      if (!real) throw new Error("Vega-Lite is not loaded");
      return real.compile(spec, options);
    },
  };
  const shim = window.vegaLite;
  let loading = null;

  function loadVegaLite() {
    loading ??= new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = me.vegaLite;
      s.onload = () => {
        real = window.vegaLite;
        window.vegaLite = shim;
        resolve();
      };
      s.onerror = () => reject(new Error("could not load " + me.vegaLite));
      document.head.append(s);
    });
    return loading;
  }

  // -- rows: one request per distinct URL -----------------------------------------------------

  const asked = new Map(); // url -> Promise of the answer's JSON, while in flight

  function rowsOf(url) {
    let answer = asked.get(url);
    if (!answer) {
      answer = fetch(url).then((r) => r.json());
      asked.set(url, answer);
      const done = () => asked.delete(url);
      answer.then(done, done);
    }
    return answer;
  }

  function dataUrl(chart, query_string, absolute_url) {
    const query = encodeURIComponent(chart.query);
    return `${absolute_url}${chart.db}.json?sql=${query}&${query_string}&_shape=objects`;
  }

  function tooltip(slug) {
    const warn = document.querySelector(`#chart-tooltip-${slug}`);
    if (warn) warn.style.visibility = "visible";
  }

  // -- drawing --------------------------------------------------------------------------------

  function box(child, style) {
    const wrapper = document.createElement("div");
    wrapper.appendChild(child);
    Object.assign(wrapper.style, { width: "100%", height: "100%" }, style);
    return wrapper;
  }

  function drawMetric(el, chart, data) {
    const metric = data.rows[0][chart.display.field];
    const p = document.createElement("p");
    p.innerHTML = `${chart.display.prefix || ""}${metric}${chart.display.suffix || ""}`;
    p.style.fontSize = "2.2rem";
    p.style.fontWeight = "900";
    const centred = {
      display: "flex",
      flexDirection: "column",
      justifyContent: "center",
      alignItems: "center",
      overflow: "hidden",
      whiteSpace: "nowrap",
      textOverflow: "ellipsis",
    };
    el.appendChild(box(p, centred));
  }

  function drawTable(el, chart, data) {
    // The cells are HTML, escaped by the queries, as datasette-dashboards shows them.
    const head = document.createElement("tr");
    for (const col of Object.keys(data.rows[0])) {
      const th = document.createElement("th");
      th.innerHTML = col;
      head.appendChild(th);
    }
    const thead = document.createElement("thead");
    thead.appendChild(head);
    const tbody = document.createElement("tbody");
    for (const row of data.rows) {
      const tr = document.createElement("tr");
      for (const value of Object.values(row)) {
        const td = document.createElement("td");
        td.innerHTML = value;
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
    const table = document.createElement("table");
    table.append(thead, tbody);
    el.appendChild(box(table, { overflow: "auto" }));
  }

  // One chart drawn at a time, in the order their rows arrive, each in a task of its own: in
  // between, the browser shows what is drawn and the page takes in rows that arrived (a
  // metric shows then, not after every chart). A message, not scheduler.yield(), whose
  // continuation would come before those.
  let drawing = Promise.resolve();

  function nextTask() {
    return new Promise((resolve) => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => resolve();
      channel.port2.postMessage(null);
    });
  }

  async function drawVega(slug, el, chart, data, full_height) {
    await parsed;
    const found = await compiled;
    const rows = data.rows.map((row) => ({ ...row })); // Vega adds fields: a copy per chart
    const spec = {
      $schema: base.$schema,
      description: chart.title,
      width: base.width,
      height: full_height ? "container" : undefined,
      view: base.view,
      config: base.config,
      data: { values: rows, format: { type: "json" } },
      ...chart.display,
    };
    const vega = full_height ? null : (found.specs || {})[slug];
    if (vega) {
      const data = vega.data.map((d) => (d.name === "table" ? { ...d, values: rows } : d));
      ready.set(spec, { ...vega, data });
    } else {
      await loadVegaLite();
    }
    return window.vegaEmbed(el, spec);
  }

  async function renderChart(slug, chart, query_string, absolute_url, full_height = false) {
    const lib = chart.library;
    if (!["vega-lite", "metric", "table"].includes(lib) || !chart.query) return;
    const data = await rowsOf(dataUrl(chart, query_string, absolute_url));
    const el = document.querySelector(`#chart-${slug}`);
    if (lib === "metric") drawMetric(el, chart, data);
    else if (lib === "table") drawTable(el, chart, data);
    else {
      // Resolved once the chart is in line to be drawn, as dashboards.js resolves once it has
      // called vega-embed (autorefresh.js then takes the old chart away; vega-embed would too).
      const turn = drawing.then(() => drawVega(slug, el, chart, data, full_height));
      drawing = turn.then(nextTask, nextTask);
      turn.catch(reportError); // said as dashboards.js's unawaited vega-embed would say it
    }
    if (data.truncated) tooltip(slug);
  }

  window.renderChart = renderChart;
  parsed.then(() => {
    if (window.vega) window.vega.setRandom(window.vega.randomLCG(0)); // as dashboards.js does
  });
  window.toggleFullscreen = () => {
    const el = document.querySelector("section.content");
    if (document.fullscreenElement) document.exitFullscreen();
    else el.requestFullscreen();
  };
  window.autorefresh = (minutes) => {
    window.setTimeout(() => window.location.reload(), Math.round(minutes * 60 * 1000));
  };
})();
