// The filter panel: one small histogram per filterable column, over the map's top-left corner. Drag across a
// numeric histogram to brush a range (a click without a drag clears it); click categorical bars to keep them.
// Grey bars: every clip; blue: the clips that pass the other filters. The chip under it says how many are shown.
import { state, subscribe } from '../state.js';
import { recolor } from '../coloring.js';
import { histograms, setRange, toggleCategory, clearFilters, isActive, nShown, fmtYear, applyFilters } from '../filtering.js';
import { el, escapeHtml, fmtInt } from '../util.js';

const W = 224; // histogram width, px
const H = 34;

export function initFilters(wrap) {
  const button = el('button', { class: 'tool', id: 'filters-toggle', title: 'Filter the map and the gallery by date, country, quality, recording, BirdNET score' }, '≡ Filters');
  const fit = document.getElementById('zoom-reset');
  if (fit) fit.after(button);
  const panel = el('section', { id: 'filters', class: 'filters-panel', hidden: true });
  const chip = el('div', { id: 'filter-chip', class: 'filter-chip', hidden: true });
  wrap.append(panel, chip);
  button.onclick = () => {
    panel.hidden = !panel.hidden;
    button.classList.toggle('on', !panel.hidden);
    if (!panel.hidden) render();
  };

  const render = () => {
    const active = isActive();
    chip.hidden = !active;
    if (active) {
      chip.innerHTML = `<b>${fmtInt(nShown())}</b> of ${fmtInt(state.n)} clips shown <button class="tool small" data-clear>Clear filters</button>`;
      chip.querySelector('[data-clear]').onclick = () => clearFilters();
    }
    button.textContent = active ? `≡ Filters · ${fmtInt(nShown())}` : '≡ Filters';
    if (panel.hidden) return;
    const hs = state.clips ? histograms() : [];
    panel.innerHTML = '';
    panel.append(el('div', { class: 'row' },
      el('h2', {}, 'Filters'), el('span', { class: 'spacer' }),
      el('button', { class: 'tool small', id: 'filters-clear', disabled: !active, onclick: () => clearFilters() }, 'Clear'),
      el('button', { class: 'tool small', title: 'Close', onclick: () => button.click() }, '✕')));
    if (!hs.length) panel.append(el('div', { class: 'muted' }, state.clips ? 'No column to filter by in this collection.' : 'Loading clip details…'));
    for (const h of hs) panel.append(h.kind === 'number' ? numeric(h) : categorical(h));
  };

  subscribe('filterMask', () => {
    recolor();
    render();
  });
  subscribe('clips', () => (isActive() ? applyFilters() : render()));
  render();
}

function numeric(h) {
  const max = Math.max(1, ...h.total);
  const bw = W / h.bins;
  const bars = [];
  for (let b = 0; b < h.bins; b++) {
    const t = (h.total[b] / max) * H;
    const s = (h.shown[b] / max) * H;
    if (h.total[b]) bars.push(`<rect class="t" x="${b * bw + 0.5}" y="${H - t}" width="${bw - 1}" height="${t}"/>`);
    if (h.shown[b]) bars.push(`<rect class="s" x="${b * bw + 0.5}" y="${H - s}" width="${bw - 1}" height="${s}"/>`);
  }
  const fmt = (v) => (h.name === 'date' ? fmtYear(v) : v.toFixed(2));
  const toX = (v) => ((v - h.lo) / (h.hi - h.lo)) * W;
  const r = h.range;
  const brush = r ? `<rect class="brush" x="${toX(r[0])}" y="0" width="${Math.max(1, toX(r[1]) - toX(r[0]))}" height="${H}"/>` : '';
  const box = el('div', { class: 'hist', 'data-col': h.name });
  box.innerHTML = `<div class="hist-head"><b>${escapeHtml(h.title)}</b><span class="muted">${r ? `${fmt(r[0])} – ${fmt(r[1])}` : `${fmt(h.lo)} – ${fmt(h.hi)}`}</span></div>
    <svg width="${W}" height="${H}" class="hist-svg">${bars.join('')}${brush}</svg>
    ${h.unknown ? `<div class="muted small">${fmtInt(h.unknown)} unknown</div>` : ''}`;
  const svg = box.querySelector('svg');
  const valueAt = (clientX) => {
    const x = Math.max(0, Math.min(W, clientX - svg.getBoundingClientRect().left));
    return h.lo + (x / W) * (h.hi - h.lo);
  };
  svg.addEventListener('pointerdown', (e) => {
    e.preventDefault();
    svg.setPointerCapture(e.pointerId);
    const x0 = e.clientX;
    const v0 = valueAt(x0);
    let live = svg.querySelector('.brush');
    if (!live) {
      live = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
      live.setAttribute('class', 'brush');
      live.setAttribute('y', '0');
      live.setAttribute('height', String(H));
      svg.append(live);
    }
    const move = (ev) => {
      const a = toX(Math.min(v0, valueAt(ev.clientX)));
      const b = toX(Math.max(v0, valueAt(ev.clientX)));
      live.setAttribute('x', String(a));
      live.setAttribute('width', String(Math.max(1, b - a)));
    };
    const up = (ev) => {
      svg.removeEventListener('pointermove', move);
      svg.removeEventListener('pointerup', up);
      if (Math.abs(ev.clientX - x0) < 3) return setRange(h.name, null); // a click clears the brush
      const v1 = valueAt(ev.clientX);
      setRange(h.name, [Math.min(v0, v1), Math.max(v0, v1)]);
    };
    svg.addEventListener('pointermove', move);
    svg.addEventListener('pointerup', up);
  });
  return box;
}

function categorical(h) {
  const max = Math.max(1, ...h.bars.map((b) => b.total));
  const box = el('div', { class: 'hist cat', 'data-col': h.name });
  box.append(el('div', { class: 'hist-head' }, el('b', {}, h.title), el('span', { class: 'muted' }, h.more ? `top ${h.bars.length}, ${fmtInt(h.more)} more` : '')));
  const anyOn = h.bars.some((b) => b.on);
  for (const b of h.bars) {
    const row = el('div', { class: `bar-row${b.on ? ' on' : ''}${anyOn && !b.on ? ' off' : ''}`, 'data-code': String(b.code), title: `${b.label}: ${fmtInt(b.shown)} of ${fmtInt(b.total)} clips` },
      el('span', { class: 'bar-label' }, b.label),
      el('span', { class: 'bar-track' },
        el('span', { class: 'bar-t', style: { width: `${(100 * b.total) / max}%` } }),
        el('span', { class: 'bar-s', style: { width: `${(100 * b.shown) / max}%` } })),
      el('span', { class: 'bar-n muted' }, fmtInt(b.shown)));
    row.onclick = () => toggleCategory(h.name, b.code);
    box.append(row);
  }
  return box;
}
