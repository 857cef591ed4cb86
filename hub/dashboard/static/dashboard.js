// The lienthong dashboard: polls api/summary every two seconds and redraws the figures and charts in place.
// Relative URLs throughout, so the page also works behind a reverse proxy under a sub-path.
"use strict";

(() => {
  const POLL_MS = 2000;
  const DASH = "–";
  const numbers = new Intl.NumberFormat("en-US");
  const charts = {};

  const byId = (id) => document.getElementById(id);
  const count = (n) => (n === null || n === undefined ? DASH : numbers.format(n));
  const decimal = (n) => (n === null || n === undefined ? DASH : n.toFixed(n >= 100 ? 0 : 1));

  function setText(id, text) {
    const element = byId(id);
    if (element.textContent !== text) element.textContent = text;
  }

  function age(seconds) {
    if (seconds < 90) return `${Math.round(seconds)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
    return `${Math.round(seconds / 86400)} days`;
  }

  // A Unix time as local date and time, with how long ago (or how far ahead) it is.
  function moment(unix, now) {
    if (!unix) return DASH;
    const when = new Date(unix * 1000).toLocaleString("sv-SE"); // yyyy-mm-dd hh:mm:ss, unambiguous
    const delta = now - unix;
    return delta >= 0 ? `${when} (${age(delta)} ago)` : `${when} (in ${age(-delta)})`;
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function fillRows(tableId, rows, columns, emptyText) {
    const body = byId(tableId).tBodies[0];
    const fresh = document.createDocumentFragment();
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = cell(emptyText, "empty");
      td.colSpan = columns;
      tr.appendChild(td);
      fresh.appendChild(tr);
    }
    for (const row of rows) fresh.appendChild(row);
    body.replaceChildren(fresh);
  }

  function renderTiles(s) {
    setText("in-rate", decimal(s.documents.in_per_second));
    setText("in-total", count(s.documents.in_total));
    setText("out-rate", decimal(s.documents.out_per_second));
    setText("out-total", count(s.documents.out_total));
    setText("latency-p50", decimal(s.latency_ms.p50));
    setText("latency-p90", decimal(s.latency_ms.p90));
    setText("latency-count", count(s.latency_ms.count));
    setText("ledger-size", count(s.ledger.size));
    setText("last-seal", moment(s.ledger.last_seal, s.time));
    setText("last-seal-size", count(s.ledger.last_seal_size));
    setText("workers-running", count(s.workers.running));
    setText("workers-configured", count(s.workers.configured));
    setText("crl-next-update", moment(s.crl_next_update, s.time));
    setText("held", count(s.held));
    setText("axis-queued", count(s.axis.queued));
    setText("axis-sent", count(s.axis.sent));
    setText("axis-received", count(s.axis.received));
    setText("axis-errors", count(s.axis.errors));
    setText("axis-last-success", s.axis.last_success ? moment(s.axis.last_success, s.time) : "never");
  }

  function renderTables(s) {
    fillRows(
      "lag",
      Object.entries(s.lag).map(([topic, records]) => {
        const tr = document.createElement("tr");
        tr.dataset.topic = topic;
        tr.append(cell(topic), cell(count(records), "n"));
        return tr;
      }),
      2,
      "no worker has reported yet",
    );
    const most = Math.max(1, ...Object.values(s.rejections));
    fillRows(
      "rejections",
      Object.entries(s.rejections).map(([reason, n]) => {
        const tr = document.createElement("tr");
        tr.dataset.reason = reason;
        const bar = document.createElement("span");
        bar.className = "bar";
        bar.style.width = `${(100 * n) / most}%`;
        const barCell = cell("");
        barCell.appendChild(bar);
        tr.append(cell(reason), cell(count(n), "n"), barCell);
        return tr;
      }),
      3,
      "none",
    );
    fillRows(
      "dead-letters",
      s.dead_letters.map((letter) => {
        const tr = document.createElement("tr");
        tr.dataset.reason = letter.reason;
        const command = document.createElement("code");
        command.textContent = letter.replay;
        const commandCell = cell("");
        commandCell.appendChild(command);
        tr.append(cell(letter.reason), cell(count(letter.count), "n"), commandCell);
        return tr;
      }),
      3,
      "none",
    );
    fillRows(
      "agencies",
      s.agencies.map((a) => {
        const tr = document.createElement("tr");
        tr.dataset.agency = a.organ_id;
        tr.append(
          cell(a.organ_id),
          cell(count(a.sent), "n sent"),
          cell(count(a.received), "n received"),
          cell(count(a.refused), "n refused"),
          cell(count(a.statuses), "n statuses"),
          cell(count(a.outstanding), "n outstanding"),
          cell(count(a.overdue), "n overdue"),
          cell(count(a.vxp_failed), "n vxp-failed"),
        );
        return tr;
      }),
      8,
      "no documents yet",
    );
  }

  function chart(id, names, colours, data) {
    const container = byId(id);
    const key = names.join("\u0000");
    if (!charts[id] || charts[id].key !== key) {
      if (charts[id]) charts[id].plot.destroy();
      const series = [{}, ...names.map((label, i) => ({ label, stroke: colours[i % colours.length], width: 2 }))];
      const options = { width: container.clientWidth || 400, height: 200, series, scales: { x: { time: true } } };
      charts[id] = { key, plot: new uPlot(options, data, container) };
    } else {
      charts[id].plot.setData(data);
    }
  }

  const PALETTE = ["#1d4ed8", "#15803d", "#b45309", "#7c3aed", "#b91c1c", "#0e7490"];

  function renderCharts(s) {
    if (typeof uPlot === "undefined") return;
    const series = s.series;
    chart("chart-throughput", ["in", "out"], PALETTE, [series.t, series.in, series.out]);
    chart("chart-latency", ["p50", "p90"], PALETTE, [series.t, series.p50_ms, series.p90_ms]);
    const topics = Object.keys(series.lag);
    chart("chart-lag", topics, PALETTE, [series.t, ...topics.map((topic) => series.lag[topic])]);
  }

  function render(s) {
    renderTiles(s);
    renderTables(s);
    renderCharts(s);
    setText("updated", new Date(s.time * 1000).toLocaleTimeString("sv-SE"));
    const state = byId("state");
    state.dataset.state = "live";
    state.textContent = "live";
  }

  async function poll() {
    try {
      const response = await fetch("api/summary", { cache: "no-store" });
      if (!response.ok) throw new Error(`api/summary answered ${response.status}`);
      render(await response.json());
    } catch (error) {
      const state = byId("state");
      state.dataset.state = "stale";
      state.textContent = "not updating";
      state.title = String(error);
    } finally {
      window.setTimeout(poll, POLL_MS);
    }
  }

  window.addEventListener("resize", () => {
    for (const id of Object.keys(charts)) {
      const width = byId(id).clientWidth;
      if (width) charts[id].plot.setSize({ width, height: 200 });
    }
  });
  poll();
})();
