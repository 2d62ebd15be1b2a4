// Models page: accuracy of original vs retrained models, its history over model versions, drawings per
// digit, recent drawings and the originals' confusion matrices, from /api/stats and /api/samples/recent.

import { requestJSON } from "./api.js";

const MODELS = [
  ["fnn", "FNN"],
  ["cnn", "CNN"],
];
const VARIANTS = ["original", "retrained"];
const RECENT_SHOWN = 24;
const SVG = "http://www.w3.org/2000/svg";

const $ = (selector) => document.querySelector(selector);

function percent(value) {
  return typeof value === "number" ? `${(value * 100).toFixed(1)}%` : "–";
}

function element(tag, { className, text, attributes = {} } = {}) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  if (className) node.setAttribute("class", className);
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

// --- accuracy table ------------------------------------------------------------------------------------

function showAccuracy(accuracy) {
  const rows = [];
  for (const [model, title] of MODELS) {
    for (const variant of VARIANTS) {
      const figures = accuracy[model][variant];
      const row = element("tr");
      const name = element("th", { attributes: { scope: "row" } });
      name.append(element("span", { className: `swatch ${model} ${variant}` }), `${title} ${variant}`);
      row.append(
        name,
        element("td", { text: typeof figures.t10k === "number" ? percent(figures.t10k) : "n/a" }),
        element("td", { text: percent(figures.prequential) }),
        element("td", { text: percent(figures.recent) }),
        element("td", { text: String(figures.n_scored) }),
      );
      rows.push(row);
    }
  }
  $("#accuracy").replaceChildren(...rows);
}

// --- history chart (inline SVG) ----------------------------------------------------------------------------

function showHistory(history) {
  const holder = $("#history");
  if (!history.length) {
    holder.className = "chart-empty";
    holder.textContent = "No labelled drawings yet: the chart starts with the first one.";
    return;
  }
  // Drawn at the holder's own width in CSS pixels, so that text and lines keep their size on any screen.
  const width = Math.max(280, holder.clientWidth);
  const height = 240;
  const margin = { left: 44, right: 12, top: 10, bottom: 36 };
  const versions = history.map((point) => point.model_version);
  const first = Math.min(...versions);
  const last = Math.max(...versions);
  const x = (version) =>
    margin.left + (last === first ? 0.5 : (version - first) / (last - first)) * (width - margin.left - margin.right);
  const y = (accuracy) => margin.top + (1 - accuracy) * (height - margin.top - margin.bottom);

  const latest = history[history.length - 1];
  const summary = MODELS.flatMap(([model, title]) =>
    VARIANTS.map((variant) => `${title} ${variant} ${percent(latest[`${model}.${variant}`])}`),
  ).join(", ");
  const svg = element("svg:svg", {
    className: "chart",
    attributes: {
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: "img",
      "aria-label": `Accuracy on the previous 100 drawings, model versions ${first} to ${last}. At version ${last}: ${summary}.`,
    },
  });
  for (const level of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(
      element("svg:line", {
        className: "grid",
        attributes: { x1: margin.left, x2: width - margin.right, y1: y(level), y2: y(level) },
      }),
      element("svg:text", {
        text: `${level * 100}%`,
        attributes: { x: margin.left - 8, y: y(level) + 4, "text-anchor": "end" },
      }),
    );
  }
  for (const version of versionTicks(first, last, Math.floor(width / 70))) {
    svg.append(
      element("svg:text", {
        text: String(version),
        attributes: { x: x(version), y: height - margin.bottom + 18, "text-anchor": "middle" },
      }),
    );
  }
  svg.append(
    element("svg:text", {
      text: "model version",
      attributes: { x: width - margin.right, y: height - 2, "text-anchor": "end" },
    }),
  );
  // Retrained lines first and thicker, dashed originals on top: where they coincide, both stay visible.
  for (const variant of ["retrained", "original"]) {
    for (const [model] of MODELS) {
      const key = `${model}.${variant}`;
      const points = history.filter((point) => typeof point[key] === "number");
      const path = points.map((point, i) => `${i ? "L" : "M"}${x(point.model_version).toFixed(1)},${y(point[key]).toFixed(1)}`);
      svg.append(element("svg:path", { className: `series ${model} ${variant}`, attributes: { d: path.join("") } }));
      const end = points[points.length - 1];
      if (end) {
        svg.append(
          element("svg:circle", {
            className: `${model} ${variant}`,
            attributes: { cx: x(end.model_version), cy: y(end[key]), r: 3.5 },
          }),
        );
      }
    }
  }
  holder.className = "chart-holder";
  holder.replaceChildren(svg);
}

function versionTicks(first, last, most) {
  if (first === last) return [first];
  const span = last - first;
  const step = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000].find((s) => span / s <= most) ?? Math.ceil(span / most);
  const ticks = [];
  for (let version = Math.ceil(first / step) * step; version <= last; version += step) ticks.push(version);
  return ticks;
}

// --- drawings per digit and recent drawings --------------------------------------------------------------

function showPerLabel(perLabel) {
  const counts = Array.from({ length: 10 }, (_, digit) => perLabel[String(digit)] ?? 0);
  const most = Math.max(1, ...counts);
  const rows = counts.map((count, digit) => {
    const row = element("div", { className: "bar-row", attributes: { role: "listitem" } });
    const track = element("span", { className: "track" });
    const fill = element("span", { className: "fill" });
    fill.style.width = `${(count / most) * 100}%`;
    track.append(fill);
    row.append(
      element("span", { className: "digit", text: String(digit) }),
      track,
      element("span", { className: "count", text: String(count) }),
    );
    row.setAttribute("aria-label", `${digit}: ${count} drawing${count === 1 ? "" : "s"}`);
    return row;
  });
  $("#per-label").replaceChildren(...rows);
}

function showRecent(samples) {
  const items = samples.slice(0, RECENT_SHOWN).map((sample) => {
    const item = element("li");
    const figure = element("figure");
    const labelled = sample.label === null || sample.label === undefined ? "unlabelled" : String(sample.label);
    const image = element("img", {
      attributes: { src: sample.image_url, alt: `Drawing labelled ${labelled}`, width: 64, height: 64, loading: "lazy" },
    });
    if (typeof sample.created === "number") image.title = new Date(sample.created * 1000).toLocaleString();
    figure.append(image, element("figcaption", { text: labelled }));
    item.append(figure);
    return item;
  });
  $("#recent").replaceChildren(...items);
  $("#recent-empty").hidden = items.length > 0;
}

// --- confusion matrices --------------------------------------------------------------------------------------

function confusionTable(title, matrix) {
  const figure = element("figure");
  const table = element("table", { className: "confusion" });
  table.append(element("caption", { text: `${title}: true digit (rows) by answer (columns)` }));
  const head = element("tr");
  head.append(element("td"));
  for (let digit = 0; digit < 10; digit++) head.append(element("th", { text: String(digit), attributes: { scope: "col" } }));
  const thead = element("thead");
  thead.append(head);
  const worstMistake = Math.max(1, ...matrix.flatMap((row, i) => row.filter((_, j) => j !== i)));
  const tbody = element("tbody");
  matrix.forEach((row, trueDigit) => {
    const rowTotal = Math.max(1, row.reduce((sum, count) => sum + count, 0));
    const tr = element("tr");
    tr.append(element("th", { text: String(trueDigit), attributes: { scope: "row" } }));
    row.forEach((count, answer) => {
      const cell = element("td", { text: String(count) });
      const right = answer === trueDigit;
      const strength = right ? count / rowTotal : count / worstMistake;
      // At most 45% colour under the text, so that numbers keep their contrast in both themes.
      if (count > 0) {
        const colour = right ? "var(--accent)" : "var(--cnn)";
        cell.style.backgroundColor = `color-mix(in srgb, ${colour} ${Math.round(8 + strength * 37)}%, transparent)`;
      }
      if (right) cell.classList.add("right");
      cell.title = `true ${trueDigit}, answered ${answer}: ${count}`;
      tr.append(cell);
    });
    tbody.append(tr);
  });
  table.append(thead, tbody);
  figure.append(table);
  return figure;
}

function showConfusion(confusion) {
  const tables = MODELS.flatMap(([model, title]) =>
    Array.isArray(confusion?.[model]) ? [confusionTable(`${title} original`, confusion[model])] : [],
  );
  if (!tables.length) tables.push(element("p", { className: "empty-note", text: "No confusion matrices: models/metrics.json is missing." }));
  $("#confusion").replaceChildren(...tables);
}

// --- loading -----------------------------------------------------------------------------------------------------

function showNotice(text) {
  $("#notice").textContent = text;
}

async function load() {
  const [stats, recent] = await Promise.all([requestJSON("/api/stats"), requestJSON("/api/samples/recent")]);
  $("#model-version").textContent = String(stats.model_version);
  $("#total-samples").textContent = String(stats.samples.total);
  const degraded = Array.isArray(stats.degraded) ? stats.degraded : [];
  if (degraded.length) {
    showNotice(
      `${degraded.join(" and ")} ${degraded.length > 1 ? "are" : "is"} doing clearly worse than ${degraded.length > 1 ? "their originals" : "its original"} on recent drawings.`,
    );
  }
  showAccuracy(stats.accuracy);
  const history = Array.isArray(stats.history) ? stats.history : [];
  showHistory(history);
  let width = $("#history").clientWidth;
  new ResizeObserver(() => {
    if ($("#history").clientWidth !== width) {
      width = $("#history").clientWidth;
      showHistory(history);
    }
  }).observe($("#history"));
  showPerLabel(stats.samples.per_label);
  showRecent(recent.samples);
  showConfusion(stats.confusion);
}

load().catch((error) => {
  showNotice(`The figures could not be loaded: ${error.message}`);
  $("#history").textContent = "Unavailable.";
});
