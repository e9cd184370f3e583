// Palettes and the category encodings the map and legend share.

// 20 distinguishable colours that read well on a dark background (Tableau-20-like, brightened).
export const PALETTE = [
  '#4e9bff', '#ff9f43', '#2ed47a', '#ff5c6c', '#b58cff', '#c98b6b', '#ff7ad9', '#a3e635',
  '#22d3ee', '#facc15', '#7dd3fc', '#fdba74', '#86efac', '#fca5a5', '#d8b4fe', '#e7c9a9',
  '#f9a8d4', '#d9f99d', '#67e8f9', '#fde68a',
];
export const NOISE = '#5b6272';
export const OTHER = '#8a8f9c';
export const MISSING = '#3b404b';

/** Colour i of a categorical scale: the palette, then golden-angle hues for large i. */
export function colorAt(i) {
  if (i < PALETTE.length) return PALETTE[i];
  const h = (i * 137.508) % 360;
  return `hsl(${h.toFixed(1)}, 70%, ${55 + (i % 3) * 8}%)`;
}

/** '#rrggbb' or 'hsl(...)' → [r,g,b,a] in 0..1 (regl-scatterplot accepts rgba arrays). */
export function toRGBA(css, alpha = 1) {
  if (css.startsWith('#')) {
    const v = parseInt(css.slice(1), 16);
    return [((v >> 16) & 255) / 255, ((v >> 8) & 255) / 255, (v & 255) / 255, alpha];
  }
  const m = css.match(/hsl\(([\d.]+),\s*([\d.]+)%,\s*([\d.]+)%\)/);
  if (!m) return [0.6, 0.6, 0.6, alpha];
  const [h, s, l] = [Number(m[1]) / 360, Number(m[2]) / 100, Number(m[3]) / 100];
  const q = l < 0.5 ? l * (1 + s) : l + s - l * s;
  const p = 2 * l - q;
  const hue = (t) => {
    t = (t + 1) % 1;
    if (t < 1 / 6) return p + (q - p) * 6 * t;
    if (t < 1 / 2) return q;
    if (t < 2 / 3) return p + (q - p) * (2 / 3 - t) * 6;
    return p;
  };
  return [hue(h + 1 / 3), hue(h), hue(h - 1 / 3), alpha];
}

const MAX_CATEGORIES = 24;

/**
 * Encode the map's colouring.
 * Returns {codes: Float32Array [n] (category index per point), colors: [css], items: [{key, label, color, count,
 * code, kind}], noiseCode}: items are the legend rows, biggest first; code 0 is reserved for noise/missing.
 */
export function encodeClusters(labels, clusters) {
  const n = labels.length;
  const codes = new Float32Array(n);
  let maxLabel = -1;
  for (let i = 0; i < n; i++) if (labels[i] > maxLabel) maxLabel = labels[i];
  const counts = new Int32Array(maxLabel + 2);
  for (let i = 0; i < n; i++) {
    const c = labels[i] < 0 ? 0 : labels[i] + 1;
    codes[i] = c;
    counts[c]++;
  }
  const colors = [NOISE];
  for (let k = 0; k <= maxLabel; k++) colors.push(colorAt(k));
  const byId = new Map((clusters || []).map((c) => [c.id, c]));
  const items = [];
  for (let k = 0; k <= maxLabel; k++) {
    if (!counts[k + 1]) continue;
    const info = byId.get(k);
    const top = info && info.top_species && info.top_species[0] ? info.top_species[0][0] : null;
    const topLabel = info && info.top_labels && info.top_labels[0] ? info.top_labels[0][0] : null;
    items.push({ key: k, label: `Cluster ${k}`, hint: topLabel || top || '', color: colors[k + 1], count: counts[k + 1], code: k + 1, kind: 'cluster', ...dominance(info) });
  }
  items.sort((a, b) => b.count - a.count);
  if (counts[0]) items.push({ key: -1, label: 'noise', hint: '', color: NOISE, count: counts[0], code: 0, kind: 'noise' });
  return { codes, colors, items, noiseCode: counts[0] ? 0 : -1 };
}

/** Recording dominance of a cluster summary: {nRecordings, topShare, singleRecording} (empty when not sent). */
export function dominance(info) {
  if (!info || info.n_recordings == null) return {};
  return { nRecordings: info.n_recordings, topShare: info.top_recording_share, singleRecording: !!info.single_recording };
}

/** Categorical column (array of strings/numbers/null) → codes, top categories coloured, the rest 'other'. */
export function encodeColumn(values, { missingLabel = '(none)' } = {}) {
  const n = values.length;
  const counts = new Map();
  for (let i = 0; i < n; i++) {
    const v = values[i];
    const k = v === null || v === undefined || v === '' || (typeof v === 'number' && Number.isNaN(v)) ? null : String(v);
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  const ranked = [...counts.entries()].filter(([k]) => k !== null).sort((a, b) => b[1] - a[1]);
  const top = ranked.slice(0, MAX_CATEGORIES);
  const codeOf = new Map();
  const colors = [MISSING, OTHER];
  const items = [];
  top.forEach(([k, count], j) => {
    codeOf.set(k, j + 2);
    colors.push(colorAt(j));
    items.push({ key: k, label: k, color: colorAt(j), count, code: j + 2, kind: 'category' });
  });
  const rest = ranked.slice(MAX_CATEGORIES);
  const codes = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    const k = v === null || v === undefined || v === '' || (typeof v === 'number' && Number.isNaN(v)) ? null : String(v);
    codes[i] = k === null ? 0 : codeOf.has(k) ? codeOf.get(k) : 1;
  }
  if (rest.length) items.push({ key: '__other__', label: `${rest.length} more`, color: OTHER, count: rest.reduce((s, r) => s + r[1], 0), code: 1, kind: 'other' });
  if (counts.get(null)) items.push({ key: null, label: missingLabel, color: MISSING, count: counts.get(null), code: 0, kind: 'missing' });
  return { codes, colors, items, noiseCode: -1 };
}

/**
 * Encode the map's colouring by the user's classes: `classes` [{id, name, color}], `membership` Map clip id ->
 * [class ids] (a clip in several classes takes the colour of the last). Code 0 is "unlabelled".
 */
export function encodeClasses(n, classes, membership) {
  const codes = new Float32Array(n);
  const colors = [MISSING];
  const items = [];
  const counts = new Int32Array(classes.length + 1);
  const codeOf = new Map();
  classes.forEach((k, j) => {
    codeOf.set(k.id, j + 1);
    colors.push(k.color || colorAt(j));
  });
  for (const [i, ids] of membership) {
    if (i >= n) continue;
    codes[i] = codeOf.get(ids[ids.length - 1]) || 0;
  }
  for (let i = 0; i < n; i++) counts[codes[i]]++;
  classes.forEach((k, j) => {
    items.push({ key: k.id, label: k.name, color: colors[j + 1], count: counts[j + 1], code: j + 1, kind: 'class' });
  });
  items.push({ key: null, label: 'unlabelled', color: MISSING, count: counts[0], code: 0, kind: 'missing' });
  return { codes, colors, items, noiseCode: 0 };
}
