// The one state of the page. Views read `state` and subscribe to the keys they draw; only `set` writes those keys.
//
// Besides the reactive keys, the state holds slices: plain objects, each owned (mutated in place) by one module and
// read by anyone. Nothing else in the app keeps mutable module-level state.
//   stats      counters and timings a person never sees (the test hook and bench read them)    main, listening, …
//   jobs       the cluster protocol: which job is current, results that beat their ack         clustering.js
//   prefetch   which audio sprites each map cell needs                                          prefetch.js
//   upload     files being added, the preprocess / remap job                                    views/upload.js
//   recording  the whole-recording view (what is open, its elements)                           views/recording.js
//   learning   train / similar jobs, score colouring, the review round's judgements              learning.js
//   runtime    handles made at boot (map, player) and timers                                    main.js, …
//   filters    linked histogram filters (ranges, categories) and their bins                      filtering.js
//   highlight  new clips ringed on the map for a few seconds                                     views/highlight.js
//   refine     the refine job and the refined map's verdict                                     views/refine.js

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
  job: null, // the cluster job: {job_id, fraction, message, state: 'running'|'done'|'error'|'cancelled'}
  colorBy: 'cluster',
  hideNoise: false,
  hovered: -1, // clip index under the pointer
  pinned: -1, // clicked clip
  current: -1, // clip in the hover card (hovered, else stepped, else pinned)
  focus: null, // {kind: 'cluster'|'lasso'|'category'|'class', label, ids: Int32Array, clusterIds?, classId?}
  galleryOrder: null, // Int32Array of clip ids, typical first
  galleryIndex: -1, // keyboard position in galleryOrder
  legend: null, // {codes, colors, items, noiseCode, by}
  classes: [], // [{id, name, color, note, size}]
  members: {}, // class_id -> [clip ids]
  membership: new Map(), // clip id -> [class ids]
  canUndo: false,
  canRedo: false,
  volume: 0.8,
  muted: false,
  playingSequence: false,
  lassoMode: false,
  recordingOpen: false, // the whole-recording view is open
  recordingPlaying: false, // and its audio is playing
  helpOpen: false,
  filterMask: null, // Uint8Array [n] (1 = passes every filter) or null when nothing is filtered
  clusterLabels: true, // the top label drawn at each cluster's centre
  // learning (learning.js, views/review.js, views/similar.js)
  learnModel: null, // GET …/learn/model .model: {round, features, n_clips, classes: [{class_id, name, ap, …, delta}]}
  learnTick: 0, // grows when a train / similar job moves (the Learn card redraws)
  review: null, // {classId, name, items, pos, threshold, round, precision, counts} while the review panel is open
  minConfidence: 0.1, // BirdNET: below it a top species is 'uncertain' (birdnet.js)
  importReport: null, // the last label import's report, or {file, error} (labels_import.js)
  disagree: null, // {minConfidence, ids: Int32Array, nLabelled, birdnet}: clips BirdNET disagrees on (birdnet.js)

  stats: {
    ready: false,
    bootMs: null,
    firstPointsMs: null,
    clipsLoadedMs: null,
    pointsDrawn: 0,
    playbacks: 0,
    lastPlayback: null, // {clip_id, sprite, offset_s, duration_s, t_event, t_handler, t_scheduled, context_state}
    clusterResults: 0,
    lastResult: null, // {job_id, n_clusters, n_noise, request}
    colorVersion: 0, // grows each time the map's colours are drawn
    lastToast: null, // {message, kind}
  },
  jobs: {
    current: null, // job_id of the cluster job whose events count
    early: new Map(), // job_id -> result that arrived before its ack
    send: { seq: 0, inflight: null }, // the latest-only sender of cluster requests (latest.js)
  },
  prefetch: {
    grid: null, // Array(GRID*GRID) of [sprite, count][] sorted by count
    spriteBytes: new Map(), // sprite -> decoded bytes it needs
  },
  upload: {
    state: 'idle', // idle | choosing | uploading | processing | done | error | cancelled
    files: [], // [{file, name, size, sent, status, reason, upload_id, el}]
    jobId: null,
    collection: null,
    created: false,
    addedClips: 0,
    result: null,
    cancelled: false,
    remapJobId: null,
    limits: { max_file_bytes: Infinity, max_chunk_bytes: 4 * 1024 * 1024 },
    panel: null,
    dialog: null,
    listening: false,
  },
  recording: {
    recordingId: null,
    info: null,
    clips: null, // columnar clips of this recording
    tileS: 10,
    pxPerS: 100,
    currentClip: -1,
    follow: true,
    el: null, // {root, audio, scroller, track, playhead}
    source: null, // the <audio> element's node in the player's graph
    tiles: new Map(), // index -> img
    raf: 0,
  },
  filters: {
    ranges: {}, // column -> [lo, hi] (numeric columns; date as a fractional year)
    cats: {}, // column -> Set of category keys
    version: 0, // grows at each change
  },
  highlight: {
    ids: [], // clip ids ringed now
    at: 0, // performance.now() when they were added
    timer: null,
    els: [],
  },
  learning: {
    trainJob: null, // {job_id, fraction, message, state}
    similarJob: null, // job_id of the similarity query whose result counts
    scores: null, // {classId, round, values: Float32Array [n]} for colouring by one class's score
    negatives: {}, // class_id -> [clip ids] judged "not this class"
    seen: [], // queue items shown in this review round (for the precision estimate)
    judged: new Map(), // clip id -> true (accepted) | false (rejected), this round
    skipped: new Set(), // clip ids skipped in this review session
  },
  refine: {
    source: null, // the original feature set behind the map
    state: 'idle', // idle | running | done | error | cancelled
    jobId: null,
    fraction: 0,
    message: '',
    rounds: [], // refine:round payloads (round 0 = the original)
    refined: null, // GET …/refined entry (or the job's result) of source-refined: {complete, worse, validity_*, rounds}
    el: null,
  },
  runtime: {
    socket: null,
    map: null,
    player: null,
    toastTimer: null,
    sequenceTimer: null,
    classesRefresh: null,
    soundPromptDismissed: false,
  },
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
