// Learning from the user: train the classifier (one round = one `train` job), colour the map by one
// class's score, query by example (`similar` jobs: a pinned clip, a selection, a class or a dropped sound file),
// say "not this class". Its state: the reactive key `learnModel` and the slice state.learning; the review panel is
// views/review.js, the Learn card views/similar.js. Keys: see learningKey (listed in the help).
import { state, set } from './state.js';
import { api, getScores } from './api.js';
import { listen, requestSimilar, requestTrain, toInt32 } from './socket.js';
import { setFocus } from './focus.js';
import { recolor, setColorBy } from './coloring.js';
import { refreshClasses } from './classes.js';
import { toast, plural } from './toast.js';
import * as review from './views/review.js';

const L = state.learning;
const tick = () => set({ learnTick: state.learnTick + 1 }); // the Learn card follows the jobs
const K_SIMILAR = 60;

/** Socket handlers and the first model read; boot calls this once the collection is known. */
export function initLearning() {
  listen({
    progress: onProgress,
    result: onResult,
    error: onError,
    cancelled: onCancelled,
    labelsChanged: () => refreshNegativesSoon(),
  });
  loadModel();
  refreshNegatives();
}

/** Re-read the model's summary (404: none trained yet). */
export async function loadModel() {
  try {
    const r = await api.learnModel(state.collection);
    set({ learnModel: r.model || null });
    return r.model || null;
  } catch (e) {
    if (e.status !== 404 && e.status !== 409) toast(`Classifier: ${e.message}`, 'error');
    set({ learnModel: null });
    return null;
  }
}

let negTimer = null;
function refreshNegativesSoon() {
  clearTimeout(negTimer);
  negTimer = setTimeout(refreshNegatives, 80);
}

export async function refreshNegatives() {
  try {
    L.negatives = (await api.negatives(state.collection)).negatives || {};
  } catch {
    L.negatives = {};
  }
}

// ------------------------------------------------------------------------------------------------
// training

/** Train one round (T). The Learn card shows its progress; the result updates every class's metrics. */
export async function train() {
  if (L.trainJob && L.trainJob.state === 'running') return toast('Training is already running');
  if (!state.classes.some((k) => k.size > 0)) {
    return toast('Pool some clips into a class first (legend → cluster → a class’s +), then press T to train', 'error');
  }
  L.trainJob = { job_id: null, state: 'running', fraction: 0, message: 'starting…' };
  tick();
  const ack = await requestTrain({ collection: state.collection });
  if (!ack.ok) {
    L.trainJob = { state: 'error', message: ack.error };
    toast(`Training: ${ack.error}`, 'error');
    tick();
    return;
  }
  L.trainJob.job_id = ack.job_id;
}

function trainMessage(m) {
  const parts = m.classes.slice(0, 3).map((c) => {
    const d = c.delta && c.delta.ap;
    return `${c.name} AP ${c.ap.toFixed(2)}${d === null || d === undefined ? '' : ` (${d >= 0 ? '+' : ''}${d.toFixed(2)})`}`;
  });
  return `Round ${m.round} trained: ${parts.join(' · ')}${m.classes.length > 3 ? ' …' : ''}`;
}

// ------------------------------------------------------------------------------------------------
// colouring by score

/** The legend's extra colour modes: one per class of the model. */
export function scoreOptions() {
  const m = state.learnModel;
  return m ? m.classes.map((c) => [`score:${c.class_id}`, `score: ${c.name}`]) : [];
}

/** Colour the map by one class's score (fetches the scores first). */
export async function colorByScore(classId) {
  await ensureScores(classId);
  setColorBy(`score:${classId}`);
}

async function ensureScores(classId) {
  const m = state.learnModel;
  const sc = L.scores;
  if (sc && m && sc.classId === classId && sc.round === m.round && sc.values.length === state.n) return sc;
  const values = await getScores(state.collection, classId);
  L.scores = { classId, round: m ? m.round : 0, values };
  return L.scores;
}

/** After a round: colouring by score follows the new scores. */
async function afterRound() {
  if (state.colorBy.startsWith('score:')) {
    const cid = Number(state.colorBy.slice(6));
    if (state.learnModel && state.learnModel.classes.some((c) => c.class_id === cid)) {
      L.scores = null;
      await ensureScores(cid).catch(() => null);
      recolor();
    } else {
      setColorBy('class');
    }
  }
}

// ------------------------------------------------------------------------------------------------
// query by example

/** What "Find similar" searches from now: the pinned clip, else the focus (selection, cluster, class), else the
 * clip you hear. Returns {label, request} or null. */
export function similarSource() {
  const f = state.focus;
  if (state.pinned >= 0) return { label: `clip ${state.pinned}`, request: { clip_ids: [state.pinned] } };
  if (f && f.kind === 'class' && f.ids.length) return { label: `class “${f.label}”`, request: { class_id: f.classId } };
  if (f && f.ids.length && f.kind !== 'similar' && f.kind !== 'review') {
    return { label: `${f.label} (${f.ids.length})`, request: { clip_ids: Array.from(f.ids) } };
  }
  if (state.current >= 0) return { label: `clip ${state.current}`, request: { clip_ids: [state.current] } };
  return null;
}

/** Find the clips most similar to `source` (default: similarSource()); the result becomes the gallery. */
export async function findSimilar(source = similarSource()) {
  if (!source) return toast('Pin a clip (click it), select points or pick a class, then Find similar (F)');
  return runSimilar(source.request, source.label);
}

export function similarToClass(classId) {
  const k = state.classes.find((c) => c.id === classId);
  return runSimilar({ class_id: classId }, `class “${k ? k.name : classId}”`);
}

/** A sound file (dropped or chosen): run through the collection's clip and feature pipeline, never added. */
export async function similarToFile(file) {
  if (!file) return;
  if (file.size > 15 * 2 ** 20) return toast(`${file.name} is larger than 15 MB: use a shorter excerpt`, 'error');
  const data = await file.arrayBuffer();
  return runSimilar({ file: { name: file.name, data } }, `“${file.name}”`);
}

async function runSimilar(request, label) {
  L.similarJob = { job_id: null, label, state: 'running' };
  tick();
  const ack = await requestSimilar({ collection: state.collection, k: K_SIMILAR, ...request });
  if (!ack.ok) {
    L.similarJob = null;
    toast(`Similar: ${ack.error}`, 'error');
    return false;
  }
  L.similarJob.job_id = ack.job_id;
  return true;
}

function applySimilar(m) {
  const order = toInt32(m.clip_ids);
  const sims = toFloat32(m.similarities);
  const label = `Similar to ${L.similarJob ? L.similarJob.label : 'the query'}`;
  L.similarJob = null;
  tick();
  if (!order.length) return toast('No similar clips found');
  setFocus({ kind: 'similar', label, ids: Int32Array.from(order).sort(), order, sims, query: m.query });
  state.stats.lastSimilar = { n: m.n, query: m.query, elapsed_s: m.elapsed_s };
  const q = m.query || {};
  toast(`${plural(order.length, 'similar clip')}${q.kind === 'file' ? ` to ${plural(q.n, 'clip')} of ${q.name}` : ''}: hover to listen, 1–9 adds one`);
}

function toFloat32(b) {
  if (b instanceof ArrayBuffer) return new Float32Array(b.slice(0));
  if (ArrayBuffer.isView(b)) return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  return Float32Array.from(b || []);
}

// ------------------------------------------------------------------------------------------------
// negatives

/** The clip a per-clip key acts on: the gallery's current tile, else the one under the pointer, else the pinned. */
export function clipUnderFocus() {
  if (state.galleryOrder && state.galleryIndex >= 0 && state.galleryIndex < state.galleryOrder.length) {
    return state.galleryOrder[state.galleryIndex];
  }
  if (state.current >= 0) return state.current;
  return state.pinned;
}

/** "Not this class" (Shift+1…9): record that clip i is not in class classId (it leaves the class if it was in). */
export async function notInClass(classId, i = clipUnderFocus(), source = { kind: 'clip' }) {
  if (i < 0) return toast('Hover or pin a clip first');
  const k = state.classes.find((c) => c.id === classId);
  try {
    const r = await api.addNegatives(state.collection, classId, [i], source);
    await refreshClasses();
    toast(`Clip ${i} is not “${k ? k.name : classId}”${r.removed ? ' (taken out of the class)' : ''}`);
    return true;
  } catch (e) {
    toast(e.message, 'error');
    return false;
  }
}

// ------------------------------------------------------------------------------------------------
// socket events (jobs of kinds train / similar; others are not ours)

function onProgress(m) {
  if (L.trainJob && m.job_id === L.trainJob.job_id && L.trainJob.state === 'running') {
    L.trainJob = { ...L.trainJob, fraction: m.fraction || 0, message: m.message || m.stage || '' };
    tick();
  }
}

async function onResult(m) {
  if (m.kind === 'train' && L.trainJob && m.job_id === L.trainJob.job_id) {
    L.trainJob = { job_id: m.job_id, state: 'done', fraction: 1, message: `round ${m.round}` };
    const model = (await loadModel()) || m;
    state.stats.lastTrain = { round: m.round, classes: m.classes };
    toast(trainMessage(model));
    await afterRound();
    review.onNewRound();
  } else if (m.kind === 'similar' && L.similarJob && m.job_id === L.similarJob.job_id) {
    applySimilar(m);
  }
}

function onError(m) {
  if (L.trainJob && m.job_id === L.trainJob.job_id) {
    L.trainJob = { state: 'error', message: m.error };
    tick();
    toast(`Training failed: ${m.error}`, 'error');
  } else if (L.similarJob && m.job_id === L.similarJob.job_id) {
    L.similarJob = null;
    toast(`Similar: ${m.error}`, 'error');
  }
}

function onCancelled(m) {
  if (L.trainJob && m.job_id === L.trainJob.job_id) L.trainJob = { state: 'cancelled', message: 'cancelled' };
  if (L.similarJob && m.job_id === L.similarJob.job_id) L.similarJob = null;
}

// ------------------------------------------------------------------------------------------------
// keys (keyboard.js asks here first; true = handled)
//   T train / retrain · F find similar · Shift+1…9 "not this class" for the clip you hear
//   while reviewing: A accept · X reject · S skip · B back · Esc close the review

export function learningKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return false;
  if (e.shiftKey && /^Digit[1-9]$/.test(e.code || '')) {
    const k = state.classes[Number(e.code.slice(5)) - 1];
    if (!k) return false;
    e.preventDefault();
    notInClass(k.id);
    return true;
  }
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (state.review) {
    const fn = { a: review.accept, x: review.reject, s: review.skip, b: review.back, Escape: review.close }[key];
    if (fn) {
      e.preventDefault();
      fn();
      return true;
    }
  }
  if (key === 't') {
    e.preventDefault();
    train();
    return true;
  }
  if (key === 'f') {
    e.preventDefault();
    findSimilar();
    return true;
  }
  return false;
}
