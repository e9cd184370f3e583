// Every Socket.IO event name the page uses, and the one connection.
import { io } from 'socket.io-client';

export const EVENTS = {
  join: 'join',
  cluster: 'cluster',
  cancel: 'cancel',
  progress: 'job:progress',
  result: 'job:result',
  error: 'job:error',
  cancelled: 'job:cancelled',
  labelsChanged: 'labels:changed',
  // issue 7: adding recordings from the browser
  preprocess: 'preprocess',
  preprocessCancel: 'preprocess:cancel',
  preprocessFile: 'preprocess:file',
  preprocessClips: 'preprocess:clips',
  remap: 'remap',
};

let socket = null;

/** Connect once; handlers: {onProgress, onResult, onError, onCancelled, onLabelsChanged, onConnect}. */
export function connect(handlers) {
  // One connection per page: a second call (e.g. uploads connected first) adds its handlers to the same socket.
  // issue 13: the cookie carries the token; the <meta> token is sent too, for browsers that hold no cookie
  const token = document.querySelector('meta[name="sonomap-token"]')?.content;
  if (!socket) socket = io({ transports: ['websocket', 'polling'], ...(token ? { query: { token } } : {}) });
  socket.on('connect', () => handlers.onConnect && handlers.onConnect());
  if (socket.connected && handlers.onConnect) handlers.onConnect();
  socket.on(EVENTS.progress, (m) => handlers.onProgress && handlers.onProgress(m));
  socket.on(EVENTS.result, (m) => handlers.onResult && handlers.onResult(m));
  socket.on(EVENTS.error, (m) => handlers.onError && handlers.onError(m));
  socket.on(EVENTS.cancelled, (m) => handlers.onCancelled && handlers.onCancelled(m));
  socket.on(EVENTS.labelsChanged, (m) => handlers.onLabelsChanged && handlers.onLabelsChanged(m));
  return socket;
}

function whenConnected(timeoutMs) {
  if (socket && socket.connected) return Promise.resolve(true);
  return new Promise((resolve) => {
    if (!socket) return resolve(false);
    const t = setTimeout(() => resolve(false), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

async function emitAck(event, payload, timeoutMs = 15000) {
  if (!(await whenConnected(timeoutMs))) return { ok: false, error: 'no connection to the server' };
  return new Promise((resolve) => {
    socket.timeout(timeoutMs).emit(event, payload, (err, ack) => {
      if (err) resolve({ ok: false, error: 'the server did not answer' });
      else resolve(ack || { ok: true });
    });
  });
}

export const joinCollection = (collection) => emitAck(EVENTS.join, { collection });

/** Request a clustering; resolves to the ack {ok, job_id, cached} or {ok: false, error, allowed}. */
export const requestCluster = (req) => emitAck(EVENTS.cluster, req);

export const cancelJob = (jobId) => emitAck(EVENTS.cancel, { job_id: jobId });

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

// issue 7: uploads. The page may have no collection yet (no connect() from boot): connect on first use.
export function ensureSocket() {
  if (!socket) connect({});
  return socket;
}
export const requestPreprocess = (req) => (ensureSocket(), emitAck(EVENTS.preprocess, req, 30000));
export const cancelPreprocess = (jobId) => emitAck(EVENTS.preprocessCancel, { job_id: jobId });
export const requestRemap = (req) => (ensureSocket(), emitAck(EVENTS.remap, req));
