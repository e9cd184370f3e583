// The hover card: the clip under the pointer (or stepped to, or pinned): its tile, metadata and a link.
import { state, subscribe, set } from '../state.js';
import { applyTile, value, fmtTime, xenoCantoUrl, classesOf } from '../clips.js';
import { escapeHtml } from '../util.js';
import { guessOf, guessText, disagrees } from '../birdnet.js';

export function initHoverCard(root) {
  const render = () => {
    const i = state.current >= 0 ? state.current : state.pinned;
    if (i < 0 || !state.clips) {
      root.innerHTML = `<h2>Listen</h2><div class="empty">Move the mouse over the map to hear each point.
        Click a point to pin it.</div>`;
      return;
    }
    const species = value('species', i);
    const common = value('common_name', i);
    const label = value('label', i);
    const top = guessText(guessOf(i)); // with its score; "uncertain" below the minimum confidence
    const xc = xenoCantoUrl(i);
    const xcId = value('xc_id', i);
    const cl = state.cluster ? state.cluster.labels[i] : null;
    const classes = classesOf(i);
    const rows = [
      ['label', label],
      ['BirdNET', top],
      ['recordist', value('recordist', i)],
      ['licence', value('license', i)],
      ['file', value('file_name', i)],
      ['time', `${fmtTime(value('start_s', i))} – ${fmtTime(value('end_s', i))}`],
      ['cluster', cl === null ? null : cl < 0 ? 'noise' : String(cl)],
    ].filter(([, v]) => v !== null && v !== '');
    root.innerHTML = `
      <div class="hc-head">
        <h2>${state.pinned === i ? 'Pinned' : 'Listening'} <span class="muted">clip ${i}</span></h2>
        <button class="tool small" data-open-recording="${i}" title="Open the whole recording (R)">recording ▸</button>
        ${state.pinned >= 0 ? '<button class="tool small" data-unpin>unpin</button>' : ''}
      </div>
      <div class="hc-tile"></div>
      <div class="hc-species">${escapeHtml(common || species || label || 'unknown')}</div>
      ${species && common ? `<div class="hc-sci">${escapeHtml(species)}</div>` : ''}
      <table class="meta">${rows.map(([k, v]) => `<tr><th>${k}</th><td>${escapeHtml(v)}${k === 'BirdNET' && disagrees(i) ? ' <span class="bn-disagree" title="BirdNET confidently names another species than the label">≠ label</span>' : ''}</td></tr>`).join('')}</table>
      ${classes.length ? `<div class="chips">${classes.map((k) => `<span class="chip" style="--c:${escapeHtml(k.color || '#888')}">${escapeHtml(k.name)}</span>`).join('')}</div>` : ''}
      ${xc ? `<a class="xc" href="${escapeHtml(xc)}" target="_blank" rel="noopener">${xcId ? `XC${escapeHtml(String(xcId).replace(/^XC/i, ''))}` : 'source'} on xeno-canto ↗</a>` : ''}
    `;
    const tile = root.querySelector('.hc-tile');
    const w = Math.min(268, root.clientWidth - 24 || 268);
    applyTile(tile, i, w);
    const unpin = root.querySelector('[data-unpin]');
    if (unpin) unpin.onclick = () => set({ pinned: -1 });
  };
  let raf = 0;
  subscribe(['current', 'pinned', 'clips', 'cluster', 'classes', 'minConfidence', 'disagree'], () => {
    cancelAnimationFrame(raf);
    raf = requestAnimationFrame(render); // render at most once a frame, never in the hover → sound path
  });
  render();
}
