// Small images from numbers: the 28x28 digit the models saw, feature maps and hidden units.
// Canvases hold one pixel per value; CSS scales them up with `image-rendering: pixelated`.

// A perceptually even dark-to-bright ramp (viridis, five stops), readable in light and dark themes.
const RAMP = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

function rampColour(value) {
  const position = Math.min(1, Math.max(0, value)) * (RAMP.length - 1);
  const low = Math.floor(position);
  const high = Math.min(RAMP.length - 1, low + 1);
  const mix = position - low;
  return RAMP[low].map((channel, i) => Math.round(channel + (RAMP[high][i] - channel) * mix));
}

/**
 * Paint rows of values onto `canvas`, one pixel each, resizing its bitmap to fit.
 * @param {HTMLCanvasElement} canvas
 * @param {number[][]} rows  h rows of w values, 0..`peak`
 * @param {{peak?: number, ramp?: boolean}} options  grey (ink bright, as MNIST) or the colour ramp
 */
export function paintGrid(canvas, rows, { peak = 255, ramp = false } = {}) {
  const height = rows.length;
  const width = height ? rows[0].length : 0;
  if (!width) return;
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  rows.forEach((row, y) =>
    row.forEach((value, x) => {
      const level = value / peak;
      const [r, g, b] = ramp ? rampColour(level) : Array(3).fill(Math.round(Math.min(1, Math.max(0, level)) * 255));
      image.data.set([r, g, b, 255], (y * width + x) * 4);
    }),
  );
  context.putImageData(image, 0, 0);
}

/** Blank a canvas of the given size (before there is anything to show). */
export function paintBlank(canvas, width, height) {
  paintGrid(canvas, Array.from({ length: height }, () => Array(width).fill(0)));
}

/** Values (a flat list) as rows of `width`. */
export function toRows(values, width) {
  return Array.from({ length: Math.ceil(values.length / width) }, (_, y) => values.slice(y * width, (y + 1) * width));
}
