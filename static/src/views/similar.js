// The Learn card: train the classifier (T) and read each class's metrics and their change since the
// previous round; review a class, colour the map by its score; find similar clips (F) to the pinned clip, the
// selection or a class, or to a sound file chosen or dropped on the card; export the model's output.
import { state, subscribe } from '../state.js';
import { urls } from '../api.js';
import * as learning from '../learning.js';
import * as review from './review.js';
import { el } from '../util.js';

const AUDIO = /\.(wav|wave|flac|mp3|ogg|oga|opus|aif|aiff|w64|rf64)$/i;

export function initLearnCard(root) {
  const input = el('input', { type: 'file', id: 'similar-file', accept: 'audio/*', hidden: true });
  input.onchange = () => {
    const f = input.files && input.files[0];
    input.value = '';
    if (f) learning.similarToFile(f);
  };
  document.body.append(input);

  // A sound dropped on the card is a query, not an upload: claim the drop (views/upload.js leaves claimed drops).
  root.addEventListener('dragover', (e) => {
    if (e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files')) {
      e.preventDefault();
      root.classList.add('drop-here');
    }
  });
  root.addEventListener('dragleave', (e) => {
    if (!root.contains(e.relatedTarget)) root.classList.remove('drop-here');
  });
  root.addEventListener('drop', (e) => {
    root.classList.remove('drop-here');
    const f = Array.from((e.dataTransfer && e.dataTransfer.files) || []).find((x) => AUDIO.test(x.name));
    if (!f) return; // not a sound: the page's "Add recordings" takes it
    e.preventDefault();
    learning.similarToFile(f);
  });

  const render = () => {
    const m = state.learnModel;
    const job = state.learning.trainJob;
    const running = job && job.state === 'running';
    const src = learning.similarSource();
    const sim = state.learning.similarJob;
    const trainBtn = el('button', { class: 'primary small', id: 'train', title: 'Train the classifier on your classes (T)', disabled: running, onclick: learning.train },
      el('kbd', {}, 'T'), m ? ' Retrain' : ' Train');
    const head = el('div', { class: 'row' }, el('h2', {}, 'Learn'), m ? el('span', { class: 'muted small', id: 'learn-round' }, `round ${m.round}`) : null, el('span', { class: 'spacer' }), trainBtn);
    const bar = running || (job && job.state === 'error')
      ? el('div', { class: 'job', 'data-state': job.state },
        el('div', { class: 'bar' }, el('div', { class: 'fill', style: { width: `${Math.round(100 * (job.fraction || 0))}%` } })),
        el('div', { class: 'job-text muted' }, running ? `training… ${job.message || ''}` : `error: ${job.message}`))
      : null;
    const rows = m
      ? el('table', { class: 'learn-metrics', id: 'learn-metrics' },
        el('tr', {}, el('th', {}, 'class'), el('th', { title: 'cross-validated average precision; precision / recall at the threshold' }, 'AP · P / R'), el('th', {}, '')),
        ...m.classes.map((c) => {
          const k = state.classes.find((x) => x.id === c.class_id);
          return el('tr', { 'data-class': String(c.class_id) },
            el('td', { class: 'lm-name' }, el('span', { class: 'sw', style: { background: (k && k.color) || '#888' } }), c.name),
            el('td', { class: 'lm-num', title: `threshold ${c.threshold.toFixed(2)}` },
              el('div', {}, 'AP ', el('b', {}, c.ap.toFixed(2)), delta(c.delta && c.delta.ap)),
              el('div', { class: 'muted' }, `P ${fmt(c.precision)} · R ${fmt(c.recall)}`)),
            el('td', { class: 'lm-actions' },
              el('button', { class: 'tool small', title: `Review “${c.name}”: accept / reject its suggestions`, 'data-review': String(c.class_id), onclick: () => review.start(c.class_id) }, '▶ Review'),
              el('button', { class: `tool small${state.colorBy === `score:${c.class_id}` ? ' on' : ''}`, title: `Colour the map by the score of “${c.name}”`, onclick: () => learning.colorByScore(c.class_id) }, '◐'),
              el('button', { class: 'tool small', title: `Clips similar to “${c.name}”`, onclick: () => learning.similarToClass(c.class_id) }, '≈')),
          );
        }))
      : el('div', { class: 'muted small' }, 'Pool clips into classes, then press T: a classifier learns each class from its members and scores every clip.');
    const simRow = el('div', { class: 'similar-row' },
      el('button', { class: 'tool small', id: 'find-similar', disabled: !!sim, title: 'The clips most like this (F)', onclick: () => learning.findSimilar() },
        el('kbd', {}, 'F'), sim ? ` searching ${sim.label}…` : src ? ` Similar to ${src.label}` : ' Similar to… (pin a clip or select)'),
      el('button', { class: 'tool small', id: 'similar-file-open', title: 'Find clips like a sound file (it is not added to the collection)', onclick: () => input.click() }, 'Sound file…'),
    );
    const hint = el('div', { class: 'muted small drop-hint' }, '…or drop a sound file on this card');
    const exp = m
      ? el('div', { class: 'learn-export small' }, el('span', { class: 'muted' }, 'Export: '),
        el('a', { href: urls.learnExport(state.collection, 'predictions'), download: '', id: 'export-predictions' }, 'predictions CSV'), ' · ',
        el('a', { href: urls.learnExport(state.collection, 'detections'), download: '' }, 'detections (Raven)'), ' · ',
        el('a', { href: urls.learnExport(state.collection, 'model'), download: '' }, 'model'))
      : null;
    root.replaceChildren(head, bar || '', rows, simRow, hint, exp || '');
  };
  subscribe(['learnModel', 'learnTick', 'classes', 'pinned', 'focus', 'colorBy'], render);
  render();
}

const fmt = (v) => (v === null || v === undefined ? '–' : v.toFixed(2));

function delta(d) {
  if (d === null || d === undefined || Math.abs(d) < 0.005) return '';
  return el('span', { class: `delta ${d > 0 ? 'up' : 'down'}` }, ` ${d > 0 ? '▲' : '▼'}${Math.abs(d).toFixed(2)}`);
}
