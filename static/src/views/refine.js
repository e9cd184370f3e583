// The Refine card: run refine as a job (per-round figures stream into a table; Cancel stops it), switch between the
// original map and the refined one in one click, and say so when the refined map is worse by the validity index
// (the original then stays selected). Owns `state.refine`; the server side is server/jobs/refine.py.
import { api } from '../api.js';
import { state } from '../state.js';
import { listen, requestRefine, cancelJob } from '../socket.js';
import { toast } from '../toast.js';
import { el, escapeHtml } from '../util.js';

const SUFFIX = '-refined';
// [key, heading, format, tooltip]: two decimals so that eight columns fit the side panel
const COLS = [
  ['round', 'round', (v) => String(v), 'round 0 is the original map'],
  ['n_clusters', 'clus.', (v) => String(v), 'clusters (HDBSCAN, the default parameters)'],
  ['noise', 'noise', (v) => `${(100 * v).toFixed(0)}%`, 'share of clips in no cluster'],
  ['agreement', 'agree', (v) => v.toFixed(2), 'agreement with the previous round (ARI); 0.95 stops'],
  ['validity', 'valid.', (v) => v.toFixed(2), 'validity index (DBCV, no labels needed): higher is better'],
  ['nmi', 'NMI', (v) => v.toFixed(2), 'agreement with the recordings’ labels (NMI)'],
  ['ari', 'ARI', (v) => v.toFixed(2), 'agreement with the recordings’ labels (ARI)'],
  ['yield', 'yield', (v) => v.toFixed(2), 'share of labelled clips in a cluster of their own label'],
];

/** The original feature set behind the displayed map (`birdnet` for `birdnet` and `birdnet-refined`). */
const sourceOf = (key) => (key && key.endsWith(SUFFIX) ? key.slice(0, -SUFFIX.length) : key);

function goTo(key) {
  const u = new URL(location.href);
  u.searchParams.set('c', state.collection);
  u.searchParams.set('r', key);
  // the clustering controls restore their saved choice only for the map they were made on
  location.href = u.toString(); // a different reduction is a different map (as the controls' selector does)
}

export function initRefine(root) {
  const r = state.refine;
  const key = state.reduction;
  r.source = sourceOf(key);
  if (!r.source || !(state.info.feature_sets || []).some((f) => f.name === r.source)) {
    root.hidden = true;
    return;
  }
  root.hidden = false;
  r.el = {
    toggle: el('div', { class: 'seg', role: 'group', 'aria-label': 'Map' }),
    run: el('button', { id: 'refine-run', class: 'tool', title: 'Train a small head on the map\u2019s own clusters and re-embed every clip (a few rounds)' }, 'Refine'),
    cancel: el('button', { id: 'refine-cancel', class: 'tool small', hidden: true, title: 'Stop refining (nothing is kept)' }, 'Cancel'),
    status: el('div', { id: 'refine-status', class: 'job-text muted' }),
    bar: el('div', { class: 'bar' }, el('div', { class: 'fill' })),
    notice: el('div', { id: 'refine-notice', class: 'refine-notice', hidden: true }),
    table: el('table', { id: 'refine-rounds', class: 'refine-rounds' }),
  };
  const E = r.el;
  E.run.onclick = () => start();
  E.cancel.onclick = () => cancel();
  root.innerHTML = '';
  root.append(
    el('div', { class: 'row' }, el('h2', {}, 'Refine'), el('span', { class: 'spacer' }), E.toggle),
    el('div', { class: 'job', id: 'refine-job' }, el('div', { class: 'job-row' }, E.run, E.bar, E.cancel), E.status),
    E.notice,
    E.table,
  );

  listen({
    refineRound: (m) => {
      if (m.job_id !== r.jobId) return;
      r.rounds.push(m);
      renderTable();
    },
    progress: (m) => {
      if (m.job_id !== r.jobId || r.state !== 'running') return;
      r.fraction = m.fraction ?? 0;
      r.message = m.message || m.stage || '';
      renderJob();
    },
    result: (m) => {
      if (m.kind !== 'refine' || m.job_id !== r.jobId) return;
      r.state = 'done';
      r.refined = { ...m, complete: true };
      r.rounds = m.rounds || r.rounds;
      r.message = `${r.rounds.length - 1} round${r.rounds.length === 2 ? '' : 's'}, ${m.converged ? 'converged' : 'not converged'}, ${(m.time_s ?? 0).toFixed(0)} s`;
      render();
      toast(m.worse ? 'Refined map is worse by the validity index: the original stays selected' : 'Refined map ready: switch to it above');
    },
    error: (m) => {
      if (m.job_id !== r.jobId) return;
      r.state = 'error';
      r.message = m.error;
      renderJob();
      toast(`Refine failed: ${m.error}`, 'error');
    },
    cancelled: (m) => {
      if (m.job_id !== r.jobId) return;
      r.state = 'cancelled';
      r.message = 'cancelled (nothing kept)';
      renderJob();
    },
  });

  render();
  api
    .refined(state.collection)
    .then((res) => {
      if (r.state === 'running' || r.state === 'done') return;
      r.refined = (res.refined || []).find((s) => s.source === r.source && s.complete) || null;
      if (r.refined) r.rounds = r.refined.rounds || [];
      render();
    })
    .catch(() => {});
}

async function start() {
  const r = state.refine;
  if (r.state === 'running') return;
  r.state = 'running';
  r.rounds = [];
  r.fraction = 0;
  r.message = 'starting…';
  render();
  const ack = await requestRefine({ collection: state.collection, features: r.source });
  if (!ack.ok) {
    r.state = 'error';
    r.message = ack.error || 'failed';
    render();
    toast(`Refine: ${r.message}`, 'error');
    return;
  }
  r.jobId = ack.job_id;
}

async function cancel() {
  const r = state.refine;
  if (r.state !== 'running' || !r.jobId) return;
  const ack = await cancelJob(r.jobId, 'refine');
  if (!ack.ok && r.state === 'running') toast(`Could not cancel: ${ack.error || 'the job has already ended'}`, 'error');
}

function render() {
  renderToggle();
  renderJob();
  renderNotice();
  renderTable();
}

function renderToggle() {
  const r = state.refine;
  const E = r.el;
  const onRefined = state.reduction !== r.source;
  const can = !!(r.refined && r.refined.complete);
  E.toggle.innerHTML = '';
  const b = (label, key, active, enabled, title) =>
    el('button', { class: `tool small${active ? ' on' : ''}`, 'data-key': key, 'aria-pressed': String(active), disabled: !enabled, title, onclick: () => !active && goTo(key) }, label);
  E.toggle.append(
    b('Original', r.source, !onRefined, true, `the ${r.source} map`),
    b('Refined', r.source + SUFFIX, onRefined, can || onRefined, can ? `the ${r.source}${SUFFIX} map` : 'run Refine first'),
  );
  E.toggle.id = 'refine-toggle';
}

function renderJob() {
  const r = state.refine;
  const E = r.el;
  const running = r.state === 'running';
  E.run.disabled = running;
  E.run.textContent = r.refined && !running ? 'Refine again' : 'Refine';
  E.cancel.hidden = !running;
  E.bar.parentElement.parentElement.dataset.state = r.state;
  E.bar.firstChild.style.width = `${(100 * (running ? r.fraction : r.state === 'done' ? 1 : 0)).toFixed(1)}%`;
  E.status.textContent = r.message || (r.refined ? '' : 'Learn from the map\u2019s own clusters: a few rounds, figures per round below.');
}

function renderNotice() {
  const r = state.refine;
  const E = r.el;
  const s = r.refined;
  if (!s || !s.complete || r.state === 'running') {
    E.notice.hidden = true;
    return;
  }
  const v0 = s.validity_original;
  const v1 = s.validity_refined;
  const vs = v0 != null && v1 != null ? ` (validity ${v0.toFixed(2)} → ${v1.toFixed(2)})` : '';
  E.notice.hidden = false;
  E.notice.classList.toggle('worse', !!s.worse);
  E.notice.innerHTML = s.worse
    ? `<b>The refined map is worse</b> by the validity index${escapeHtml(vs)}: the original stays selected. You can still look at it.`
    : `The refined map is not worse by the validity index${escapeHtml(vs)}.`;
}

function renderTable() {
  const r = state.refine;
  const E = r.el;
  const rows = r.rounds || [];
  if (!rows.length) {
    E.table.innerHTML = '';
    return;
  }
  const cols = COLS.filter(([k]) => rows.some((row) => row[k] != null) || ['round', 'n_clusters', 'noise'].includes(k));
  const head = `<tr>${cols.map(([, t, , tip]) => `<th title="${escapeHtml(tip)}">${t}</th>`).join('')}</tr>`;
  const body = rows
    .map((row) => `<tr>${cols.map(([k, , f]) => `<td>${row[k] == null ? '–' : escapeHtml(f(row[k]))}</td>`).join('')}</tr>`)
    .join('');
  E.table.innerHTML = `<thead>${head}</thead><tbody>${body}</tbody>`;
}
