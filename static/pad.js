// The drawing pad shared by the draw and internals pages: Pointer Events (mouse, pen, touch),
// crisp on high-DPI screens, undo and clear, and export as the server expects a drawing.

// Drawings leave the browser as a 280x280 PNG, dark ink on white, whatever the pad's size on screen,
// so every device sends the server the same kind of image.
export const EXPORT_SIZE = 280;
// Stroke width as a fraction of the pad: a digit drawn to fill the pad then has MNIST's stroke weight
// once scaled into the 20x20 box (20 px on 280, as the server's tests and benchmarks draw).
const STROKE_WIDTH = 1 / 14;

export class DrawingPad {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{onChange?: () => void, onStrokeStart?: () => void, onStrokeEnd?: () => void}} handlers
   *   onChange after every added point, undo and clear; onStrokeStart when a finger, pen or button goes
   *   down on the pad (the drawing is about to change); onStrokeEnd when it lifts.
   */
  constructor(canvas, { onChange = () => {}, onStrokeStart = () => {}, onStrokeEnd = () => {} } = {}) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.onChange = onChange;
    this.onStrokeStart = onStrokeStart;
    this.onStrokeEnd = onStrokeEnd;
    this.strokes = []; // [[[x, y, t_ms], ...], ...]: x, y as fractions of the pad, t from the first point
    this.current = null;
    this.pointerId = null;
    this.startTime = 0;
    this.freshOnNextStroke = false;
    this.size = 0;
    this.listen();
    new ResizeObserver(() => this.resize()).observe(canvas);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.redraw());
    this.resize();
  }

  isEmpty() {
    return this.strokes.length === 0;
  }

  undo() {
    if (this.isEmpty()) return;
    this.strokes.pop();
    this.current = null;
    this.freshOnNextStroke = false; // editing this drawing again: the next stroke adds to it
    this.redraw();
    this.onChange();
  }

  clear() {
    this.strokes = [];
    this.current = null;
    this.freshOnNextStroke = false;
    this.redraw();
    this.onChange();
  }

  /** Keep the drawing on screen, but let the next stroke start a new one (after it was labelled). */
  startFreshOnNextStroke() {
    this.freshOnNextStroke = true;
  }

  /** The drawing as a PNG data URL: EXPORT_SIZE square, black ink on white. */
  toDataURL() {
    const canvas = document.createElement("canvas");
    canvas.width = EXPORT_SIZE;
    canvas.height = EXPORT_SIZE;
    const context = canvas.getContext("2d");
    paint(context, EXPORT_SIZE, this.strokes, "#fff", "#000");
    return canvas.toDataURL("image/png");
  }

  /** Strokes as Quick, Draw! keeps them, in the exported image's pixels: [[[x, y, t_ms], ...], ...]. */
  strokesForUpload() {
    const scale = (value) => Math.round(value * EXPORT_SIZE * 10) / 10;
    return this.strokes.map((stroke) => stroke.map(([x, y, t]) => [scale(x), scale(y), t]));
  }

  listen() {
    const canvas = this.canvas;
    canvas.addEventListener("pointerdown", (event) => this.begin(event));
    canvas.addEventListener("pointermove", (event) => this.extend(event));
    canvas.addEventListener("pointerup", (event) => this.end(event));
    canvas.addEventListener("pointercancel", (event) => this.end(event));
    // A long press must not open a menu or start a selection on touch screens.
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  }

  begin(event) {
    if (this.pointerId !== null || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    // Keep receiving the stroke when the pointer leaves the pad mid-stroke.
    this.canvas.setPointerCapture(event.pointerId);
    this.pointerId = event.pointerId;
    if (this.freshOnNextStroke) {
      this.strokes = [];
      this.freshOnNextStroke = false;
      this.redraw();
    }
    if (this.isEmpty()) this.startTime = event.timeStamp;
    this.onStrokeStart();
    this.current = [this.point(event)];
    this.strokes.push(this.current);
    this.drawDot(this.current[0]);
    this.onChange();
  }

  extend(event) {
    if (event.pointerId !== this.pointerId || !this.current) return;
    event.preventDefault();
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const sample of events.length ? events : [event]) {
      const previous = this.current[this.current.length - 1];
      const next = this.point(sample);
      if (next[0] === previous[0] && next[1] === previous[1]) continue;
      this.current.push(next);
      this.drawSegment(previous, next);
    }
    this.onChange();
  }

  end(event) {
    if (event.pointerId !== this.pointerId) return;
    this.pointerId = null;
    this.current = null;
    this.onStrokeEnd();
  }

  point(event) {
    const rect = this.canvas.getBoundingClientRect();
    const fraction = (value, length) => Math.min(1, Math.max(0, value / length));
    return [
      fraction(event.clientX - rect.left - this.canvas.clientLeft, this.size),
      fraction(event.clientY - rect.top - this.canvas.clientTop, this.size),
      Math.max(0, Math.round(event.timeStamp - this.startTime)),
    ];
  }

  resize() {
    // Back the canvas with device pixels, so that lines stay crisp on high-DPI screens.
    const ratio = window.devicePixelRatio || 1;
    this.size = this.canvas.clientWidth;
    if (!this.size) return;
    this.canvas.width = Math.round(this.size * ratio);
    this.canvas.height = Math.round(this.size * ratio);
    this.context.setTransform(this.canvas.width / this.size, 0, 0, this.canvas.height / this.size, 0, 0);
    this.redraw();
  }

  colours() {
    const style = getComputedStyle(this.canvas);
    return [style.getPropertyValue("--pad-paper").trim() || "#fff", style.getPropertyValue("--pad-ink").trim() || "#000"];
  }

  redraw() {
    if (!this.size) return;
    const [paper, ink] = this.colours();
    paint(this.context, this.size, this.strokes, paper, ink);
  }

  drawDot(point) {
    const context = this.context;
    context.beginPath();
    context.arc(point[0] * this.size, point[1] * this.size, (STROKE_WIDTH * this.size) / 2, 0, 2 * Math.PI);
    context.fill();
  }

  drawSegment(from, to) {
    const context = this.context;
    context.beginPath();
    context.moveTo(from[0] * this.size, from[1] * this.size);
    context.lineTo(to[0] * this.size, to[1] * this.size);
    context.stroke();
  }
}

/** Paint strokes (fractions of the pad) on a size x size context with round ends and joins. */
function paint(context, size, strokes, paper, ink) {
  context.fillStyle = paper;
  context.fillRect(0, 0, size, size);
  context.strokeStyle = ink;
  context.fillStyle = ink;
  context.lineWidth = STROKE_WIDTH * size;
  context.lineCap = "round";
  context.lineJoin = "round";
  for (const stroke of strokes) {
    if (stroke.length === 1) {
      context.beginPath();
      context.arc(stroke[0][0] * size, stroke[0][1] * size, context.lineWidth / 2, 0, 2 * Math.PI);
      context.fill();
      continue;
    }
    context.beginPath();
    context.moveTo(stroke[0][0] * size, stroke[0][1] * size);
    for (const [x, y] of stroke.slice(1)) context.lineTo(x * size, y * size);
    context.stroke();
  }
}

function isTextEntry(target) {
  if (target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) return true;
  if (target instanceof HTMLInputElement) return !["checkbox", "radio", "button", "submit"].includes(target.type);
  return target instanceof HTMLElement && target.isContentEditable;
}

/**
 * The drawing pages' keyboard shortcuts: Enter, Backspace (undo), Escape (clear) and, given `digit`,
 * the keys 0-9. Enter on a focused button or link still does what that control says.
 * @param {{enter: () => void, undo: () => void, clear: () => void, digit?: (d: number) => void}} actions
 */
export function bindKeys({ enter, undo, clear, digit }) {
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || isTextEntry(event.target)) return;
    const onControl = event.target instanceof HTMLButtonElement || event.target instanceof HTMLAnchorElement;
    if (event.key === "Enter" && !onControl) enter();
    else if (event.key === "Backspace") undo();
    else if (event.key === "Escape") clear();
    else if (digit && /^[0-9]$/.test(event.key)) digit(Number(event.key));
    else return;
    event.preventDefault();
  });
}
