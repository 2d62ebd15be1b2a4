// Draw page: Pointer Events drawing (mouse, pen, touch), predict, and label to train.
"use strict";

const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const answerEl = document.getElementById("answer");
const messageEl = document.getElementById("message");
const statusEl = document.getElementById("status");
const versionEl = document.getElementById("version");

let strokes = []; // [[[x, y, t_ms], ...], ...] in CSS pixels, as Quick, Draw! keeps them
let current = null;
let startTime = 0;

function resizeCanvas() {
  // Back the canvas with device pixels so lines stay crisp on high-DPI screens.
  const ratio = window.devicePixelRatio || 1;
  const size = canvas.getBoundingClientRect().width;
  canvas.width = Math.round(size * ratio);
  canvas.height = Math.round(size * ratio);
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  redraw();
}

function lineWidth() {
  // About a fourteenth of the pad: MNIST-like stroke weight at any canvas size.
  return canvas.getBoundingClientRect().width / 14;
}

function redraw() {
  const size = canvas.getBoundingClientRect().width;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, size, size);
  ctx.strokeStyle = "#000";
  ctx.fillStyle = "#000";
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = lineWidth();
  for (const stroke of strokes) drawStroke(stroke);
}

function drawStroke(stroke) {
  if (stroke.length === 1) {
    ctx.beginPath();
    ctx.arc(stroke[0][0], stroke[0][1], ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(stroke[0][0], stroke[0][1]);
  for (const [x, y] of stroke.slice(1)) ctx.lineTo(x, y);
  ctx.stroke();
}

function point(event) {
  const rect = canvas.getBoundingClientRect();
  if (!strokes.length && !current) startTime = performance.now();
  return [
    Math.round((event.clientX - rect.left) * 10) / 10,
    Math.round((event.clientY - rect.top) * 10) / 10,
    Math.round(performance.now() - startTime),
  ];
}

canvas.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  current = [point(event)];
  strokes.push(current);
  redraw();
});
canvas.addEventListener("pointermove", (event) => {
  if (!current) return;
  event.preventDefault();
  current.push(point(event));
  redraw();
});
for (const type of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(type, () => {
    current = null;
  });
}

function isEmpty() {
  return strokes.length === 0;
}

function clearAll() {
  strokes = [];
  current = null;
  redraw();
  answerEl.textContent = "?";
  messageEl.textContent = "";
  statusEl.textContent = "";
  for (const list of document.querySelectorAll(".top3")) list.replaceChildren();
}

function undo() {
  strokes.pop();
  redraw();
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({ message: `The server answered ${response.status}.` }));
  if (!response.ok) throw new Error(data.message || `The server answered ${response.status}.`);
  return data;
}

function showPredictions(predictions) {
  for (const list of document.querySelectorAll(".top3")) {
    const top = predictions[list.dataset.model][list.dataset.variant];
    list.replaceChildren(
      ...top.map(({ digit, probability }) => {
        const item = document.createElement("li");
        const bar = document.createElement("span");
        bar.className = "bar";
        bar.style.width = `${(probability * 100).toFixed(1)}%`;
        const text = document.createElement("span");
        text.className = "text";
        text.textContent = `${digit}  ${(probability * 100).toFixed(1)}%`;
        item.append(bar, text);
        return item;
      }),
    );
  }
}

async function predict() {
  if (isEmpty()) {
    answerEl.textContent = "?";
    messageEl.textContent = "Nothing is drawn: draw a digit first.";
    return;
  }
  statusEl.textContent = "";
  try {
    const result = await post("/api/predict", { image: canvas.toDataURL("image/png") });
    answerEl.textContent = result.answer === null ? "?" : String(result.answer);
    messageEl.textContent = result.message;
    versionEl.textContent = String(result.model_version);
    showPredictions(result.predictions);
  } catch (error) {
    messageEl.textContent = error.message;
  }
}

async function label(digit) {
  if (isEmpty()) {
    statusEl.textContent = "Draw a digit first, then tell us what it is.";
    return;
  }
  statusEl.textContent = `Learning that this is a ${digit}…`;
  try {
    const result = await post("/api/train", { image: canvas.toDataURL("image/png"), label: digit, strokes });
    versionEl.textContent = String(result.model_version);
    showPredictions(result.predictions);
    statusEl.textContent = `Thanks! Stored as a ${digit}; the retrained models are now at version ${result.model_version}.`;
  } catch (error) {
    statusEl.textContent = error.message;
  }
}

document.getElementById("predict").addEventListener("click", predict);
document.getElementById("clear").addEventListener("click", clearAll);
document.getElementById("undo").addEventListener("click", undo);
for (const button of document.querySelectorAll("[data-label]")) {
  button.addEventListener("click", () => label(Number(button.dataset.label)));
}
document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement) return;
  if (event.key === "Enter") predict();
  else if (event.key === "Backspace") undo();
  else if (event.key === "Escape") clearAll();
  else if (/^[0-9]$/.test(event.key)) label(Number(event.key));
  else return;
  event.preventDefault();
});
window.addEventListener("resize", resizeCanvas);
resizeCanvas();
fetch("/healthz")
  .then((response) => response.json())
  .then((health) => {
    versionEl.textContent = String(health.model_version);
  })
  .catch(() => {});
