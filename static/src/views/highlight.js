// New clips ringed on the map for a few seconds after an upload places them (state.highlight): plain DOM rings
// that follow the map's data→screen transform and fade out.
import { state } from '../state.js';
import { el } from '../util.js';

const SHOW_MS = 8000;
const MAX_RINGS = 300;

const hl = state.highlight;

function layer() {
  if (!hl.layer) {
    hl.layer = el('div', { id: 'new-points', class: 'new-points' });
    document.getElementById('map-wrap').append(hl.layer);
    state.runtime.map.plot.subscribe('view', place);
  }
  return hl.layer;
}

function place() {
  const m = state.runtime.map;
  if (!hl.layer || !m || !state.nx) return;
  const canvas = m.plot.get('canvas');
  const W = canvas.clientWidth;
  const H = canvas.clientHeight;
  hl.els.forEach((ring, k) => {
    const i = hl.ids[k];
    const x = m.xScale(state.nx[i]);
    const y = m.yScale(state.ny[i]);
    ring.hidden = !(x >= 0 && y >= 0 && x <= W && y <= H);
    ring.style.transform = `translate(${x}px, ${y}px)`;
  });
}

/** Ring clips `ids` (clip indices already on the map) for a few seconds; clips added meanwhile join them. */
export function highlightClips(ids) {
  const root = layer();
  const showing = hl.ids.length && performance.now() - hl.at < SHOW_MS;
  clearTimeout(hl.timer);
  const fresh = Array.from(ids).filter((i) => i >= 0 && i < state.n);
  hl.ids = (showing ? hl.ids.concat(fresh) : fresh).slice(-MAX_RINGS);
  hl.at = performance.now();
  root.innerHTML = '';
  root.classList.remove('fading');
  hl.els = hl.ids.map(() => el('div', { class: 'new-ring' }));
  root.append(...hl.els);
  place();
  // the map fits its new points on its next frame(s): place the rings again once it has
  requestAnimationFrame(() => requestAnimationFrame(place));
  setTimeout(place, 400);
  hl.timer = setTimeout(() => {
    root.classList.add('fading');
    hl.timer = setTimeout(() => {
      root.innerHTML = '';
      hl.els = [];
      hl.ids = [];
    }, 1200);
  }, SHOW_MS);
}

/** Re-place the rings (after the points were drawn again). */
export const replaceRings = place;
