// The one state of the page. Views read `state` and subscribe to the keys they draw; only `set` writes.

export const state = {
  collections: [], // summaries
  collection: null, // name
  info: null, // GET /api/collections/<c> .collection
  config: {}, // info.config
  clips: null, // columnar {clip_id: [...], ...}
  n: 0,
  reduction: null, // key of the displayed map
  xy: null, // Float32Array [n*2], raw map coordinates
  nx: null, // Float32Array [n], normalised to [-1, 1]
  ny: null,
  cluster: null, // {labels: Int32Array, result, request}
  clusterRequest: null, // the request the controls last sent
  job: null, // {job_id, fraction, stage, message, state: 'running'|'done'|'error'|'cancelled'}
  colorBy: 'cluster',
  hideNoise: false,
  hovered: -1, // clip index under the pointer
  pinned: -1, // clicked clip
  current: -1, // clip in the hover card (hovered, else stepped, else pinned)
  focus: null, // {kind: 'cluster'|'lasso'|'category'|'class', label, ids: Int32Array, clusterIds?, classId?}
  galleryOrder: null, // Int32Array of clip ids, typical first
  galleryIndex: -1, // keyboard position in galleryOrder
  classes: [], // [{id, name, color, note, size}]
  members: {}, // class_id -> [clip ids]
  membership: new Map(), // clip id -> [class ids]
  canUndo: false,
  canRedo: false,
  volume: 0.8,
  muted: false,
  playingSequence: false,
  lassoMode: false,
};

const subs = new Map();

/** Subscribe fn(state, changedKeys) to one or more keys ('*' for all). Returns an unsubscribe function. */
export function subscribe(keys, fn) {
  for (const k of [].concat(keys)) {
    if (!subs.has(k)) subs.set(k, new Set());
    subs.get(k).add(fn);
  }
  return () => [].concat(keys).forEach((k) => subs.get(k).delete(fn));
}

/** Merge a patch into the state and notify each subscriber once. */
export function set(patch) {
  const changed = [];
  for (const [k, v] of Object.entries(patch)) {
    if (state[k] !== v) {
      state[k] = v;
      changed.push(k);
    }
  }
  if (!changed.length) return;
  const fns = new Set();
  for (const k of changed) (subs.get(k) || []).forEach((f) => fns.add(f));
  (subs.get('*') || []).forEach((f) => fns.add(f));
  for (const f of fns) {
    try {
      f(state, changed);
    } catch (e) {
      console.error(e);
    }
  }
}
