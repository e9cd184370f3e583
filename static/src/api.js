// Every URL the page uses, and the JSON/binary fetch helpers. Nothing else in the app builds a URL.

const enc = encodeURIComponent;
const base = (c) => `/api/collections/${enc(c)}`;

export const urls = {
  collections: () => '/api/collections',
  collection: (c) => base(c),
  clips: (c) => `${base(c)}/clips`,
  clipsBin: (c) => `${base(c)}/clips.bin`,
  map: (c, key) => `${base(c)}/reductions/${enc(key)}/map.f32`,
  sheet: (c, sheet, ext = 'jpg') => `${base(c)}/sprites/sheet_${String(sheet).padStart(5, '0')}.${ext}`,
  audio: (c, sprite) => `${base(c)}/audio/sprite_${String(sprite).padStart(5, '0')}.flac`,
  classes: (c) => `${base(c)}/classes`,
  klass: (c, id) => `${base(c)}/classes/${enc(id)}`,
  members: (c, id) => `${base(c)}/classes/${enc(id)}/members`,
  undo: (c) => `${base(c)}/labels/undo`,
  redo: (c) => `${base(c)}/labels/redo`,
  exportFile: (c, format = 'csv', labelledOnly = false) =>
    `${base(c)}/export?format=${enc(format)}${labelledOnly ? '&labelled_only=1' : ''}`,
  importFile: (c) => `${base(c)}/import`,
  // learning
  learnModel: (c) => `${base(c)}/learn/model`,
  learnScores: (c, classId) => `${base(c)}/learn/scores.f32?class_id=${enc(classId)}`,
  learnQueue: (c, classId, n = 20, exclude = [], seed = 0) =>
    `${base(c)}/learn/queue?class_id=${enc(classId)}&n=${n}&seed=${seed}${exclude.length ? `&exclude=${exclude.join(',')}` : ''}`,
  learnPrecision: (c) => `${base(c)}/learn/precision`,
  learnExport: (c, format) => `${base(c)}/learn/export?format=${enc(format)}`,
  negatives: (c) => `${base(c)}/negatives`,
  classNegatives: (c, id) => `${base(c)}/classes/${enc(id)}/negatives`,
  acceptAbove: (c, id) => `${base(c)}/classes/${enc(id)}/accept-above`,
  disagree: (c, minConfidence) => `${base(c)}/birdnet/disagree?min_confidence=${enc(minConfidence)}`,
  // uploads and the whole-recording view
  uploads: () => '/api/uploads',
  upload: (id, offset = null) => `/api/uploads/${enc(id)}${offset === null ? '' : `?offset=${offset}`}`,
  uploadLimits: () => '/api/uploads/limits',
  recording: (c, rid) => `${base(c)}/recordings/${enc(rid)}`,
  recordingTile: (c, rid, tileS, i) => `${base(c)}/recordings/${enc(rid)}/tiles/${enc(tileS)}/${enc(i)}.jpg`,
  recordingAudio: (c, rid) => `${base(c)}/recordings/${enc(rid)}/audio`,
  refined: (c) => `${base(c)}/refined`,
};

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** The server's token (rendered into <meta name="sonomap-token">); every request carries it, changes need it. */
export function serverToken() {
  return document.querySelector('meta[name="sonomap-token"]')?.content || '';
}

/** fetch + JSON, raising ApiError(message, status) for HTTP errors and `{ok: false}`. A Blob or FormData body is sent as it is. */
async function request(url, { method = 'GET', body, keepalive = false } = {}) {
  const init = { method, headers: { 'X-Sonomap-Token': serverToken() || '-' }, keepalive };
  if (body instanceof Blob || body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  let data = null;
  try {
    data = await res.json();
  } catch {
    throw new ApiError(`${method} ${url}: HTTP ${res.status}`, res.status);
  }
  if (!res.ok || (data && data.ok === false)) {
    throw new ApiError((data && data.error) || `HTTP ${res.status}`, res.status);
  }
  return data;
}

/** A binary answer's bytes, raising ApiError with the server's JSON error message for HTTP errors. */
async function getBytes(url) {
  const res = await fetch(url);
  if (!res.ok) {
    let msg = `HTTP ${res.status}`;
    try {
      msg = (await res.json()).error || msg;
    } catch {}
    throw new ApiError(msg, res.status);
  }
  return res.arrayBuffer();
}

/** Little-endian float32 x,y pairs → Float32Array [n*2]. */
export async function getMap(c, key) {
  const buf = await getBytes(urls.map(c, key));
  const view = new DataView(buf);
  const n = buf.byteLength >> 2;
  const out = new Float32Array(n);
  // Every browser we target is little-endian; the DataView path keeps us correct elsewhere.
  const le = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  if (le) out.set(new Float32Array(buf, 0, n));
  else for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/**
 * The clip table, columnar: the compact binary form (clips.bin: "SMC1", uint32 header length, JSON header, body of
 * int32/float32/float64 arrays and dictionary-coded strings) when the server has it, else the JSON form.
 */
export async function getClips(c) {
  const res = await fetch(urls.clipsBin(c));
  if (!res.ok) return request(urls.clips(c));
  const buf = await res.arrayBuffer();
  const magic = new TextDecoder().decode(new Uint8Array(buf, 0, 4));
  if (magic !== 'SMC1') return request(urls.clips(c));
  const hlen = new DataView(buf).getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, hlen)));
  const body = 8 + hlen;
  const columns = {};
  const Typed = { int32: Int32Array, float32: Float32Array, float64: Float64Array };
  for (const col of header.columns) {
    const off = body + col.offset;
    if (col.dtype === 'dict') {
      const codes = new Int32Array(buf, off, col.length / 4);
      const values = col.values;
      const out = new Array(codes.length);
      for (let i = 0; i < codes.length; i++) out[i] = codes[i] < 0 ? null : values[codes[i]];
      columns[col.name] = out;
    } else {
      const T = Typed[col.dtype];
      columns[col.name] = new T(buf, off, col.length / T.BYTES_PER_ELEMENT);
    }
  }
  return { ok: true, n: header.n, columns };
}

export const api = {
  collections: () => request(urls.collections()),
  collection: (c) => request(urls.collection(c)),
  clips: (c) => request(urls.clips(c)),
  classes: (c) => request(urls.classes(c)),
  createClass: (c, name, color) => request(urls.classes(c), { method: 'POST', body: color ? { name, color } : { name } }),
  updateClass: (c, id, patch) => request(urls.klass(c, id), { method: 'PATCH', body: patch }),
  deleteClass: (c, id) => request(urls.klass(c, id), { method: 'DELETE' }),
  addMembers: (c, id, clipIds, source) =>
    request(urls.members(c, id), { method: 'POST', body: { clip_ids: Array.from(clipIds), source } }),
  removeMembers: (c, id, clipIds) =>
    request(urls.members(c, id), { method: 'DELETE', body: { clip_ids: Array.from(clipIds) } }),
  undo: (c) => request(urls.undo(c), { method: 'POST', body: {} }),
  redo: (c) => request(urls.redo(c), { method: 'POST', body: {} }),
  learnModel: (c) => request(urls.learnModel(c)),
  learnQueue: (c, classId, n, exclude, seed) => request(urls.learnQueue(c, classId, n, exclude, seed)),
  learnPrecision: (c, items, judgements, threshold) =>
    request(urls.learnPrecision(c), { method: 'POST', body: { items, judgements, threshold } }),
  negatives: (c) => request(urls.negatives(c)),
  addNegatives: (c, id, clipIds, source) =>
    request(urls.classNegatives(c, id), { method: 'POST', body: { clip_ids: Array.from(clipIds), source } }),
  removeNegatives: (c, id, clipIds) =>
    request(urls.classNegatives(c, id), { method: 'DELETE', body: { clip_ids: Array.from(clipIds) } }),
  acceptAbove: (c, id) => request(urls.acceptAbove(c, id), { method: 'POST', body: {} }),
  recording: (c, rid) => request(urls.recording(c, rid)),
  disagree: (c, minConfidence) => request(urls.disagree(c, minConfidence)),
  /** Import labels (multipart: file, and optional format / recording / annot_col); resolves to the import report. */
  importLabels: (c, file, fields = {}) => {
    const form = new FormData();
    form.append('file', file, file.name);
    for (const [k, v] of Object.entries(fields)) if (v) form.append(k, v);
    return request(urls.importFile(c), { method: 'POST', body: form });
  },
  uploadLimits: () => request(urls.uploadLimits()),
  createUpload: (fileName, sizeBytes) =>
    request(urls.uploads(), { method: 'POST', body: { file_name: fileName, size_bytes: sizeBytes } }),
  uploadStatus: (id) => request(urls.upload(id)),
  /** Send bytes [offset, offset + blob.size) of upload `id`; resolves to {ok, upload: {received, ...}}. */
  putChunk: (id, offset, blob) => request(urls.upload(id, offset), { method: 'PUT', body: blob }),
  deleteUpload: (id, { keepalive = false } = {}) => request(urls.upload(id), { method: 'DELETE', keepalive }),
  refined: (c) => request(urls.refined(c)),
};

/** One class's classifier scores, little-endian float32 [n] in [0, 1]. */
export async function getScores(c, classId) {
  return new Float32Array(await getBytes(urls.learnScores(c, classId)));
}
