// taskexec: the dashboard refreshes itself. A "Refresh" control in the dashboard's toolbar
// (off, 30 s, 1 min, 5 min; off unless chosen) redraws every chart at that interval, in place:
// the dashboard's own calls that drew them are run again, so each chart fetches its query anew
// (cheap: the charts read the rollups) and replaces what it showed; nothing else on the page
// moves. The choice lives in the URL (?refresh=1m), so a bookmark or a reload keeps it, and the
// filters' Apply button carries it along. A hidden tab is not refreshed until it shows again.
(() => {
  const CHOICES = [["", "off"], ["30s", "30 s"], ["1m", "1 min"], ["5m", "5 min"]];
  const SECONDS = { "30s": 30, "1m": 60, "5m": 300 };
  const REDRAWN = new Set(["vega", "vega-lite", "metric", "table"]);
  const toolbar = document.querySelector(".dashboard-toolbar");
  // The inline script that drew the charts: renderChart(slug, chart, query, url) per chart.
  const drawing = [...document.scripts].find((s) => !s.src && s.text.includes("renderChart("));
  if (!toolbar || !drawing || typeof window.renderChart !== "function") return;

  let choice = new URLSearchParams(location.search).get("refresh") || "";
  if (!(choice in SECONDS)) choice = "";
  let timer = null;
  let due = false;

  const control = document.createElement("label");
  control.className = "te-refresh";
  control.append("Refresh ");
  const select = document.createElement("select");
  select.name = "refresh";
  for (const [value, text] of CHOICES) select.add(new Option(text, value, false, value === choice));
  const stamp = document.createElement("span");
  stamp.className = "te-refresh-stamp";
  stamp.setAttribute("aria-live", "polite");
  control.append(select, stamp);
  toolbar.prepend(control);

  function keepInFilters() {
    // The filters form submits by GET: a hidden field keeps the choice across Apply.
    const form = document.querySelector(".dashboard-filters form");
    if (!form) return;
    let field = form.querySelector("input[type=hidden][name=refresh]");
    if (!choice) {
      if (field) field.remove();
      return;
    }
    if (!field) {
      field = document.createElement("input");
      field.type = "hidden";
      field.name = "refresh";
      form.append(field);
    }
    field.value = choice;
  }

  let round = 0;

  function redraw() {
    const pending = [];
    // A parameter no query reads, new each round: fresh answers whatever the cache TTL.
    const fresh = "_refresh=" + Date.now().toString(36) + "-" + (round += 1);
    const again = (slug, chart, query, url, full) => {
      const el = document.getElementById("chart-" + slug);
      if (!el || el.style.display === "none" || !REDRAWN.has(chart.library)) return;
      const shown = [...el.childNodes];
      const asked = query ? query + "&" + fresh : fresh;
      pending.push(
        window.renderChart(slug, chart, asked, url, full).then(() => {
          for (const node of shown) node.remove(); // a chart draws anew, then the old goes
        }),
      );
    };
    new Function("renderChart", "autorefresh", drawing.text)(again, () => {});
    return Promise.allSettled(pending).then((results) => {
      const failed = results.filter((r) => r.status === "rejected").length;
      const time = new Date().toLocaleTimeString([], { hour12: false });
      stamp.textContent = failed ? ` ${failed} chart(s) failed at ${time}` : ` updated ${time}`;
      stamp.classList.toggle("te-refresh-failed", failed > 0);
    });
  }

  function schedule() {
    clearTimeout(timer);
    timer = null;
    due = false;
    if (!choice) return;
    timer = setTimeout(() => {
      if (document.hidden) {
        due = true; // redraw when the tab shows again
        return;
      }
      redraw().finally(schedule);
    }, SECONDS[choice] * 1000);
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && due) redraw().finally(schedule);
  });

  select.addEventListener("change", () => {
    choice = select.value;
    const url = new URL(location.href);
    if (choice) url.searchParams.set("refresh", choice);
    else url.searchParams.delete("refresh");
    history.replaceState(history.state, "", url);
    keepInFilters();
    stamp.textContent = "";
    schedule();
  });

  keepInFilters();
  schedule();
})();
