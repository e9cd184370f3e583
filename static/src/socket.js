// Every Socket.IO event name the page uses, and the one connection.
import { io } from 'socket.io-client';
import { serverToken } from './api.js';
import { state } from './state.js';

export const EVENTS = {
  join: 'join',
  cluster: 'cluster',
  cancel: 'cancel',
  progress: 'job:progress',
  result: 'job:result',
  error: 'job:error',
  cancelled: 'job:cancelled',
  labelsChanged: 'labels:changed',
  // adding recordings from the browser
  preprocess: 'preprocess',
  preprocessCancel: 'preprocess:cancel',
  preprocessFile: 'preprocess:file',
  preprocessClips: 'preprocess:clips',
  remap: 'remap',
  // learning (server/jobs/learn.py)
  similar: 'similar',
  train: 'train',
  // refine (server/jobs/refine.py)
  refine: 'refine',
  refineRound: 'refine:round',
};

/** The one connection (state.runtime.socket), made on first use. */
function ensureSocket() {
  const rt = state.runtime;
  // the cookie carries the token; the <meta> token is sent too, for browsers that hold no cookie
  const token = serverToken();
  if (!rt.socket) rt.socket = io({ transports: ['websocket', 'polling'], ...(token ? { query: { token } } : {}) });
  return rt.socket;
}

/**
 * Add handlers, keyed by EVENTS names (`{progress: fn, result: fn, …}`; `connect` runs on every (re)connection,
 * at once if already connected). Call once per module: each call adds listeners.
 */
export function listen(handlers) {
  const s = ensureSocket();
  for (const [key, fn] of Object.entries(handlers)) {
    if (key === 'connect') {
      s.on('connect', fn);
      if (s.connected) fn();
    } else if (EVENTS[key]) {
      s.on(EVENTS[key], fn);
    } else {
      throw new Error(`unknown socket event ${key}`);
    }
  }
}

function whenConnected(timeoutMs) {
  const s = ensureSocket();
  if (s.connected) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

async function emitAck(event, payload, timeoutMs = 15000) {
  if (!(await whenConnected(timeoutMs))) return { ok: false, error: 'no connection to the server' };
  return new Promise((resolve) => {
    ensureSocket().timeout(timeoutMs).emit(event, payload, (err, ack) => {
      if (err) resolve({ ok: false, error: 'the server did not answer' });
      else resolve(ack || { ok: true });
    });
  });
}

export const joinCollection = (collection) => emitAck(EVENTS.join, { collection });

/** Request a clustering; resolves to the ack {ok, job_id, cached} or {ok: false, error, allowed}. */
export const requestCluster = (req) => emitAck(EVENTS.cluster, req);

/** Start processing uploaded files: {collection | new_collection, uploads: [upload_id…]} → ack {ok, job_id}. */
export const requestPreprocess = (req) => emitAck(EVENTS.preprocess, req, 30000);

/** Fit the map again with every clip: {collection, key} → ack {ok, job_id}. */
export const requestRemap = (req) => emitAck(EVENTS.remap, req);

/** Query by example: {collection, k, clip_ids | class_id | file: {name, data: ArrayBuffer}} → ack {ok, job_id}. */
export const requestSimilar = (req) => emitAck(EVENTS.similar, req, 30000);

/** Train the classifier (one round): {collection, features?} → ack {ok, job_id}. */
export const requestTrain = (req) => emitAck(EVENTS.train, req);
/** Refine a feature set from its own clusters: {collection, features?, iterations?} → ack {ok, job_id}. */
export const requestRefine = (req) => emitAck(EVENTS.refine, req);

/**
 * Cancel job `jobId` of kind 'cluster' | 'preprocess' | 'remap'; resolves to the ack {ok} or {ok: false, error}.
 * `cancel {job_id}` is the one event for every kind; servers that know preprocess jobs only by
 * `preprocess:cancel` refuse it for those, so that is asked next.
 */
export async function cancelJob(jobId, kind = 'cluster') {
  const ack = await emitAck(EVENTS.cancel, { job_id: jobId }, 5000);
  if (ack.ok || kind === 'cluster') return ack;
  return emitAck(EVENTS.preprocessCancel, { job_id: jobId }, 5000);
}

/** socket.io-client delivers binary as ArrayBuffer (or a typed view); return Int32Array labels. */
export function toInt32(labels) {
  if (labels instanceof ArrayBuffer) return new Int32Array(labels.slice(0));
  if (ArrayBuffer.isView(labels)) {
    const copy = labels.buffer.slice(labels.byteOffset, labels.byteOffset + labels.byteLength);
    return new Int32Array(copy);
  }
  if (Array.isArray(labels)) return Int32Array.from(labels);
  return new Int32Array(0);
}
