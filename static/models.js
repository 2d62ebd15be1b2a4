// Models page: accuracy of original vs retrained models (held-out MNIST and users' drawings, overall and per
// digit), both over model versions, drawings per digit, recent drawings, where original and retrained disagree,
// confusion matrices, and the admin's download of the retrained models; from /api/stats and /api/samples/recent.
// Every figure the server may not report yet is optional: "n/a" or a note instead.

import { requestJSON } from "./api.js";

const MODELS = [
  ["fnn", "FNN"],
  ["cnn", "CNN"],
];
const VARIANTS = ["original", "retrained"];
const RECENT_SHOWN = 24;
const TOKEN_KEY = "digits.adminToken"; // shared with the review page
const SVG = "http://www.w3.org/2000/svg";

const $ = (selector) => document.querySelector(selector);
const isNumber = (value) => typeof value === "number" && Number.isFinite(value);

function percent(value) {
  return isNumber(value) ? `${(value * 100).toFixed(1)}%` : "–";
}

function element(tag, { className, text, attributes = {} } = {}) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  if (className) node.setAttribute("class", className);
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

// --- accuracy table ------------------------------------------------------------------------------------

function showAccuracy(accuracy, modelVersion) {
  const rows = [];
  for (const [model, title] of MODELS) {
    for (const variant of VARIANTS) {
      const figures = accuracy[model][variant];
      const row = element("tr");
      const name = element("th", { attributes: { scope: "row" } });
      name.append(element("span", { className: `swatch ${model} ${variant}` }), `${title} ${variant}`);
      const heldOut = element("td", { text: isNumber(figures.t10k) ? percent(figures.t10k) : "n/a" });
      const measuredAt = figures.t10k_version;
      if (variant === "retrained" && isNumber(figures.t10k) && isNumber(measuredAt) && measuredAt !== modelVersion) {
        heldOut.append(element("span", { className: "measured", text: `measured at version ${measuredAt}` }));
      }
      row.append(
        name,
        heldOut,
        element("td", { text: percent(figures.prequential) }),
        element("td", { text: percent(figures.recent) }),
        element("td", { text: String(figures.n_scored) }),
      );
      rows.push(row);
    }
  }
  $("#accuracy").replaceChildren(...rows);
}

// --- line charts (inline SVG) ----------------------------------------------------------------------------

/**
 * Draw a line chart of accuracy over model versions into `holder`, at its own width in CSS pixels (so that
 * text and lines keep their size on any screen), or `empty` as text when no series has a point.
 * series: [{ className: "fnn retrained", points: [{ version, value }] }], drawn in order, a dot at each end;
 * references: [{ className, value }], horizontal lines across the whole plot; range: [low, high] of the y axis.
 */
function lineChart(holder, { series, references = [], range, label, empty }) {
  const versions = series.flatMap((line) => line.points.map((point) => point.version));
  if (!versions.length) {
    holder.className = "chart-empty";
    holder.textContent = empty;
    return;
  }
  const width = Math.max(280, holder.clientWidth);
  const height = 240;
  const margin = { left: 48, right: 12, top: 24, bottom: 36 };
  const first = Math.min(...versions);
  const last = Math.max(...versions);
  const [low, high] = range;
  const x = (version) =>
    margin.left + (last === first ? 0.5 : (version - first) / (last - first)) * (width - margin.left - margin.right);
  const y = (value) => margin.top + ((high - value) / (high - low)) * (height - margin.top - margin.bottom);

  const svg = element("svg:svg", {
    className: "chart",
    attributes: { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label(first, last) },
  });
  svg.append(
    element("svg:text", {
      text: `accuracy, axis ${axisPercent(low)} to ${axisPercent(high)}`,
      attributes: { x: 4, y: 12, "text-anchor": "start" },
    }),
  );
  for (const level of levelTicks(low, high)) {
    svg.append(
      element("svg:line", {
        className: "grid",
        attributes: { x1: margin.left, x2: width - margin.right, y1: y(level), y2: y(level) },
      }),
      element("svg:text", {
        text: axisPercent(level),
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
  for (const line of series) {
    const path = line.points.map(
      (point, i) => `${i ? "L" : "M"}${x(point.version).toFixed(1)},${y(point.value).toFixed(1)}`,
    );
    svg.append(element("svg:path", { className: `series ${line.className}`, attributes: { d: path.join("") } }));
    const end = line.points[line.points.length - 1];
    if (end) {
      svg.append(
        element("svg:circle", { className: line.className, attributes: { cx: x(end.version), cy: y(end.value), r: 3.5 } }),
      );
    }
  }
  for (const reference of references) {
    const level = y(reference.value).toFixed(1);
    svg.append(
      element("svg:path", {
        className: `series reference ${reference.className}`,
        attributes: { d: `M${margin.left},${level}H${width - margin.right}` },
      }),
    );
  }
  holder.className = "chart-holder";
  holder.replaceChildren(svg);
}

function axisPercent(level) {
  return `${Number((level * 100).toFixed(1))}%`;
}

/** Three to six round levels from low to high (both included when they are multiples of the step). */
function levelTicks(low, high) {
  const span = high - low;
  const step = [0.01, 0.025, 0.05, 0.1, 0.25].find((s) => span / s <= 5 + 1e-9) ?? span / 4;
  const levels = [];
  for (let level = Math.ceil(low / step - 1e-9) * step; level <= high + 1e-9; level += step) levels.push(level);
  return levels;
}

function versionTicks(first, last, most) {
  if (first === last) return [first];
  const span = last - first;
  const step = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000].find((s) => span / s <= most) ?? Math.ceil(span / most);
  const ticks = [];
  for (let version = Math.ceil(first / step) * step; version <= last; version += step) ticks.push(version);
  return ticks;
}

/** The held-out figures live around 90-100%: an axis from 0 would flatten them. Whole 5% steps around them. */
function zoomedRange(values) {
  const lowest = Math.min(...values);
  const highest = Math.max(...values);
  let low = Math.max(0, Math.floor((lowest - 0.005) * 20) / 20);
  const high = Math.min(1, Math.ceil((highest + 0.005) * 20) / 20);
  if (high - low < 0.05) low = Math.max(0, high - 0.05);
  return [low, high];
}

function showHistory(history) {
  const series = [];
  // Retrained lines first and thicker, dashed originals on top: where they coincide, both stay visible.
  for (const variant of ["retrained", "original"]) {
    for (const [model] of MODELS) {
      const key = `${model}.${variant}`;
      const points = history.filter((point) => isNumber(point[key]));
      series.push({
        className: `${model} ${variant}`,
        points: points.map((point) => ({ version: point.model_version, value: point[key] })),
      });
    }
  }
  const latest = history[history.length - 1];
  lineChart($("#history"), {
    series,
    range: [0, 1],
    empty: "No labelled drawings yet: the chart starts with the first one.",
    label: (first, last) => {
      const summary = MODELS.flatMap(([model, title]) =>
        VARIANTS.map((variant) => `${title} ${variant} ${percent(latest[`${model}.${variant}`])}`),
      ).join(", ");
      return `Accuracy on the previous 100 drawings, model versions ${first} to ${last}. At version ${last}: ${summary}.`;
    },
  });
}

function showHeldOut(heldout, accuracy) {
  const holder = $("#heldout");
  const history = Array.isArray(heldout?.history) ? heldout.history : null;
  if (!history) {
    holder.className = "chart-empty";
    holder.textContent = "n/a: this server does not report held-out accuracy over versions.";
    return;
  }
  const series = MODELS.map(([model]) => ({
    className: `${model} retrained`,
    points: history.filter((point) => isNumber(point[model])).map((point) => ({ version: point.model_version, value: point[model] })),
  }));
  const references = MODELS.flatMap(([model]) => {
    const value = accuracy[model].original.t10k;
    return isNumber(value) ? [{ className: `${model} original`, value }] : [];
  });
  const values = [...series.flatMap((line) => line.points.map((point) => point.value)), ...references.map((r) => r.value)];
  const range = values.length ? zoomedRange(values) : [0, 1];
  const n = isNumber(heldout.n) ? heldout.n.toLocaleString("en") : "the";
  lineChart(holder, {
    series,
    references,
    range,
    empty: "No held-out measurement yet: the learner measures the retrained models every so many versions.",
    label: (first, last) => {
      const summary = MODELS.map(([model, title]) => {
        const line = series.find((s) => s.className === `${model} retrained`);
        const end = line.points[line.points.length - 1];
        const original = accuracy[model].original.t10k;
        return `${title} retrained ${end ? `${percent(end.value)} at version ${end.version}` : "n/a"}, ${title} original ${percent(original)}`;
      }).join("; ");
      return `Accuracy on ${n} held-out MNIST digits, model versions ${first} to ${last}, axis from ${axisPercent(range[0])} to ${axisPercent(range[1])}. ${summary}.`;
    },
  });
}

/** Redraw a chart when its holder changes width (a phone turned, a window resized). */
function redrawOnResize(holder, draw) {
  let width = holder.clientWidth;
  new ResizeObserver(() => {
    if (holder.clientWidth !== width) {
      width = holder.clientWidth;
      draw();
    }
  }).observe(holder);
}

// --- accuracy per digit ---------------------------------------------------------------------------------------

function showPerDigit(accuracy, usersConfusion) {
  const perLabel = (model, variant) => {
    const values = accuracy[model][variant].per_label;
    return Array.isArray(values) ? values : null;
  };
  // "n/a": the server does not report the figure; "–": nothing of that digit scored yet.
  const figure = (values, digit) => (values === null ? "n/a" : percent(values[digit]));
  const counted = usersConfusion?.["fnn.original"];
  const rows = Array.from({ length: 10 }, (_, digit) => {
    const row = element("tr");
    row.append(element("th", { text: String(digit), attributes: { scope: "row" } }));
    for (const [model] of MODELS) {
      const originals = perLabel(model, "original");
      const retraineds = perLabel(model, "retrained");
      const original = originals?.[digit];
      const retrained = retraineds?.[digit];
      const originalCell = element("td", { text: figure(originals, digit) });
      if (model !== MODELS[0][0]) originalCell.classList.add("group-start");
      row.append(originalCell);
      const cell = element("td", { text: figure(retraineds, digit) });
      if (isNumber(original) && isNumber(retrained) && Math.abs(retrained - original) > 1e-9) {
        const better = retrained > original;
        cell.classList.add(better ? "better" : "worse");
        cell.prepend(
          element("span", { className: "mark", text: better ? "▲" : "▼", attributes: { "aria-hidden": "true" } }),
          element("span", { className: "visually-hidden", text: better ? "better: " : "worse: " }),
        );
      }
      row.append(cell);
    }
    const scored = Array.isArray(counted?.[digit]) ? counted[digit].reduce((sum, count) => sum + count, 0) : null;
    row.append(element("td", { text: scored === null ? "n/a" : String(scored) }));
    return row;
  });
  $("#per-digit").replaceChildren(...rows);
}

// --- drawings per digit, recent drawings, disagreements --------------------------------------------------

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

function thumbnail(sample, alt) {
  const image = element("img", { attributes: { src: sample.image_url, alt, width: 64, height: 64, loading: "lazy" } });
  if (isNumber(sample.created)) image.title = new Date(sample.created * 1000).toLocaleString();
  return image;
}

function showRecent(samples) {
  const items = samples.slice(0, RECENT_SHOWN).map((sample) => {
    const item = element("li");
    const figure = element("figure");
    const labelled = sample.label === null || sample.label === undefined ? "unlabelled" : String(sample.label);
    figure.append(thumbnail(sample, `Drawing labelled ${labelled}`), element("figcaption", { text: labelled }));
    item.append(figure);
    return item;
  });
  $("#recent").replaceChildren(...items);
  $("#recent-empty").hidden = items.length > 0;
}

function answered(digit) {
  return digit === null || digit === undefined ? "?" : String(digit);
}

function showDisagreements(disagreements) {
  const note = $("#disagreements-empty");
  if (!Array.isArray(disagreements)) {
    $("#disagreements").replaceChildren();
    note.textContent = "n/a: this server does not report disagreements.";
    note.hidden = false;
    return;
  }
  const items = disagreements.map((sample) => {
    const item = element("li");
    item.dataset.sampleId = sample.sample_id;
    const figure = element("figure");
    const caption = element("figcaption");
    caption.append(element("span", { className: "label", text: String(sample.label) }));
    for (const [model, title] of MODELS) {
      const before = answered(sample.predicted?.[`${model}.original`]);
      const after = answered(sample.predicted?.[`${model}.retrained`]);
      const said = element("span", { className: "said-pair", text: before === after ? `${title} ${before}` : `${title} ${before}→${after}` });
      said.dataset.model = model;
      said.title =
        before === after
          ? `${title} original and retrained both answered ${before}`
          : `${title} original answered ${before}, retrained ${after}`;
      caption.append(said);
    }
    figure.append(thumbnail(sample, `Drawing ${Number(sample.sample_id)}, labelled ${sample.label}`), caption);
    item.append(figure);
    return item;
  });
  $("#disagreements").replaceChildren(...items);
  note.textContent = "None yet: on every drawing so far, each retrained model answered as its original did.";
  note.hidden = items.length > 0;
}

// --- confusion matrices --------------------------------------------------------------------------------------

function confusionTable(title, matrix) {
  const figure = element("figure");
  const table = element("table", { className: "confusion" });
  table.append(element("caption", { text: `${title}: rows true digit, columns answer` }));
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
      if (right && count > 0) cell.classList.add("right");
      cell.title = `true ${trueDigit}, answered ${answer}: ${count}`;
      tr.append(cell);
    });
    tbody.append(tr);
  });
  table.append(thead, tbody);
  figure.append(table);
  return figure;
}

function isMatrix(value) {
  return Array.isArray(value) && value.length === 10 && value.every((row) => Array.isArray(row) && row.length === 10);
}

function showConfusion(confusion) {
  const tables = MODELS.flatMap(([model, title]) =>
    isMatrix(confusion?.[model]) ? [confusionTable(`${title} original on MNIST t10k`, confusion[model])] : [],
  );
  if (!tables.length) tables.push(element("p", { className: "empty-note", text: "No confusion matrices: models/metrics.json is missing." }));
  $("#confusion").replaceChildren(...tables);
}

function showUsersConfusion(usersConfusion) {
  const model = $("#users-confusion-model input:checked").value;
  const title = MODELS.find(([name]) => name === model)[1];
  const matrices = VARIANTS.map((variant) => usersConfusion?.[`${model}.${variant}`]);
  let shown;
  if (!matrices.every(isMatrix)) {
    shown = [element("p", { className: "empty-note", text: "n/a: this server does not report confusion on users' drawings." })];
  } else if (matrices[0].flat().every((count) => count === 0)) {
    shown = [element("p", { className: "empty-note", text: "No drawings scored yet." })];
  } else {
    shown = VARIANTS.map((variant, i) => confusionTable(`${title} ${variant} on users' drawings`, matrices[i]));
  }
  $("#users-confusion").replaceChildren(...shown);
}

// --- downloading the retrained models (admin) -----------------------------------------------------------------

/** The file name in a Content-Disposition header (RFC 6266: filename* first, then filename), or null. */
function dispositionName(header) {
  if (!header) return null;
  const extended = /filename\*\s*=\s*[^']*'[^']*'([^;]+)/i.exec(header);
  if (extended) {
    try {
      return decodeURIComponent(extended[1].trim());
    } catch {
      // fall back to the plain parameter
    }
  }
  const plain = /filename\s*=\s*("([^"]*)"|[^;]+)/i.exec(header);
  return plain ? (plain[2] ?? plain[1]).trim() : null;
}

function showExportStatus(text, failed) {
  const status = $("#export-status");
  status.textContent = text;
  status.classList.toggle("error", failed);
}

async function downloadModels(button) {
  const token = sessionStorage.getItem(TOKEN_KEY) || "";
  button.setAttribute("aria-disabled", "true");
  showExportStatus("Preparing the zip…", false);
  try {
    let response;
    try {
      response = await fetch("/api/models/export", { headers: { Authorization: `Bearer ${token}` } });
    } catch {
      throw new Error("The server could not be reached. Check the connection and try again.");
    }
    if (!response.ok) {
      const data = await response.json().catch(() => null);
      if (response.status === 401 || response.status === 403) sessionStorage.removeItem(TOKEN_KEY);
      throw new Error(data && typeof data.message === "string" ? data.message : `The server answered ${response.status}.`);
    }
    const blob = await response.blob();
    const name = dispositionName(response.headers.get("Content-Disposition")) || "digits-models.zip";
    const url = URL.createObjectURL(blob);
    const link = element("a", { attributes: { href: url, download: name } });
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    showExportStatus(`Downloaded ${name} (${(blob.size / 1e6).toFixed(1)} MB).`, false);
  } catch (error) {
    showExportStatus(error.message, true);
  } finally {
    button.removeAttribute("aria-disabled");
  }
}

function setUpExport() {
  const form = $("#export");
  $("#export-token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    if (button.getAttribute("aria-disabled") === "true") return;
    sessionStorage.setItem(TOKEN_KEY, $("#export-token").value);
    downloadModels(button);
  });
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
  if (isNumber(stats.heldout?.n)) {
    for (const span of document.querySelectorAll(".heldout-n")) span.textContent = stats.heldout.n.toLocaleString("en");
  }
  showAccuracy(stats.accuracy, stats.model_version);
  const history = Array.isArray(stats.history) ? stats.history : [];
  showHistory(history);
  redrawOnResize($("#history"), () => showHistory(history));
  showHeldOut(stats.heldout, stats.accuracy);
  redrawOnResize($("#heldout"), () => showHeldOut(stats.heldout, stats.accuracy));
  showPerDigit(stats.accuracy, stats.users_confusion);
  showPerLabel(stats.samples.per_label);
  showRecent(recent.samples);
  showDisagreements(stats.disagreements);
  showUsersConfusion(stats.users_confusion);
  $("#users-confusion-model").addEventListener("change", () => showUsersConfusion(stats.users_confusion));
  showConfusion(stats.confusion);
}

setUpExport();
load().catch((error) => {
  showNotice(`The figures could not be loaded: ${error.message}`);
  $("#history").textContent = "Unavailable.";
  $("#heldout").textContent = "Unavailable.";
});
