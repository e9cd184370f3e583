// Colour-by selector and the legend with counts; clicking a row focuses those points.
import { state, subscribe } from '../state.js';
import { actions } from '../actions.js';
import { escapeHtml, fmtInt } from '../util.js';
import { scoreOptions } from '../learning.js';

const PREFERRED = ['label', 'species', 'common_name', 'top_species', 'recordist', 'license', 'country', 'sound_type', 'recording_id'];
const SKIP = new Set(['clip_id', 'start_s', 'end_s', 'sheet', 'cell', 'audio_sprite', 'audio_offset', 'audio_length', 'url', 'fmin_hz', 'fmax_hz', 'top_score']);

/** The one-recording flag of a cluster row (a cluster from one recording may be one noisy recording, not a sound). */
function recFlag(it) {
  if (it.nRecordings == null) return '';
  const share = `${Math.round(100 * (it.topShare || 0))}%`;
  if (it.singleRecording) return ` <span class="lg-one-rec" title="every clip comes from one recording: perhaps one recording's noise rather than a sound type">1 recording</span>`;
  return ` <span class="lg-recs muted small" title="${it.nRecordings} recordings; the largest gives ${share} of the clips">${it.nRecordings} rec · ${share}</span>`;
}

export function initLegend(root, select, hideNoise) {
  const renderOptions = () => {
    const cols = state.clips || {};
    const has = (c) =>
      (Array.isArray(cols[c]) || ArrayBuffer.isView(cols[c])) &&
      Array.prototype.some.call(cols[c], (v) => v !== null && v !== '' && v !== undefined);
    const extra = (state.info.columns || []).concat(Object.keys(cols)).filter((c) => !SKIP.has(c));
    const seen = new Set();
    const opts = [['cluster', 'cluster']];
    for (const c of [...PREFERRED, ...extra]) {
      if (seen.has(c) || !has(c)) continue;
      seen.add(c);
      const names = { top_species: 'BirdNET top species', recording_id: 'recording', license: 'licence', xc_id: 'xeno-canto id' };
      opts.push([c, names[c] || c.replace(/_/g, ' ')]);
    }
    opts.push(['class', 'your classes']);
    opts.push(...scoreOptions()); // classifier score of one class
    select.innerHTML = opts.map(([v, t]) => `<option value="${escapeHtml(v)}">${escapeHtml(t)}</option>`).join('');
    select.value = state.colorBy;
  };
  select.onchange = () => (select.value.startsWith('score:') ? actions.colorByScore(Number(select.value.slice(6))) : actions.setColorBy(select.value));
  hideNoise.onchange = () => actions.setHideNoise(hideNoise.checked);

  const render = () => {
    const lg = state.legend;
    select.value = state.colorBy;
    hideNoise.parentElement.querySelector('input').checked = state.hideNoise;
    hideNoise.parentElement.lastChild.textContent = state.colorBy === 'class' ? ' hide unlabelled' : ' hide noise';
    hideNoise.parentElement.hidden = !(state.colorBy === 'cluster' || state.colorBy === 'class');
    if (!lg) return (root.innerHTML = '');
    if (lg.pending) {
      root.innerHTML = `<div class="empty">Waiting for the first clustering…</div>`;
      return;
    }
    const f = state.focus;
    const active = (it) => {
      if (!f) return false;
      if (it.kind === 'cluster' || it.kind === 'noise') return f.kind === 'cluster' && f.clusterIds.includes(it.key);
      if (it.kind === 'class') return f.kind === 'class' && f.classId === it.key;
      return f.kind === 'category' && f.label === `${state.colorBy}: ${it.label}`;
    };
    const max = Math.max(1, ...lg.items.map((it) => it.count));
    const shown = lg.items.slice(0, 400);
    root.innerHTML = shown
      .map(
        (it, j) => `<button class="lg-row${active(it) ? ' active' : ''}" data-j="${j}" title="${escapeHtml(it.hint || it.label)}">
          <span class="sw" style="background:${escapeHtml(it.color)}"></span>
          <span class="lg-name">${escapeHtml(it.label)}${it.hint ? ` <span class="muted">${escapeHtml(it.hint)}</span>` : ''}${it.birdnet ? `<span class="lg-bn" title="BirdNET: top species, mean score, clips">BirdNET ${escapeHtml(it.birdnet)}</span>` : ''}${recFlag(it)}</span>
          <span class="lg-count">${fmtInt(it.count)}</span>
          <span class="lg-bar" style="width:${((100 * it.count) / max).toFixed(1)}%;background:${escapeHtml(it.color)}"></span>
        </button>`,
      )
      .join('') + (lg.items.length > shown.length ? `<div class="muted small">${lg.items.length - shown.length} more…</div>` : '');
    root.querySelectorAll('.lg-row').forEach((b) => {
      b.onclick = (e) => {
        const it = shown[Number(b.dataset.j)];
        const additive = e.shiftKey || e.ctrlKey || e.metaKey;
        if (it.kind === 'cluster' || it.kind === 'noise') actions.focusCluster(it.key, additive);
        else if (it.kind === 'class') actions.focusClass(it.key);
        else actions.focusCategory(it);
      };
    });
  };
  subscribe(['clips', 'info', 'learnModel'], renderOptions);
  subscribe(['legend', 'focus', 'hideNoise', 'colorBy'], render);
  renderOptions();
  render();
}
