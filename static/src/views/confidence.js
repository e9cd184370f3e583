// The BirdNET card: the minimum confidence (BirdNET-Analyzer's --min_conf, default 0.1; below it a guess reads
// "uncertain") and the "BirdNET disagrees with the label" filter, which shows those clips in the gallery and on
// the map. Hidden when the collection has no BirdNET scores.
import { state, subscribe } from '../state.js';
import { actions } from '../actions.js';
import { hasScores, fmtScore } from '../birdnet.js';
import { debounce, el, fmtInt } from '../util.js';

export function initConfidence(root) {
  const range = el('input', { type: 'range', id: 'min-confidence', min: '0', max: '1', step: '0.01', 'aria-label': 'BirdNET minimum confidence' });
  const num = el('input', { type: 'number', class: 'num', id: 'min-confidence-value', min: '0', max: '1', step: '0.01', 'aria-label': 'BirdNET minimum confidence value' });
  const disagree = el('button', { class: 'tool small', id: 'disagree-filter', 'aria-pressed': 'false', title: 'Clips where BirdNET confidently names another species than the label' });
  const note = el('div', { class: 'muted small bn-note' });
  const why = 'Below this score BirdNET’s guess reads “uncertain” (BirdNET-Analyzer’s --min_conf, default 0.1)';
  root.append(
    el('div', { class: 'row', title: why }, el('h2', {}, 'BirdNET'), el('span', { class: 'spacer' }), el('label', { class: 'muted', for: 'min-confidence-value' }, 'min confidence'), num),
    el('div', { class: 'param', title: why }, range),
    el('div', { class: 'row' }, disagree, note),
  );
  const refresh = debounce(() => {
    if (state.focus && state.focus.kind === 'disagree') actions.focusDisagree(true);
    else actions.refreshDisagree();
  }, 150);
  range.oninput = () => actions.setMinConfidence(range.value);
  num.onchange = () => actions.setMinConfidence(num.value);
  disagree.onclick = () => actions.focusDisagree(!(state.focus && state.focus.kind === 'disagree'));

  const render = () => {
    const v = state.minConfidence;
    if (document.activeElement !== num) num.value = v.toFixed(2);
    range.value = String(v);
    const d = state.disagree;
    const on = !!(state.focus && state.focus.kind === 'disagree');
    disagree.classList.toggle('on', on);
    disagree.setAttribute('aria-pressed', String(on));
    disagree.textContent = `⚑ disagrees with label${d && d.minConfidence === v ? ` · ${fmtInt(d.ids.length)}` : ''}`;
    note.textContent = d && d.minConfidence === v && d.birdnet ? `of ${fmtInt(d.nLabelled)} labelled` : '';
    disagree.title = `Clips where BirdNET names another species than the label with a score ≥ ${fmtScore(v)}`;
  };
  const show = () => {
    root.hidden = !hasScores();
    if (!root.hidden && !state.disagree) actions.refreshDisagree();
  };
  subscribe(['minConfidence', 'disagree', 'focus'], render);
  subscribe('clips', show);
  subscribe('minConfidence', () => {
    if (state.colorBy === 'top_species' || state.colorBy === 'cluster') actions.recolor();
    refresh();
  });
  show();
  render();
}
