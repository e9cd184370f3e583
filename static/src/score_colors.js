// Colouring the map by one class's classifier score: ten bins of [0, 1] on a dark-to-bright ramp, the bins at or
// above the class threshold marked in the legend. Pure: values in, the legend encoding out (see colors.js).

// a perceptually ordered ramp (viridis-like, brightened for the dark background); bin 0 is dimmest
const RAMP = ['#2b2f3a', '#33415c', '#34507d', '#2f6e8e', '#27888e', '#2aa383', '#4dbd6c', '#86d049', '#c4dc2c', '#fde725'];
export const N_BINS = RAMP.length;

/**
 * Encode scores (Float32Array [n] in [0, 1]) for the map and legend: {codes, colors, items, noiseCode}, one item per
 * non-empty bin, highest first; `threshold` marks the bins a clip passes (hint "≥ threshold").
 */
export function encodeScores(values, threshold = null, name = 'score') {
  const n = values.length;
  const codes = new Float32Array(n);
  const counts = new Int32Array(N_BINS);
  let above = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    const b = Number.isFinite(v) ? Math.max(0, Math.min(N_BINS - 1, Math.floor(v * N_BINS))) : 0;
    codes[i] = b;
    counts[b]++;
    if (threshold !== null && v >= threshold) above++;
  }
  const items = [];
  for (let b = N_BINS - 1; b >= 0; b--) {
    if (!counts[b]) continue;
    const lo = b / N_BINS;
    const hi = (b + 1) / N_BINS;
    const passes = threshold !== null && lo >= threshold;
    const straddles = threshold !== null && lo < threshold && hi > threshold;
    items.push({
      key: `bin${b}`,
      label: `${name} ${lo.toFixed(1)}–${hi.toFixed(1)}`,
      hint: passes ? '≥ threshold' : straddles ? `threshold ${threshold.toFixed(2)}` : '',
      color: RAMP[b],
      count: counts[b],
      code: b,
      kind: 'score',
    });
  }
  return { codes, colors: RAMP.slice(), items, noiseCode: -1, above };
}
