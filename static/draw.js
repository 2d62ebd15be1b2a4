// Draw page: draw, predict (on demand or live), label to train, and a data-collection mode.
//
// Every answer and message belongs to one drawing: a new stroke, Undo or Clear makes a new drawing and clears
// them. One drawing gets one label: once a label is sent, further taps and keys on that drawing store nothing.

import { requestJSON } from "./api.js";
import { DrawingPad, bindKeys } from "./pad.js";
import { paintGrid } from "./pixels.js";

const LIVE_DELAY_MS = 350; // pause in drawing before a live prediction: one request per pause, not per point
const DEFAULT_PROMPT = "One digit, 0 to 9, filling the box.";
const MODEL_COUNT = 4;

const $ = (selector) => document.querySelector(selector);
const answerEl = $("#answer");
const agreementEl = $("#agreement");
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
let drawing = 0; // which drawing is on the pad: bumped by every stroke, Undo and Clear
let answered = null; // {drawing, answer}: the models' answer for a drawing
let labelled = null; // {drawing, digit, done}: the label sent for a drawing
let wanted = null; // the digit collection mode asks for

const pad = new DrawingPad($("#canvas"), {
  onStrokeStart: newDrawing,
  onChange() {
    clearTimeout(liveTimer);
    if (liveToggle.checked && !pad.isEmpty()) liveTimer = setTimeout(() => predict({ live: true }), LIVE_DELAY_MS);
  },
});

/** The drawing changed: whatever was shown about the previous one no longer applies. */
function newDrawing() {
  drawing += 1;
  if (pendingPredict) pendingPredict.abort();
  showNothing();
  say("");
  $("#take-back").hidden = true; // a label can be taken back until the next drawing (or its token expires)
}

function undo() {
  pad.undo();
  newDrawing();
}

function clear() {
  pad.clear();
  newDrawing();
}

// --- showing results --------------------------------------------------------------------------------

function say(text, { error = false } = {}) {
  statusEl.textContent = text;
  statusEl.classList.toggle("error", error);
}

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
  preview.classList.toggle("blank", !pixels);
  if (pixels) paintGrid(preview, pixels);
  else preview.getContext("2d").clearRect(0, 0, preview.width, preview.height);
}

function showVersion(version) {
  if (Number.isInteger(version)) versionEl.textContent = String(version);
}

/** How many of the four models' top guesses agree with the answer, in a few words. */
function agreement(answer, predictions) {
  const tops = lists.map((list) => predictions[list.dataset.model][list.dataset.variant][0]?.digit);
  const agreeing = tops.filter((digit) => String(digit) === answer).length;
  return agreeing === MODEL_COUNT ? `All ${MODEL_COUNT} models say ${answer}.` : `${agreeing} of ${MODEL_COUNT} models say ${answer}.`;
}

function markAnswer(answer) {
  for (const button of labelButtons) {
    const marked = button.dataset.label === answer;
    button.classList.toggle("predicted", marked);
    button.setAttribute("aria-label", `It is a ${button.dataset.label}${marked ? ", the answer" : ""}`);
  }
}

function markStored(digit) {
  for (const button of labelButtons) button.classList.toggle("stored", Number(button.dataset.label) === digit);
}

function showNothing() {
  answered = null;
  answerEl.textContent = "?";
  answerEl.classList.add("unsure");
  agreementEl.textContent = "";
  markAnswer(null);
  markStored(null);
  showPredictions(null);
  showPreview(null);
}

function showAnswer(result) {
  const known = typeof result.answer === "string";
  answered = { drawing, answer: known ? result.answer : null };
  answerEl.textContent = known ? result.answer : "?";
  answerEl.classList.toggle("unsure", !known);
  agreementEl.textContent = known ? agreement(result.answer, result.predictions) : result.message || "";
  markAnswer(known ? result.answer : null);
  showPredictions(result.predictions);
  showPreview(result.preprocessed);
}

// --- predicting and labelling ---------------------------------------------------------------------------

async function predict({ live = false } = {}) {
  clearTimeout(liveTimer);
  if (pad.isEmpty()) {
    if (!live) say("Nothing is drawn: draw a digit first.");
    return;
  }
  if (pendingPredict) pendingPredict.abort();
  const controller = new AbortController();
  pendingPredict = controller;
  const asked = drawing;
  try {
    const result = await requestJSON("/api/predict", { body: { image: pad.toDataURL() }, signal: controller.signal });
    if (asked !== drawing) return;
    showVersion(result.model_version);
    showAnswer(result);
    if (labelled?.drawing !== drawing) say(howToLabel(answered.answer));
    // Clicked or keyed Predict: the next step is confirming the answer, so Enter (or Space) now does that.
    const marked = $(".digits .predicted");
    if (marked && document.activeElement === $("#predict")) marked.focus({ preventScroll: true });
  } catch (error) {
    if (error.name === "AbortError" || asked !== drawing) return;
    say(error.message, { error: true });
  } finally {
    if (pendingPredict === controller) pendingPredict = null;
  }
}

/** What to do next with an answer on screen: fingers tap, a mouse clicks and a keyboard presses. */
function howToLabel(answer) {
  const touch = matchMedia("(hover: none)").matches;
  if (answer === null) return touch ? "Tap the digit you drew to store it." : "Click or press the digit you drew.";
  return touch
    ? `Right? Tap the marked ${answer}. If not, tap the right digit.`
    : `Right? Press Enter or click the marked ${answer}. If not, click or press the right digit.`;
}

/** Enter: predict, or once the answer is on screen, confirm it. */
function enter() {
  if (answered?.drawing === drawing && answered.answer !== null && !pad.isEmpty()) label(Number(answered.answer));
  else predict();
}

async function label(digit) {
  if (pad.isEmpty()) {
    say("Draw a digit first, then tell us which one it is.");
    return;
  }
  if (labelled?.drawing === drawing) {
    alreadyLabelled(digit);
    return;
  }
  clearTimeout(liveTimer);
  if (pendingPredict) pendingPredict.abort();
  const sent = drawing;
  const entry = { drawing: sent, digit, done: false };
  labelled = entry;
  markStored(digit);
  setBusy(true);
  say(`Learning that this is a ${digit}…`);
  try {
    const result = await requestJSON("/api/train", {
      body: { image: pad.toDataURL(), label: digit, strokes: pad.strokesForUpload() },
    });
    entry.done = true;
    showVersion(result.model_version);
    const pending = result.status === "pending" || !result.predictions;
    if (sent === drawing && !pending) {
      showAnswer(result); // what the models say of this drawing now that they have learned it
      showPredictions(result.predictions, { learned: true });
      markStored(digit);
    }
    const done = pending
      ? `Stored as a ${digit}. The models will learn from it shortly.`
      : `Thanks! Learned that this is a ${digit} (version ${result.model_version}).`;
    const collecting = collectToggle.checked;
    if (collecting && sent === drawing) {
      pad.clear();
      newDrawing();
    }
    offerTakeBack(result, entry); // after the clear: in collection mode too, the offer lasts until the next stroke
    if (collecting) {
      say(done);
      await askForNextDigit();
      say(`${done} Next, draw a ${wanted}.`);
    } else {
      if (sent === drawing) pad.startFreshOnNextStroke();
      say(`${done} Draw the next digit.`);
    }
  } catch (error) {
    if (labelled === entry) labelled = null; // nothing was stored: the same drawing may be labelled again
    if (sent === drawing) markStored(null);
    say(error.message, { error: true });
  } finally {
    setBusy(false);
  }
}

/** A second label for one drawing stores nothing; say so, and how to go on. */
function alreadyLabelled(digit) {
  const first = labelled.digit;
  if (!labelled.done) {
    if (digit !== first) say(`Already storing this drawing as a ${first}; one drawing gets one label.`);
    return; // the same label again while it is on its way (a double tap): the status already says so
  }
  if (digit === first) say(`This drawing is already stored as a ${first}. Draw the next digit.`);
  else say(`Already stored as a ${first}, not as a ${digit}. If it is a ${digit}, draw it again.`);
}

function setBusy(busy) {
  for (const button of labelButtons) button.setAttribute("aria-disabled", String(busy));
  $(".digits").setAttribute("aria-busy", String(busy));
}

// --- taking back one's own label: /api/train answers an undo token, good for `undo_seconds` ------------

const takeBack = $("#take-back");
let takeBackTimer;

/** Offer to take back the drawing just labelled, until its undo token expires (a few seconds early). */
function offerTakeBack(result, entry) {
  clearTimeout(takeBackTimer);
  takeBack.hidden = !result.undo_token;
  takeBack.onclick = async () => {
    takeBack.hidden = true;
    try {
      const undone = await requestJSON("/api/undo", { body: { undo_token: result.undo_token } });
      showVersion(undone.model_version); // unlearning is a step of the models too
      const onPad = entry.drawing === drawing;
      if (labelled === entry) {
        labelled = null; // taken back: this drawing may get its right label now
        if (onPad) markStored(null);
      }
      const next = onPad ? " Tap the right digit, or draw again." : ""; // in collection mode the prompt says what next
      say(`Taken back: that label is removed and the models unlearn it.${next}`);
    } catch (error) {
      say(error.message, { error: true });
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
  if (on) askForNextDigit().catch((error) => say(error.message, { error: true }));
  else showWanted(null);
}

// --- wiring ------------------------------------------------------------------------------------------------

$("#predict").addEventListener("click", () => predict());
$("#undo").addEventListener("click", undo);
$("#clear").addEventListener("click", clear);
for (const button of labelButtons) button.addEventListener("click", () => label(Number(button.dataset.label)));
bindKeys({ enter, undo, clear, digit: label });
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
  .catch((error) => say(error.message, { error: true }));
