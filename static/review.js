// Review page: the review queue from /api/review (admin token, kept for this tab only), filters by label and
// source, and exclude / restore through /api/admin/exclude and /api/admin/restore.

import { requestJSON } from "./api.js";

const PAGE_SIZE = 20;
const TOKEN_KEY = "digits.adminToken";
const MODEL_NAMES = [
  ["fnn.original", "FNN original"],
  ["cnn.original", "CNN original"],
  ["fnn.retrained", "FNN retrained"],
  ["cnn.retrained", "CNN retrained"],
];

const $ = (selector) => document.querySelector(selector);
let offset = 0;

function admin(url, body) {
  const token = sessionStorage.getItem(TOKEN_KEY) || "";
  return requestJSON(url, { body, headers: { Authorization: `Bearer ${token}` } });
}

function element(tag, { className, text } = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function sampleCard(sample, excludedView) {
  const item = element("li", { className: "sample" });
  item.dataset.sampleId = sample.sample_id;
  const image = element("img");
  image.src = sample.image_url; // signed for this page: excluded drawings are not public
  image.alt = `Drawing ${Number(sample.sample_id)}, labelled ${sample.label}`;
  image.width = image.height = 84;
  const facts = element("div", { className: "sample-facts" });
  facts.append(
    element("p", { className: "sample-label", text: `Labelled ${sample.label}` }),
    element("p", { className: "fine", text: `#${Number(sample.sample_id)} · ${sample.source} · ${sample.disagreeing} of 4 models disagreed` }),
  );
  const said = element("ul", { className: "said" });
  for (const [name, title] of MODEL_NAMES) {
    const probability = sample.probability[name];
    const chance = typeof probability === "number" ? ` (${(probability * 100).toFixed(1)}% for ${sample.label})` : "";
    const line = element("li", { text: `${title}: ${sample.predicted[name]}${chance}` });
    if (sample.predicted[name] !== sample.label) line.className = "disagrees";
    said.append(line);
  }
  facts.append(said);
  const action = element("button", { text: excludedView ? "Restore" : "Exclude" });
  action.type = "button";
  action.setAttribute("aria-label", `${excludedView ? "Restore" : "Exclude"} drawing ${Number(sample.sample_id)}`);
  action.addEventListener("click", () => change(excludedView ? "restore" : "exclude", sample.sample_id, action));
  item.append(image, facts, action);
  return item;
}

async function change(kind, sampleId, button) {
  button.setAttribute("aria-disabled", "true");
  try {
    const result = await admin(`/api/admin/${kind}`, { sample_ids: [sampleId] });
    const done = kind === "exclude" ? "Excluded" : "Restored";
    $("#status").textContent =
      result.status === "pending"
        ? `${done} drawing ${Number(sampleId)}; the models are still relearning.`
        : `${done} drawing ${Number(sampleId)}.`;
    $("#status").classList.remove("error");
    await load();
  } catch (error) {
    showError(error);
    button.removeAttribute("aria-disabled");
  }
}

function showError(error) {
  $("#status").textContent = error.message;
  $("#status").classList.add("error");
}

async function load() {
  const query = new URLSearchParams({ offset, limit: PAGE_SIZE });
  if ($("#label").value) query.set("label", $("#label").value);
  if ($("#source").value) query.set("source", $("#source").value);
  const excludedView = $("#excluded").checked;
  if (excludedView) query.set("excluded", "1");
  const [queue, stats] = await Promise.all([admin(`/api/review?${query}`), requestJSON("/api/stats")]);
  $("#model-version").textContent = queue.model_version;
  $("#total-samples").textContent = stats.samples.total;
  $("#queue-title").textContent = excludedView ? "Excluded" : "In the queue";
  $("#queue-total").textContent = queue.total;
  const sources = $("#source");
  for (const source of queue.sources) {
    if (![...sources.options].some((option) => option.value === source)) sources.append(new Option(source, source));
  }
  $("#queue").replaceChildren(...queue.samples.map((sample) => sampleCard(sample, excludedView)));
  if (!queue.samples.length) $("#queue").append(element("li", { className: "fine", text: "No drawings here." }));
  const last = Math.min(queue.total, offset + queue.samples.length);
  $("#page").textContent = queue.total ? `${offset + 1}–${last} of ${queue.total}` : "";
  $("#previous").disabled = offset === 0;
  $("#next").disabled = last >= queue.total;
}

async function open() {
  try {
    await load();
    $("#login").hidden = true;
    $("#queue-view").hidden = false;
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("#login").hidden = false;
    $("#queue-view").hidden = true;
    $("#login .fine").textContent = error.message;
    $("#login .fine").classList.add("error");
  }
}

$("#login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("#token").value);
  open();
});
$("#filters").addEventListener("change", () => {
  offset = 0;
  load().catch(showError);
});
$("#previous").addEventListener("click", () => {
  offset = Math.max(0, offset - PAGE_SIZE);
  load().catch(showError);
});
$("#next").addEventListener("click", () => {
  offset += PAGE_SIZE;
  load().catch(showError);
});
if (sessionStorage.getItem(TOKEN_KEY)) open();
