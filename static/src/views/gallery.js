// The gallery: tiles of the focused cluster / selection / class, typical members first, outliers last.
// Hover a tile to hear it; "Play all" plays members one after another.
import { state, subscribe } from '../state.js';
import { actions } from '../actions.js';
import { applyTile } from '../clips.js';
import { escapeHtml, fmtInt, el } from '../util.js';
import { focusSpeciesText } from '../birdnet.js';

const PAGE = 240;
const TILE_W = 84;

const birdnetLine = (f) => {
  const t = focusSpeciesText(f);
  return t ? ` · BirdNET ${t}` : '';
};

/** A badge when every clip of the focused cluster(s) comes from one recording (recording dominance). */
function oneRecordingBadge(f) {
  if (f.kind !== 'cluster' || !state.cluster || f.clusterIds.some((c) => c < 0)) return null;
  const byId = new Map((state.cluster.result.clusters || []).map((c) => [c.id, c]));
  const infos = f.clusterIds.map((c) => byId.get(c));
  if (!infos.every((c) => c && c.single_recording)) return null;
  const recs = new Set(Array.from(f.ids, (i) => (state.clips && state.clips.recording_id ? state.clips.recording_id[i] : i)));
  if (state.clips && state.clips.recording_id && recs.size !== 1) return null;
  return el('span', { class: 'lg-one-rec', id: 'gallery-one-rec', title: 'every clip comes from one recording: perhaps one recording’s noise rather than a sound type' }, 'one recording');
}

export function initGallery(root) {
  let shown = PAGE;
  let lastOrder = null;

  const render = () => {
    const f = state.focus;
    const order = state.galleryOrder;
    if (order !== lastOrder) {
      shown = PAGE;
      lastOrder = order;
    }
    if (!f || !order) {
      root.innerHTML = `<div class="gallery-empty">
        <b>Gallery</b> — click a cluster in the legend, lasso points on the map (Shift+drag), or pick one of your classes.
        Its members appear here, the most typical first.</div>`;
      return;
    }
    if (!state.clips) {
      root.innerHTML = `<div class="gallery-empty"><b>${escapeHtml(f.label)}</b> — loading clip details…</div>`;
      return;
    }
    const isClass = f.kind === 'class';
    const klass = isClass ? state.classes.find((k) => k.id === f.classId) : null;
    root.innerHTML = '';
    const play = el('button', { class: 'primary', id: 'play-all', onclick: () => (state.playingSequence ? actions.stopSequence() : actions.playSequence()) },
      state.playingSequence ? '■ Stop' : '▶ Play all');
    const zoom = el('button', { class: 'tool', onclick: () => actions.zoomTo(f.ids) }, 'Show on map');
    const clear = el('button', { class: 'tool', title: 'Esc', onclick: () => actions.clearFocus() }, '✕');
    const head = el('div', { class: 'gallery-head' },
      el('span', { class: 'sw', style: { background: klass ? klass.color || '#888' : 'transparent' } }),
      el('b', { id: 'gallery-title' }, f.label),
      el('span', { class: 'muted' }, ` · ${fmtInt(order.length)} clip${order.length === 1 ? '' : 's'}${order.length > 1 ? (f.sims ? ', most similar first' : f.kind === 'review' ? ', in review order' : ', typical first') : ''}`),
      f.fullOrder && f.fullOrder.length !== order.length ? el('span', { class: 'muted', id: 'gallery-filtered' }, ` · ${fmtInt(f.fullOrder.length - order.length)} filtered out`) : null,
      el('span', { class: 'muted bn', id: 'gallery-birdnet', title: 'BirdNET: top species, mean score, clips' }, birdnetLine(f)),
      oneRecordingBadge(f),
      el('span', { class: 'spacer' }),
      order.length ? play : null,
      zoom,
      clear,
    );
    const grid = el('div', { class: 'tiles', id: 'gallery-tiles' });
    const n = Math.min(order.length, shown);
    const frag = document.createDocumentFragment();
    for (let j = 0; j < n; j++) {
      const i = order[j];
      const t = el('div', { class: `tile${j === state.galleryIndex ? ' current' : ''}${i === state.pinned ? ' pinned' : ''}`, 'data-j': String(j), 'data-clip': String(i) });
      applyTile(t, i, TILE_W);
      const rank = f.sims || f.scores; // a similarity result or a review queue: its value on the tile
      const verdict = f.kind === 'review' ? state.learning.judged.get(i) : undefined; // accepted / rejected this round
      if (verdict !== undefined) t.classList.add(verdict ? 'judged-yes' : 'judged-no');
      if (rank) t.append(el('span', { class: 'sim', title: f.sims ? 'cosine similarity' : 'classifier score' }, rank[j].toFixed(2)));
      if (isClass) t.append(el('button', { class: 'rm', title: 'Remove from class', 'data-rm': String(i) }, '×'));
      frag.append(t);
    }
    grid.append(frag);
    if (!order.length) grid.append(el('div', { class: 'muted' }, isClass ? 'This class is empty: select clusters or lasso points, then press its + button.' : ''));
    if (order.length > n) {
      grid.append(el('button', { class: 'tool more', onclick: () => ((shown += PAGE * 2), render()) }, `Show ${fmtInt(Math.min(PAGE * 2, order.length - n))} more…`));
    }
    grid.addEventListener('mouseover', (e) => {
      const t = e.target.closest('.tile');
      if (!t || (e.relatedTarget && t.contains(e.relatedTarget))) return;
      if (state.playingSequence) actions.stopSequence();
      actions.playGalleryIndex(Number(t.dataset.j), e.timeStamp);
    });
    grid.addEventListener('click', (e) => {
      const rm = e.target.closest('[data-rm]');
      if (rm && klass) {
        actions.removeFromClass(klass.id, [Number(rm.dataset.rm)]);
        return;
      }
      const t = e.target.closest('.tile');
      if (t) actions.pin(Number(t.dataset.clip));
    });
    root.append(head, grid);
  };

  const markCurrent = () => {
    const prev = root.querySelector('.tile.current');
    if (prev) prev.classList.remove('current');
    const t = root.querySelector(`.tile[data-j="${state.galleryIndex}"]`);
    if (t) {
      t.classList.add('current');
      t.scrollIntoView({ block: 'nearest', inline: 'nearest' });
    }
  };
  subscribe(['focus', 'galleryOrder', 'classes', 'clips'], render);
  subscribe('galleryIndex', markCurrent);
  subscribe('minConfidence', () => {
    const b = root.querySelector('#gallery-birdnet');
    if (b) b.textContent = birdnetLine(state.focus);
  });
  subscribe('playingSequence', (s) => {
    const b = root.querySelector('#play-all');
    if (b) b.textContent = s.playingSequence ? '■ Stop' : '▶ Play all';
  });
  subscribe('pinned', () => {
    root.querySelectorAll('.tile.pinned').forEach((t) => t.classList.remove('pinned'));
    const t = root.querySelector(`.tile[data-clip="${state.pinned}"]`);
    if (t) t.classList.add('pinned');
  });
  render();
}
