// Linked filters (after Embedding Atlas): histograms of a few clip-table columns; brushing a numeric range or
// clicking categorical bars keeps only the clips that pass every filter, on the map (hidden) and in the gallery.
// Its state is state.filters (ranges, cats, the columns' values) and the reactive state.filterMask.
import { state, set } from './state.js';

/** The filterable columns, in panel order: [name, title, kind]. */
export const FILTER_COLUMNS = [
  ['date', 'Date', 'number'],
  ['country', 'Country', 'category'],
  ['quality', 'Quality', 'category'],
  ['recording_id', 'Recording', 'category'],
  ['top_score', 'BirdNET score', 'number'],
];
const BINS = 24;
const MAX_BARS = 8;

const f = state.filters;

/** "2019-05-17" (or "2019-05", "2019") → fractional year 2019.37; NaN when unknown. */
export function dateToYear(s) {
  const m = /^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?/.exec(String(s ?? ''));
  if (!m) return NaN;
  const month = m[2] ? Math.min(12, Math.max(1, Number(m[2]))) : 1;
  const day = m[3] ? Math.min(31, Math.max(1, Number(m[3]))) : 1;
  return Number(m[1]) + (month - 1) / 12 + (day - 1) / 365;
}

export function fmtYear(y) {
  const year = Math.floor(y);
  const month = Math.min(12, Math.floor((y - year) * 12) + 1);
  return `${year}-${String(month).padStart(2, '0')}`;
}

/** Read the columns once per clip table: numbers as Float64Array (NaN = unknown), categories as codes + labels. */
function columns() {
  const c = state.clips;
  if (!c) return [];
  if (f.cols && f.colsFor === c) return f.cols;
  const n = state.n;
  const out = [];
  for (const [name, title, kind] of FILTER_COLUMNS) {
    const src = c[name];
    if (!src) continue;
    if (kind === 'number') {
      const v = new Float64Array(n);
      let known = 0;
      for (let i = 0; i < n; i++) {
        const x = name === 'date' ? dateToYear(src[i]) : src[i] === null || src[i] === '' ? NaN : Number(src[i]);
        v[i] = x;
        if (Number.isFinite(x)) known++;
      }
      if (!known) continue;
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = 0; i < n; i++) if (Number.isFinite(v[i])) (lo = Math.min(lo, v[i])), (hi = Math.max(hi, v[i]));
      if (name === 'top_score') (lo = Math.min(lo, 0)), (hi = Math.max(hi, 1));
      if (hi - lo < 1e-9) hi = lo + 1;
      out.push({ name, title, kind, values: v, lo, hi });
    } else {
      const codes = new Int32Array(n);
      const keys = new Map();
      const labels = [];
      for (let i = 0; i < n; i++) {
        const raw = src[i];
        const key = raw === null || raw === undefined || raw === '' ? null : String(raw);
        if (key === null) {
          codes[i] = -1;
          continue;
        }
        let k = keys.get(key);
        if (k === undefined) {
          k = labels.length;
          keys.set(key, k);
          labels.push(name === 'recording_id' ? recordingName(i) : key);
        }
        codes[i] = k;
      }
      if (labels.length < 2) continue; // one value filters nothing
      out.push({ name, title, kind, codes, labels, keys });
    }
  }
  f.cols = out;
  f.colsFor = c;
  return out;
}

function recordingName(i) {
  const c = state.clips;
  const name = (c.file_name && c.file_name[i]) || (c.xc_id && c.xc_id[i] && `XC${c.xc_id[i]}`);
  return name ? String(name).split('/').pop() : `recording ${c.recording_id[i]}`;
}

function passesColumn(col, i) {
  if (col.kind === 'number') {
    const r = f.ranges[col.name];
    if (!r) return true;
    const v = col.values[i];
    return v >= r[0] && v <= r[1];
  }
  const s = f.cats[col.name];
  return !s || !s.size || s.has(col.codes[i]);
}

export const isActive = () => Object.keys(f.ranges).length > 0 || Object.values(f.cats).some((s) => s.size);

/** Recompute state.filterMask (and the gallery's order) after a change; redraws the map through coloring. */
export function applyFilters() {
  const cols = columns();
  let mask = null;
  if (isActive()) {
    const n = state.n;
    mask = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      let ok = 1;
      for (const col of cols) if (!passesColumn(col, i)) (ok = 0);
      mask[i] = ok;
    }
  }
  f.version++;
  set({ filterMask: mask });
  if (state.focus && state.focus.fullOrder) set({ galleryOrder: filterOrder(state.focus.fullOrder), galleryIndex: -1 });
}

/** The clips of `order` (Int32Array) that pass the filters, in order. */
export function filterOrder(order) {
  const mask = state.filterMask;
  if (!mask || !order) return order;
  let k = 0;
  for (let j = 0; j < order.length; j++) if (mask[order[j]]) k++;
  const out = new Int32Array(k);
  k = 0;
  for (let j = 0; j < order.length; j++) if (mask[order[j]]) out[k++] = order[j];
  return out;
}

export function setRange(name, range) {
  if (range) f.ranges[name] = range;
  else delete f.ranges[name];
  applyFilters();
}

export function toggleCategory(name, code) {
  const s = f.cats[name] || (f.cats[name] = new Set());
  if (s.has(code)) s.delete(code);
  else s.add(code);
  if (!s.size) delete f.cats[name];
  applyFilters();
}

export function clearFilters() {
  f.ranges = {};
  f.cats = {};
  applyFilters();
}

/**
 * What the panel draws: per column its bins (numeric) or top bars (categorical), each with `total` (all clips) and
 * `shown` (clips passing every OTHER filter, so a brushed histogram still shows what a wider brush would keep).
 */
export function histograms() {
  const cols = columns();
  const n = state.n;
  const passOthers = (skip, i) => {
    for (const col of cols) if (col !== skip && !passesColumn(col, i)) return false;
    return true;
  };
  return cols.map((col) => {
    if (col.kind === 'number') {
      const total = new Int32Array(BINS);
      const shown = new Int32Array(BINS);
      const w = (col.hi - col.lo) / BINS;
      let unknown = 0;
      for (let i = 0; i < n; i++) {
        const v = col.values[i];
        if (!Number.isFinite(v)) {
          unknown++;
          continue;
        }
        const b = Math.min(BINS - 1, Math.max(0, Math.floor((v - col.lo) / w)));
        total[b]++;
        if (passOthers(col, i)) shown[b]++;
      }
      return { ...col, bins: BINS, binWidth: w, total, shown, unknown, range: f.ranges[col.name] || null };
    }
    const total = new Int32Array(col.labels.length);
    const shown = new Int32Array(col.labels.length);
    for (let i = 0; i < n; i++) {
      const k = col.codes[i];
      if (k < 0) continue;
      total[k]++;
      if (passOthers(col, i)) shown[k]++;
    }
    const order = Array.from(total.keys()).sort((a, b) => total[b] - total[a]);
    const sel = f.cats[col.name] || new Set();
    const top = order.slice(0, MAX_BARS);
    for (const k of sel) if (!top.includes(k)) top.push(k); // a chosen bar never disappears
    const bars = top.map((k) => ({ code: k, label: col.labels[k], total: total[k], shown: shown[k], on: sel.has(k) }));
    return { ...col, bars, more: Math.max(0, col.labels.length - top.length) };
  });
}

export const nShown = () => {
  const m = state.filterMask;
  if (!m) return state.n;
  let k = 0;
  for (let i = 0; i < m.length; i++) k += m[i];
  return k;
};
