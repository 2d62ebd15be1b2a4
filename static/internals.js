// Internals page: draw, then see the CNN's feature maps and the FNN's hidden units for that drawing.

import { requestJSON } from "./api.js";
import { DrawingPad, bindKeys } from "./pad.js";
import { paintBlank, paintGrid, toRows } from "./pixels.js";

const UPDATE_DELAY_MS = 250; // after a stroke ends: one request per pause in drawing
const HIDDEN_SIDE = 10; // 100 hidden units shown as a 10x10 grid

const $ = (selector) => document.querySelector(selector);
const messageEl = $("#message");
const preview = $("#preview");
const hidden = $("#hidden");

let timer = 0;
let pending = null;

const pad = new DrawingPad($("#canvas"), {
  onChange() {
    clearTimeout(timer);
    if (pad.isEmpty()) showNothing();
  },
  onStrokeEnd() {
    clearTimeout(timer);
    timer = setTimeout(inspect, UPDATE_DELAY_MS);
  },
});

function showNothing() {
  if (pending) pending.abort();
  paintBlank(preview, 28, 28);
  paintBlank(hidden, HIDDEN_SIDE, HIDDEN_SIDE);
  for (const canvas of document.querySelectorAll("#layers canvas")) paintBlank(canvas, canvas.width, canvas.height);
}

function layerFigure(layer, index) {
  const section = document.createElement("section");
  section.className = "layer";
  const [height, width, channels] = layer.shape;
  const title = document.createElement("h3");
  title.textContent = `Convolution ${index + 1}: ${channels} maps of ${height}×${width}`;
  const maps = document.createElement("div");
  maps.className = "maps";
  layer.maps.forEach((rows, channel) => {
    const canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `${layer.name}, feature map ${channel + 1}`);
    paintGrid(canvas, rows, { ramp: true });
    maps.append(canvas);
  });
  section.append(title, maps);
  return section;
}

async function inspect() {
  clearTimeout(timer);
  if (pad.isEmpty()) {
    messageEl.textContent = "Nothing is drawn: draw a digit first.";
    return;
  }
  if (pending) pending.abort();
  const controller = new AbortController();
  pending = controller;
  try {
    const result = await requestJSON("/api/internals", { body: { image: pad.toDataURL() }, signal: controller.signal });
    messageEl.classList.remove("error");
    messageEl.textContent = "The retrained models, on your drawing.";
    $("#version").textContent = String(result.model_version);
    paintGrid(preview, result.preprocessed);
    paintGrid(hidden, toRows(result.fnn_hidden, HIDDEN_SIDE), { peak: 1, ramp: true });
    $("#layers").replaceChildren(...result.cnn_layers.map(layerFigure));
  } catch (error) {
    if (error.name === "AbortError") return;
    messageEl.textContent = error.message;
    messageEl.classList.add("error");
  } finally {
    if (pending === controller) pending = null;
  }
}

function undo() {
  pad.undo();
  if (!pad.isEmpty()) inspect();
}

$("#inspect").addEventListener("click", inspect);
$("#undo").addEventListener("click", undo);
$("#clear").addEventListener("click", () => pad.clear());
bindKeys({ enter: inspect, undo, clear: () => pad.clear() });
showNothing();
requestJSON("/healthz")
  .then((health) => {
    $("#version").textContent = String(health.model_version);
  })
  .catch((error) => {
    messageEl.textContent = error.message;
    messageEl.classList.add("error");
  });
