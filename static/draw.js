// Draw page: draw, predict (on demand or live), label to train, and a data-collection mode.

import { requestJSON } from "./api.js";
import { DrawingPad, bindKeys } from "./pad.js";
import { paintBlank, paintGrid } from "./pixels.js";

const LIVE_DELAY_MS = 350; // pause in drawing before a live prediction: one request per pause, not per point
const DEFAULT_PROMPT = "One digit, 0 to 9, filling the box.";

const $ = (selector) => document.querySelector(selector);
const answerEl = $("#answer");
const messageEl = $("#message");
const statusEl = $("#status");
const versionEl = $("#version");
const degradedEl = $("#degraded");
const promptEl = $("#prompt");
const preview = $("#preview");
const liveToggle = $("#live");
const collectToggle = $("#collect");
const labelButtons = [...document.querySelectorAll("[data-label]")];
const lists = [...document.querySelectorAll(".top3")];

let liveTimer = 0;
let pendingPredict = null; // AbortController of the prediction in flight, if any
let resultNumber = 0; // a later request's result always wins over an earlier one's
let training = false;
let wanted = null; // the digit collection mode asks for

const pad = new DrawingPad($("#canvas"), {
  onNewDrawing: showNothing,
  onChange() {
    clearTimeout(liveTimer);
    if (liveToggle.checked && !pad.isEmpty()) liveTimer = setTimeout(() => predict({ live: true }), LIVE_DELAY_MS);
  },
});

function undo() {
  pad.undo();
  if (pad.isEmpty()) showNothing();
}

function clear() {
  pad.clear();
  showNothing();
}

// --- showing results --------------------------------------------------------------------------------

function percent(probability) {
  return probability > 0 && probability < 0.0005 ? "<0.1%" : `${(probability * 100).toFixed(1)}%`;
}

function guessRow(guess) {
  const item = document.createElement("li");
  const digit = document.createElement("span");
  digit.className = "digit";
  const track = document.createElement("span");
  track.className = "track";
  const fill = document.createElement("span");
  fill.className = "fill";
  track.append(fill);
  const value = document.createElement("span");
  value.className = "pct";
  if (guess) {
    digit.textContent = String(guess.digit);
    fill.style.width = `${guess.probability * 100}%`;
    value.textContent = percent(guess.probability);
  } else {
    item.className = "empty";
    digit.textContent = "–";
    value.textContent = "";
  }
  item.append(digit, track, value);
  return item;
}

function showPredictions(predictions, { learned = false } = {}) {
  for (const list of lists) {
    const top = predictions ? predictions[list.dataset.model][list.dataset.variant] : [];
    list.replaceChildren(...[0, 1, 2].map((i) => guessRow(top[i])));
    list.closest(".model").classList.toggle("updated", learned && list.dataset.variant === "retrained");
  }
}

function showPreview(pixels) {
  if (pixels) paintGrid(preview, pixels);
  else paintBlank(preview, 28, 28);
}

function showVersion(version) {
  if (Number.isInteger(version)) versionEl.textContent = String(version);
}

function showNothing() {
  resultNumber += 1;
  answerEl.textContent = "?";
  answerEl.classList.remove("unsure");
  messageEl.textContent = "";
  showPredictions(null);
  showPreview(null);
}

function showAnswer(result) {
  const known = result.answer !== null && result.answer !== undefined;
  answerEl.textContent = known ? String(result.answer) : "?";
  answerEl.classList.toggle("unsure", !known);
  messageEl.textContent = typeof result.message === "string" ? result.message : "";
  messageEl.classList.remove("error");
}

function showError(element, error) {
  element.textContent = error.message;
  element.classList.add("error");
}

// --- predicting and training -------------------------------------------------------------------------

async function predict({ live = false } = {}) {
  clearTimeout(liveTimer);
  if (pad.isEmpty()) {
    if (!live) {
      showNothing();
      messageEl.textContent = "Nothing is drawn: draw a digit first.";
    }
    return;
  }
  if (pendingPredict) pendingPredict.abort();
  const controller = new AbortController();
  pendingPredict = controller;
  const number = ++resultNumber;
  try {
    const result = await requestJSON("/api/predict", { body: { image: pad.toDataURL() }, signal: controller.signal });
    if (number !== resultNumber) return;
    showAnswer(result);
    showPredictions(result.predictions);
    showPreview(result.preprocessed);
    showVersion(result.model_version);
  } catch (error) {
    if (error.name === "AbortError" || number !== resultNumber) return;
    answerEl.textContent = "?";
    showPredictions(null);
    showPreview(null);
    showError(messageEl, error);
  } finally {
    if (pendingPredict === controller) pendingPredict = null;
  }
}

function setTraining(busy) {
  training = busy;
  for (const button of labelButtons) button.setAttribute("aria-disabled", String(busy));
  $(".label").setAttribute("aria-busy", String(busy));
}

async function label(digit) {
  if (training) return;
  if (pad.isEmpty()) {
    statusEl.classList.remove("error");
    statusEl.textContent = "Draw a digit first, then tell us which one it is.";
    return;
  }
  clearTimeout(liveTimer);
  if (pendingPredict) pendingPredict.abort();
  const number = ++resultNumber;
  setTraining(true);
  statusEl.classList.remove("error");
  statusEl.textContent = `Learning that this is a ${digit}…`;
  try {
    const result = await requestJSON("/api/train", {
      body: { image: pad.toDataURL(), label: digit, strokes: pad.strokesForUpload() },
    });
    showVersion(result.model_version);
    offerTakeBack(result);
    if (number === resultNumber) {
      if ("answer" in result) showAnswer(result);
      showPredictions(result.predictions, { learned: true });
      showPreview(result.preprocessed);
    }
    const learnt = `Thanks! Learned that this is a ${digit}; now at version ${result.model_version}.`;
    if (collectToggle.checked) {
      pad.clear();
      statusEl.textContent = learnt;
      await askForNextDigit();
      statusEl.textContent = `${learnt} Next, draw a ${wanted}.`;
    } else {
      pad.startFreshOnNextStroke();
      statusEl.textContent = `${learnt} Draw again for a new digit.`;
    }
  } catch (error) {
    showError(statusEl, error);
  } finally {
    setTraining(false);
  }
}

// --- taking back one's own label: /api/train answers an undo token, good for `undo_seconds` ------------

const takeBack = $("#take-back");
let takeBackTimer;

/** Offer to take back the drawing just labelled, until its undo token expires (a few seconds early). */
function offerTakeBack(result) {
  clearTimeout(takeBackTimer);
  takeBack.hidden = !result.undo_token;
  takeBack.onclick = async () => {
    takeBack.hidden = true;
    try {
      await requestJSON("/api/undo", { body: { undo_token: result.undo_token } });
      statusEl.classList.remove("error");
      statusEl.textContent = "Taken back: that drawing is removed and the models unlearn it.";
    } catch (error) {
      showError(statusEl, error);
    }
  };
  takeBackTimer = setTimeout(() => (takeBack.hidden = true), Math.max(0, result.undo_seconds - 5) * 1000);
}

// --- collection mode: ask for the digits with the fewest drawings ---------------------------------------

/** Ask for one of the digits with the fewest labelled drawings (not the same one twice in a row). */
async function askForNextDigit() {
  const counts = (await requestJSON("/api/stats")).samples.per_label;
  const numbers = labelButtons.map((button) => counts[button.dataset.label] ?? 0);
  const fewest = Math.min(...numbers);
  let candidates = numbers.flatMap((count, digit) => (count === fewest ? [digit] : []));
  if (candidates.length > 1) candidates = candidates.filter((digit) => digit !== wanted);
  showWanted(candidates[Math.floor(Math.random() * candidates.length)]);
}

function showWanted(digit) {
  wanted = digit;
  for (const button of labelButtons) button.classList.toggle("wanted", Number(button.dataset.label) === digit);
  promptEl.classList.toggle("asking", digit !== null);
  promptEl.textContent = digit === null ? DEFAULT_PROMPT : `Please draw a ${digit}`;
}

function setCollecting(on) {
  localStorage.setItem("collect", on ? "1" : "");
  if (on) askForNextDigit().catch((error) => showError(statusEl, error));
  else showWanted(null);
}

// --- wiring ------------------------------------------------------------------------------------------------

$("#predict").addEventListener("click", () => predict());
$("#undo").addEventListener("click", undo);
$("#clear").addEventListener("click", clear);
for (const button of labelButtons) button.addEventListener("click", () => label(Number(button.dataset.label)));
bindKeys({ enter: predict, undo, clear, digit: label });
liveToggle.addEventListener("change", () => {
  localStorage.setItem("live", liveToggle.checked ? "1" : "");
  if (liveToggle.checked) predict({ live: true });
});
collectToggle.addEventListener("change", () => setCollecting(collectToggle.checked));

liveToggle.checked = localStorage.getItem("live") === "1";
collectToggle.checked = localStorage.getItem("collect") === "1";
showNothing();
if (collectToggle.checked) setCollecting(true);
requestJSON("/healthz")
  .then((health) => {
    showVersion(health.model_version);
    const degraded = Array.isArray(health.degraded) ? health.degraded : [];
    degradedEl.textContent = degraded.length
      ? ` · ${degraded.join(" and ")} ${degraded.length > 1 ? "are" : "is"} doing worse than the originals lately`
      : "";
  })
  .catch((error) => showError(statusEl, error));
