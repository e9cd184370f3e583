// The review panel: one class's queue from the classifier: the top-scoring unlabelled clips, the
// uncertain ones near the threshold and a few random score-bin draws (for an honest precision estimate). Each clip
// plays as it comes up; A accept (adds it to the class), X reject ("not this class"), S skip, B back. The counter
// shows what was reviewed and the estimated precision at the threshold; "Accept all above threshold" adds every
// unlabelled clip that passes it (one undo step); T retrains, and the queue of the new round follows.
// Its reactive key is state.review; the round's judgements live in state.learning (seen, judged, skipped).
import { state, set, subscribe } from '../state.js';
import { api } from '../api.js';
import { setFocus, clearFocus } from '../focus.js';
import { playClip } from '../listening.js';
import { refreshClasses } from '../classes.js';
import { applyTile, value } from '../clips.js';
import { toast, plural } from '../toast.js';
import { el, fmtInt } from '../util.js';

const L = state.learning;
const QUEUE_N = 20;
const STRATEGY = { top: 'top score', uncertain: 'near the threshold', random: 'random draw', suspect: 'doubtful member' };

/** Open the review of one class (its queue from the last round). */
export async function start(classId) {
  const k = state.classes.find((c) => c.id === classId);
  const m = state.learnModel;
  if (!m || !m.classes.some((c) => c.class_id === classId)) {
    return toast(`Train first (T): “${k ? k.name : classId}” has no scores yet`, 'error');
  }
  L.seen = [];
  L.judged = new Map();
  L.skipped = new Set();
  set({ review: { classId, name: k ? k.name : String(classId), items: [], pos: 0, threshold: null, round: m.round, precision: null, counts: { accepted: 0, rejected: 0, skipped: 0 }, loading: true, log: [] } });
  await loadQueue();
}

async function loadQueue() {
  const r = state.review;
  if (!r) return;
  const exclude = [...L.skipped, ...L.judged.keys()];
  let q;
  try {
    q = await api.learnQueue(state.collection, r.classId, QUEUE_N, exclude.slice(-2000), r.round * 7 + L.seen.length);
  } catch (e) {
    toast(`Review: ${e.message}`, 'error');
    return close();
  }
  if (!state.review || state.review.classId !== r.classId) return;
  L.seen.push(...q.items);
  const items = [...r.items.slice(0, r.pos), ...q.items];
  set({ review: { ...state.review, items, threshold: q.threshold, round: q.round, loading: false } });
  showQueue();
  if (q.items.length) present();
  else toast('Nothing left to review for this class: press T to retrain, or accept all above the threshold');
}

function showQueue() {
  const r = state.review;
  const order = Int32Array.from(r.items.map((it) => it.clip_id));
  if (!order.length) return;
  setFocus({ kind: 'review', label: `Review “${r.name}”`, ids: Int32Array.from(order).sort(), order, scores: Float32Array.from(r.items.map((it) => it.score)) });
}

/** Play the item under review and move the gallery and the map to it. */
function present() {
  const r = state.review;
  const it = r && r.items[r.pos];
  if (!it) return;
  set({ galleryIndex: r.pos, current: it.clip_id });
  state.runtime.map.hover(it.clip_id);
  playClip(it.clip_id);
}

async function advance() {
  const r = state.review;
  const pos = r.pos + 1;
  set({ review: { ...r, pos } });
  if (pos >= r.items.length) await loadQueue();
  else present();
}

async function judge(verdict) {
  const r = state.review;
  const it = r && r.items[r.pos];
  if (!it || r.busy) return;
  set({ review: { ...r, busy: true } });
  const c = state.collection;
  const source = { kind: 'review', class_id: r.classId, round: r.round, strategy: it.strategy };
  try {
    if (verdict === true) await api.addMembers(c, r.classId, [it.clip_id], source);
    else await api.addNegatives(c, r.classId, [it.clip_id], source);
  } catch (e) {
    set({ review: { ...state.review, busy: false } });
    return toast(e.message, 'error');
  }
  const before = L.judged.get(it.clip_id);
  L.judged.set(it.clip_id, verdict);
  L.skipped.delete(it.clip_id);
  const counts = { ...state.review.counts };
  if (before === true) counts.accepted--;
  if (before === false) counts.rejected--;
  counts[verdict ? 'accepted' : 'rejected']++;
  set({ review: { ...state.review, counts, busy: false, log: [...state.review.log, { clip_id: it.clip_id, verdict }] } });
  refreshClasses();
  updatePrecision();
  await advance();
}

export const accept = () => judge(true);
export const reject = () => judge(false);

export async function skip() {
  const r = state.review;
  const it = r && r.items[r.pos];
  if (!it) return;
  if (!L.judged.has(it.clip_id) && !L.skipped.has(it.clip_id)) {
    L.skipped.add(it.clip_id);
    set({ review: { ...r, counts: { ...r.counts, skipped: r.counts.skipped + 1 } } });
  }
  await advance();
}

export function back() {
  const r = state.review;
  if (!r || r.pos === 0) return;
  set({ review: { ...r, pos: r.pos - 1 } });
  present();
}

async function updatePrecision() {
  const r = state.review;
  if (!r || r.threshold === null) return;
  const judgements = Object.fromEntries([...L.judged].map(([k, v]) => [String(k), v]));
  try {
    const p = await api.learnPrecision(state.collection, L.seen, judgements, r.threshold);
    if (state.review && state.review.classId === r.classId) set({ review: { ...state.review, precision: p } });
  } catch {}
}

/** Accept every unlabelled clip scoring at or above the class threshold (one change, one undo). */
export async function acceptAll() {
  const r = state.review;
  if (!r) return;
  try {
    const ch = await api.acceptAbove(state.collection, r.classId);
    await refreshClasses();
    toast(ch.n ? `Added ${plural(ch.n, 'clip')} scoring ≥ ${r.threshold.toFixed(2)} to “${r.name}” (Ctrl+Z undoes)` : 'No unlabelled clip passes the threshold');
  } catch (e) {
    toast(e.message, 'error');
  }
}

/** A new round was trained: the open review continues with the new round's queue. */
export function onNewRound() {
  const r = state.review;
  if (!r) return;
  const m = state.learnModel;
  if (!m || !m.classes.some((c) => c.class_id === r.classId)) return close();
  L.seen = [];
  L.judged = new Map();
  set({ review: { ...r, items: [], pos: 0, round: m.round, precision: null, loading: true, counts: { accepted: 0, rejected: 0, skipped: 0 }, log: [] } });
  loadQueue();
}

export function close() {
  if (!state.review) return;
  set({ review: null });
  if (state.focus && state.focus.kind === 'review') clearFocus();
}

// ------------------------------------------------------------------------------------------------
// the panel (floats over the map's top-right corner while a review is open)

export function initReview(root, { train }) {
  const render = () => {
    const r = state.review;
    root.hidden = !r;
    if (!r) return (root.innerHTML = '');
    const it = r.items[r.pos];
    const m = state.learnModel && state.learnModel.classes.find((c) => c.class_id === r.classId);
    const k = state.classes.find((c) => c.id === r.classId);
    const tile = el('div', { class: 'rq-tile' });
    if (it && state.clips) applyTile(tile, it.clip_id, 128);
    const p = r.precision;
    const prec = p && p.precision !== null && p.precision !== undefined
      ? `${(100 * p.precision).toFixed(0)} %${p.stderr ? ` ± ${(100 * p.stderr).toFixed(0)}` : ''} (${plural(p.n_judged, 'random draw')})`
      : 'judge a few random draws to estimate it';
    const verdict = it ? L.judged.get(it.clip_id) : undefined;
    const btn = (id, label, key, fn, cls = '') => el('button', { class: `rq-btn ${cls}`, id, title: `${label} (${key})`, onclick: fn }, el('kbd', {}, key), ` ${label}`);
    const c = r.counts;
    root.replaceChildren(
      el('div', { class: 'rq-head' },
        el('span', { class: 'sw', style: { background: (k && k.color) || '#888' } }),
        el('b', {}, `Review “${r.name}”`),
        el('span', { class: 'muted' }, ` · round ${r.round}`),
        el('span', { class: 'spacer' }),
        el('button', { class: 'tool small', title: 'Close the review (Esc)', onclick: close }, '✕'),
      ),
      r.loading && !it
        ? el('div', { class: 'muted rq-empty' }, 'loading the queue…')
        : !it
          ? el('div', { class: 'muted rq-empty' }, 'Queue done. Press T to retrain, or accept all above the threshold.')
          : el('div', { class: 'rq-item' },
            tile,
            el('div', { class: 'rq-meta' },
              el('span', { class: 'rq-pos' }, `${r.pos + 1} / ${r.items.length}`),
              el('span', { id: 'review-clip' }, `clip ${it.clip_id}`),
              el('span', { class: `rq-strategy ${it.strategy}` }, STRATEGY[it.strategy] || it.strategy),
              el('span', {}, 'score ', el('b', { id: 'review-score' }, it.score.toFixed(2)), r.threshold !== null ? el('span', { class: 'muted' }, ` / threshold ${r.threshold.toFixed(2)}`) : null),
              value('label', it.clip_id) ? el('span', { class: 'muted' }, `file label: ${value('label', it.clip_id)}`) : null,
              verdict === undefined ? null : el('span', { class: verdict ? 'ok' : 'no' }, verdict ? '✓ accepted' : '✗ rejected'),
            ),
          ),
      el('div', { class: 'rq-keys' },
        btn('review-accept', 'accept', 'A', accept, 'ok'),
        btn('review-reject', 'not this class', 'X', reject, 'no'),
        btn('review-skip', 'skip', 'S', skip),
        btn('review-back', 'back', 'B', back),
      ),
      el('div', { class: 'rq-counter', id: 'review-counter' },
        el('div', {}, el('b', {}, fmtInt(c.accepted + c.rejected)), ' reviewed: ',
          el('span', { class: 'ok' }, `${c.accepted} accepted`), ' · ', el('span', { class: 'no' }, `${c.rejected} rejected`), ` · ${c.skipped} skipped`),
        el('div', {}, `Estimated precision at the threshold: `, el('b', { id: 'review-precision' }, prec)),
        m ? el('div', { class: 'muted' }, `cross-validated AP ${m.ap.toFixed(2)} · precision ${fmt(m.precision)} · recall ${fmt(m.recall)} at ${m.threshold.toFixed(2)}`) : null,
      ),
      el('div', { class: 'rq-actions' },
        el('button', { class: 'tool', id: 'review-accept-all', onclick: acceptAll, title: 'Add every unlabelled clip scoring at or above the threshold (one undo step)' }, 'Accept all above threshold'),
        el('span', { class: 'spacer' }),
        el('button', { class: 'primary', id: 'review-retrain', onclick: train, title: 'Retrain with your judgements (T)' }, el('kbd', {}, 'T'), ' Retrain'),
      ),
    );
  };
  subscribe(['review', 'clips', 'classes', 'learnModel'], render);
  render();
}

const fmt = (v) => (v === null || v === undefined ? '–' : v.toFixed(2));
