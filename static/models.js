// Models page: original vs retrained accuracy and samples per label, from /api/stats.
"use strict";

function percent(value) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)}%`;
}

function cell(text, header = false) {
  const element = document.createElement(header ? "th" : "td");
  if (header) element.scope = "row";
  element.textContent = text;
  return element;
}

async function load() {
  const stats = await (await fetch("/api/stats")).json();
  document.getElementById("model-version").textContent = String(stats.model_version);
  document.getElementById("total-samples").textContent = String(stats.samples.total);
  const rows = [];
  for (const [model, title] of [["fnn", "FNN"], ["cnn", "CNN"]]) {
    for (const variant of ["original", "retrained"]) {
      const figures = stats.accuracy[model][variant];
      const row = document.createElement("tr");
      row.append(
        cell(`${title} ${variant}`, true),
        cell(variant === "original" ? percent(figures.t10k) : "–"),
        cell(percent(figures.prequential)),
        cell(percent(figures.recent)),
        cell(String(figures.n_scored)),
      );
      rows.push(row);
    }
  }
  document.getElementById("accuracy").replaceChildren(...rows);
  const counts = Object.values(stats.samples.per_label);
  const most = Math.max(1, ...counts);
  document.getElementById("per-label").replaceChildren(
    ...counts.map((count, digit) => {
      const row = document.createElement("div");
      row.className = "bar-row";
      const name = document.createElement("span");
      name.textContent = String(digit);
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${(count / most) * 100}%`;
      const value = document.createElement("span");
      value.textContent = String(count);
      row.append(name, bar, value);
      return row;
    }),
  );
}

load().catch((error) => {
  document.getElementById("model-version").textContent = `unavailable (${error.message})`;
});
