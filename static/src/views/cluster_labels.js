// Cluster names on the map (after Embedding Atlas): each cluster's top label (else its top BirdNET species) drawn
// at its centre, the member nearest the members' mean on the map. Decluttered: the largest clusters first, a label
// only where it overlaps no other and where its cluster spans enough of the screen (so zooming in names the small
// ones), never more than MAX_LABELS. Plain DOM over the canvas, moved with the map's data→screen transform.
import { state, set, subscribe } from '../state.js';
import { el } from '../util.js';

const MAX_LABELS = 40;
const ALWAYS = 6; // the largest clusters are named whatever their extent on screen
const MIN_EXTENT_PX = 40;

/** Per cluster: {id, size, text, centre (clip index), bbox [x0, y0, x1, y1] in normalised map units}. */
function clusterPlaces() {
  const c = state.cluster;
  if (!c || !c.labels || !state.nx || !c.result) return [];
  const { labels } = c;
  const { nx, ny } = state;
  const n = Math.min(labels.length, nx.length);
  const info = new Map();
  for (const k of c.result.clusters || []) info.set(k.id, k);
  const acc = new Map();
  for (let i = 0; i < n; i++) {
    const k = labels[i];
    if (k < 0) continue;
    let a = acc.get(k);
    if (!a) acc.set(k, (a = { sx: 0, sy: 0, m: 0, x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity }));
    a.sx += nx[i];
    a.sy += ny[i];
    a.m++;
    a.x0 = Math.min(a.x0, nx[i]);
    a.x1 = Math.max(a.x1, nx[i]);
    a.y0 = Math.min(a.y0, ny[i]);
    a.y1 = Math.max(a.y1, ny[i]);
  }
  const best = new Map();
  for (let i = 0; i < n; i++) {
    const k = labels[i];
    if (k < 0) continue;
    const a = acc.get(k);
    const d = (nx[i] - a.sx / a.m) ** 2 + (ny[i] - a.sy / a.m) ** 2;
    const b = best.get(k);
    if (!b || d < b.d) best.set(k, { i, d });
  }
  const out = [];
  for (const [k, a] of acc) {
    out.push({ id: k, size: a.m, text: clusterName(info.get(k), k), centre: best.get(k).i, bbox: [a.x0, a.y0, a.x1, a.y1] });
  }
  return out.sort((p, q) => q.size - p.size || p.id - q.id);
}

/** The cluster's top recording label, else its top confident BirdNET species, else "Cluster k". */
export function clusterName(info, k) {
  const top = (list) => (list && list.length && list[0][0] && list[0][0] !== 'uncertain' ? String(list[0][0]) : null);
  // BirdNET's top species only when its mean score reaches the page's minimum confidence (as in the legend)
  const sp = info && info.top_species && info.top_species.length ? info.top_species[0] : null;
  const confident = sp && !(sp.length > 2 && Number.isFinite(sp[2]) && sp[2] < (state.minConfidence ?? 0));
  const name = (info && (top(info.top_labels) || (confident ? top(info.top_species) : null))) || `Cluster ${k}`;
  return name.length > 28 ? `${name.slice(0, 27)}…` : name;
}

export function initClusterLabels(wrap) {
  const layer = el('div', { id: 'cluster-labels', class: 'cluster-labels' });
  wrap.append(layer);
  const toggle = el('label', { class: 'check', title: 'Draw each cluster’s top label at its centre' },
    el('input', { type: 'checkbox', id: 'cluster-labels-toggle', checked: state.clusterLabels }), ' cluster names on the map');
  const noise = document.getElementById('hide-noise');
  if (noise && noise.parentElement) noise.parentElement.after(toggle);
  toggle.querySelector('input').onchange = (e) => set({ clusterLabels: e.target.checked });
  let places = [];
  let pending = 0;
  const map = () => state.runtime.map;

  function draw() {
    pending = 0;
    layer.innerHTML = '';
    layer.hidden = !state.clusterLabels;
    const m = map();
    if (!m || !state.clusterLabels || !places.length) return;
    const canvas = m.plot.get('canvas');
    const W = canvas.clientWidth;
    const H = canvas.clientHeight;
    const mask = state.filterMask;
    const taken = [];
    const ppu = Math.abs(m.xScale(1) - m.xScale(0)) / 1; // px per normalised unit
    let shown = 0;
    for (let r = 0; r < places.length && shown < MAX_LABELS; r++) {
      const p = places[r];
      if (mask && !mask[p.centre]) continue;
      const extent = Math.max(p.bbox[2] - p.bbox[0], p.bbox[3] - p.bbox[1]) * ppu;
      if (r >= ALWAYS && extent < MIN_EXTENT_PX) continue;
      const x = m.xScale(state.nx[p.centre]);
      const y = m.yScale(state.ny[p.centre]);
      if (x < 0 || y < 0 || x > W || y > H) continue;
      const w = 7 * p.text.length + 14; // a generous estimate of the pill's width at 12 px
      // kept whole inside the map: near an edge the pill slides along it (its centre clip stays under it)
      const lx = Math.max(w / 2 + 2, Math.min(W - w / 2 - 2, x));
      const ly = Math.max(12, Math.min(H - 12, y));
      const box = [lx - w / 2, ly - 10, lx + w / 2, ly + 10];
      if (taken.some((t) => box[0] < t[2] && box[2] > t[0] && box[1] < t[3] && box[3] > t[1])) continue;
      taken.push(box);
      const label = el('div', { class: 'cluster-label', 'data-cluster': String(p.id), 'data-clip': String(p.centre), title: `${p.text} · cluster ${p.id}, ${p.size} clips` }, p.text);
      label.style.transform = `translate(${lx}px, ${ly}px) translate(-50%, -50%)`;
      layer.append(label);
      shown++;
    }
  }
  const schedule = () => {
    if (!pending) pending = requestAnimationFrame(draw);
  };
  const recompute = () => {
    places = clusterPlaces();
    schedule();
  };
  subscribe(['cluster', 'nx', 'filterMask'], recompute);
  subscribe('clusterLabels', schedule);
  subscribe('minConfidence', recompute);
  if (map()) map().plot.subscribe('view', schedule);
  window.addEventListener('resize', schedule);
  recompute();
}

/** What the test hook reports: the labels drawn now, with their client position. */
export function drawnLabels() {
  return Array.from(document.querySelectorAll('#cluster-labels .cluster-label')).map((e) => {
    const r = e.getBoundingClientRect();
    return { cluster: Number(e.dataset.cluster), clip: Number(e.dataset.clip), text: e.textContent, x: r.left + r.width / 2, y: r.top + r.height / 2, rect: [r.left, r.top, r.right, r.bottom] };
  });
}
