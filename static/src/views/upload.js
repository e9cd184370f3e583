// Adding recordings from the browser: drop files, folders or a zip anywhere on the page (or use the "Add
// recordings" button), choose "add to this collection" or "new collection", watch each file upload in resumable
// chunks, then get processed on the server; each processed file's clips appear on the map as they are ready.
// The panel's Cancel stops it: uploads stop and are discarded, a processing job is cancelled on the server.
// Its state is state.upload; its URLs come from api.js, its events from socket.js.
import { state, set } from '../state.js';
import { api } from '../api.js';
import { listen, requestPreprocess, requestRemap, cancelJob } from '../socket.js';
import { normalise } from './map.js';
import { recolor } from '../coloring.js';
import { toast, plural } from '../toast.js';
import { escapeHtml, el } from '../util.js';
import { openDialog as dialogFor, filesFromDrop, fmtBytes } from './upload_dialog.js';
import { highlightClips } from './highlight.js';

const CHUNK_BYTES = 4 * 1024 * 1024;
const PARALLEL = 2;
const RETRIES = 6;

const up = state.upload;

const openDialog = (files) => dialogFor(files, start);

export function initUpload() {
  const bar = document.getElementById('topbar');
  const spacer = bar && bar.querySelector('.spacer');
  const button = el('button', { class: 'tool', id: 'upload-open', title: 'Add recordings (drop files, folders or a zip)' }, '+ Add recordings');
  if (spacer) spacer.after(button);
  const input = el('input', { type: 'file', id: 'upload-input', multiple: true, hidden: true });
  const folder = el('input', { type: 'file', id: 'upload-folder', multiple: true, webkitdirectory: true, hidden: true });
  document.body.append(input, folder);
  button.onclick = () => openDialog([]);
  input.onchange = () => openDialog(Array.from(input.files || []));
  folder.onchange = () => openDialog(Array.from(folder.files || []));

  // Drag and drop anywhere: an overlay says what will happen.
  const overlay = el('div', { id: 'upload-drop', class: 'upload-drop', hidden: true },
    el('div', { class: 'upload-drop-box' }, 'Drop recordings here', el('div', { class: 'muted' }, 'audio files, folders, or a zip (with an optional labels CSV or xeno-canto JSON)')));
  document.body.append(overlay);
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
  window.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    depth++;
    overlay.hidden = false;
  });
  window.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) overlay.hidden = true;
  });
  window.addEventListener('dragover', (e) => hasFiles(e) && e.preventDefault());
  window.addEventListener('drop', async (e) => {
    if (!hasFiles(e)) return;
    const claimed = e.defaultPrevented; // e.g. a sound dropped on the Learn card is a similarity query
    e.preventDefault();
    depth = 0;
    overlay.hidden = true;
    if (claimed) return;
    openDialog(await filesFromDrop(e.dataTransfer));
  });
  api.uploadLimits().then((r) => (up.limits = { ...up.limits, ...r.limits }), () => {});
  // leaving the page mid-upload: tell the server to drop the half-sent files now (it would after a day anyway)
  window.addEventListener('pagehide', () => {
    for (const f of up.files) {
      if (f.upload_id && (f.status === 'uploading' || f.status === 'waiting')) {
        api.deleteUpload(f.upload_id, { keepalive: true }).catch(() => {});
      }
    }
  });
}

// ------------------------------------------------------------------------------------------------
// uploading

async function start(files, target) {
  Object.assign(up, {
    state: 'uploading', jobId: null, result: null, addedClips: 0, cancelled: false,
    collection: target.collection || target.new_collection, created: !!target.new_collection,
    files: files.map((file) => ({ file, name: file.relPath || file.webkitRelativePath || file.name, size: file.size, sent: 0, status: 'waiting', reason: '' })),
  });
  renderPanel();
  const queue = up.files.filter((f) => {
    if (!f.size) {
      f.status = 'failed';
      f.reason = 'empty (0 bytes): nothing to add';
      return false;
    }
    if (f.size > up.limits.max_file_bytes) {
      f.status = 'failed';
      f.reason = `over the server's limit of ${fmtBytes(up.limits.max_file_bytes)}`;
      return false;
    }
    return true;
  });
  const workers = Array.from({ length: PARALLEL }, async () => {
    while (queue.length && !up.cancelled) await uploadOne(queue.shift());
  });
  await Promise.all(workers);
  if (up.cancelled) return discardUploads();
  const ids = up.files.filter((f) => f.status === 'uploaded').map((f) => f.upload_id);
  if (!ids.length) {
    up.state = 'error';
    renderPanel('Nothing could be uploaded.');
    return;
  }
  up.state = 'processing';
  listenOnce();
  // files refused before processing (empty, not audio, too big) go to the collection's skipped.csv
  const refused = up.files.filter((f) => f.status === 'failed' && f.reason !== 'cancelled').map((f) => ({ name: f.name, reason: f.reason }));
  const ack = await requestPreprocess({ ...target, uploads: ids, refused });
  if (!ack.ok) {
    up.state = 'error';
    renderPanel(ack.error);
    return;
  }
  up.jobId = ack.job_id;
  renderPanel('Processing…');
  if (up.cancelled) cancel(); // pressed while the request was on its way
}

/** The panel's Cancel: stop uploading (and discard what was sent), or cancel the processing job. */
async function cancel() {
  up.cancelled = true;
  if (up.state === 'uploading') {
    renderPanel('Stopping the uploads…');
    return; // the workers stop after their current chunk; start() discards the uploads
  }
  if (up.state !== 'processing' || !up.jobId) return;
  const ack = await cancelJob(up.jobId, 'preprocess');
  if (!ack.ok && up.state === 'processing') toast(`Could not cancel: ${ack.error || 'the job has ended'}`, 'error');
}

function discardUploads() {
  for (const f of up.files) {
    if (f.upload_id && f.status !== 'failed') api.deleteUpload(f.upload_id).catch(() => {});
    if (f.status === 'waiting' || f.status === 'uploading' || f.status === 'uploaded') {
      f.status = 'failed';
      f.reason = 'cancelled';
    }
  }
  up.state = 'cancelled';
  renderPanel('Cancelled: nothing was added.');
}

async function uploadOne(f) {
  f.status = 'uploading';
  renderRow(f);
  try {
    const created = await api.createUpload(f.name, f.size);
    f.upload_id = created.upload.upload_id;
    let offset = 0;
    let failures = 0;
    const chunk = Math.min(CHUNK_BYTES, up.limits.max_chunk_bytes || CHUNK_BYTES);
    while (offset < f.size) {
      if (up.cancelled) throw new Error('cancelled');
      const body = f.file.slice(offset, Math.min(offset + chunk, f.size));
      try {
        const r = await api.putChunk(f.upload_id, offset, body);
        offset = r.upload.received;
        failures = 0;
      } catch (e) {
        if (e.status && e.status < 500 && !/resume at/.test(e.message)) throw e; // refused: not worth retrying
        if (++failures > RETRIES) throw e;
        await new Promise((res) => setTimeout(res, 300 * 2 ** failures));
        offset = (await api.uploadStatus(f.upload_id)).upload.received; // resume where the server is
      }
      f.sent = offset;
      renderRow(f);
    }
    f.status = 'uploaded';
  } catch (e) {
    f.status = 'failed';
    f.reason = e.message;
    if (f.upload_id) api.deleteUpload(f.upload_id).catch(() => {});
  }
  renderRow(f);
}

// ------------------------------------------------------------------------------------------------
// processing: per-file events, new clips onto the map. Listeners are added once; each checks the job id.

function listenOnce() {
  if (up.listening) return;
  up.listening = true;
  listen({
    progress: (m) => {
      if (m.job_id !== up.jobId || up.state !== 'processing') return;
      const f = fileByName(m.file);
      if (f && f.status !== 'ok' && f.status !== 'failed') {
        f.status = 'processing';
        f.stage = m.stage === 'file' ? 'starting' : m.stage;
        renderRow(f);
      }
      setOverall(m.fraction, m.message ? `${m.stage}: ${m.message}` : m.stage);
    },
    preprocessFile: (m) => {
      if (m.job_id !== up.jobId) return;
      const f = fileByName(m.name) || { name: m.name, size: 0, sent: 0 };
      if (!up.files.includes(f)) up.files.push(f);
      Object.assign(f, { status: m.status, reason: m.reason, n_clips: m.n_clips, recording_id: m.recording_id });
      renderRow(f);
    },
    preprocessClips: (m) => {
      if (m.collection !== state.collection) return;
      addClipsToMap(m);
    },
    result: (m) => {
      if (up.remapJobId && m.job_id === up.remapJobId) {
        up.remapJobId = null;
        location.reload(); // the map moved: draw it again
        return;
      }
      if (m.job_id !== up.jobId || m.kind !== 'preprocess') return;
      up.state = 'done';
      up.result = m;
      if (m.collection === state.collection && (m.refitted || []).includes(state.reduction)) {
        location.reload(); // a small collection's map was fitted anew with the new clips: every point moved
        return;
      }
      if (m.created && !state.collection && m.n_clips) {
        location.search = `?c=${encodeURIComponent(m.collection)}`; // the first collection: open it at once
        return;
      }
      for (const r of m.refused || []) up.files.push({ name: r.name, size: 0, sent: 0, status: 'failed', reason: r.reason });
      renderPanel();
    },
    error: (m) => {
      if (up.remapJobId && m.job_id === up.remapJobId) {
        up.remapJobId = null;
        toast(`Recomputing the map failed: ${m.error}`, 'error');
        return;
      }
      if (m.job_id !== up.jobId) return;
      up.state = 'error';
      renderPanel(m.error);
    },
    cancelled: (m) => {
      if (m.job_id !== up.jobId || up.state !== 'processing') return;
      up.state = 'cancelled';
      const added = up.files.filter((f) => f.status === 'ok').length;
      renderPanel(added ? `Cancelled after ${plural(added, 'file')} (${plural(up.addedClips, 'clip')} on the map).` : 'Cancelled: nothing was added.');
    },
  });
}

function fileByName(name) {
  if (!name) return null;
  return up.files.find((f) => f.name === name) || up.files.find((f) => f.name.split('/').pop() === name.split('/').pop());
}

function concatColumn(old, add) {
  if (ArrayBuffer.isView(old)) {
    const out = new old.constructor(old.length + add.length);
    out.set(old);
    for (let i = 0; i < add.length; i++) out[old.length + i] = add[i] ?? NaN;
    return out;
  }
  return (old || []).concat(add);
}

/** Append one file's clips (rows + 2-d positions from the fitted map) to the state and redraw the map. */
async function addClipsToMap(m) {
  const key = state.reduction;
  const buf = m.positions && m.positions[key];
  if (!state.clips || !state.xy || !buf) return;
  const first = m.clips.clip_id[0];
  if (first !== state.n) return; // out of order (or already added): the next page load picks them up
  const pos = new Float32Array(buf instanceof ArrayBuffer ? buf.slice(0) : buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const xy = new Float32Array(state.xy.length + pos.length);
  xy.set(state.xy);
  xy.set(pos, state.xy.length);
  const clips = {};
  for (const [k, v] of Object.entries(state.clips)) clips[k] = concatColumn(v, m.clips[k] || new Array(m.clips.clip_id.length).fill(null));
  const n = xy.length >> 1;
  const patch = { clips, xy, n };
  if (state.cluster && state.cluster.labels) {
    const labels = new Int32Array(n).fill(-1); // new clips are noise until the next clustering
    labels.set(state.cluster.labels);
    patch.cluster = { ...state.cluster, labels };
  }
  const { nx, ny, box } = normalise(xy);
  Object.assign(patch, { nx, ny });
  set(patch);
  await state.runtime.map.setPoints(nx, ny, box);
  state.stats.pointsDrawn = n;
  up.addedClips += m.clips.clip_id.length;
  recolor();
  highlightClips(m.clips.clip_id);
  const f = fileByName(m.name);
  if (f) {
    f.onMap = true;
    renderRow(f);
  }
}

// ------------------------------------------------------------------------------------------------
// the panel

function ensurePanel() {
  if (!up.panel) {
    up.panel = el('section', { id: 'upload-panel', class: 'upload-panel card' });
    document.body.append(up.panel);
  }
  return up.panel;
}

function setOverall(fraction, message) {
  const p = ensurePanel();
  const fill = p.querySelector('.up-overall .fill');
  if (fill) fill.style.width = `${Math.round((fraction || 0) * 100)}%`;
  const t = p.querySelector('.up-overall-text');
  if (t) t.textContent = message || '';
}

function renderPanel(message = '') {
  const p = ensurePanel();
  const ok = up.files.filter((f) => f.status === 'ok').length;
  const failed = up.files.filter((f) => f.status === 'failed');
  const title = { uploading: 'Uploading', processing: 'Processing', done: 'Done', error: 'Stopped', cancelled: 'Cancelled' }[up.state] || '';
  const r = up.result;
  let footer = '';
  if (up.state === 'done') {
    footer = `<div class="up-summary">${ok} file${ok === 1 ? '' : 's'} added (${r.n_new_clips} clips)${failed.length ? `, ${failed.length} failed` : ''}.
      ${(r.notes || []).map((n) => `<div class="muted">${escapeHtml(n)}</div>`).join('')}</div>
      <div class="row end">
        ${r.created || r.collection !== state.collection ? `<button class="primary" data-open>Open ${escapeHtml(r.collection)}</button>` : ''}
        ${r.suggest_remap && !r.created ? '<button data-remap title="Fit the map again with every clip (points will move)">Recompute the map</button>' : ''}
        <button data-close>Close</button>
      </div>`;
  } else if (up.state === 'error') {
    footer = `<div class="up-error">${escapeHtml(message)}</div><div class="row end"><button data-close>Close</button></div>`;
  } else if (up.state === 'cancelled') {
    footer = `<div class="up-summary">${escapeHtml(message)}</div><div class="row end"><button data-close>Close</button></div>`;
  } else if (up.state === 'uploading' || up.state === 'processing') {
    footer = `<div class="row end"><button data-cancel-job title="Stop adding these recordings">Cancel</button></div>`;
  }
  p.innerHTML = `
    <div class="up-head"><h2>${title} · ${escapeHtml(up.collection || '')}</h2></div>
    <div class="up-overall"><div class="bar"><div class="fill"></div></div><div class="up-overall-text muted">${escapeHtml(up.state === 'processing' ? message : '')}</div></div>
    <ul class="up-files"></ul>
    ${footer}`;
  p.dataset.state = up.state;
  const list = p.querySelector('.up-files');
  for (const f of up.files) {
    f.el = el('li', { class: 'up-file' });
    list.append(f.el);
    renderRow(f);
  }
  const q = (s) => p.querySelector(s);
  if (q('[data-cancel-job]')) {
    const b = q('[data-cancel-job]');
    b.disabled = up.cancelled;
    b.onclick = () => ((b.disabled = true), cancel());
  }
  if (q('[data-close]')) q('[data-close]').onclick = () => ((p.hidden = true), (up.state = 'idle'));
  if (q('[data-open]')) q('[data-open]').onclick = () => (location.search = `?c=${encodeURIComponent(r.collection)}`);
  if (q('[data-remap]')) q('[data-remap]').onclick = () => remap(q('[data-remap]'));
  p.hidden = false;
  if (up.state === 'done') setOverall(1, '');
}

function renderRow(f) {
  if (!f.el) return;
  const pct = f.size ? Math.round((100 * f.sent) / f.size) : 100;
  const text = {
    waiting: 'waiting',
    uploading: `uploading ${pct}%`,
    uploaded: 'uploaded',
    processing: f.stage || 'processing',
    ok: `${f.n_clips ?? ''} clips${f.onMap ? ' · on the map' : ''}`,
    failed: f.reason || 'failed',
  }[f.status] || f.status;
  f.el.className = `up-file ${f.status}`;
  f.el.dataset.status = f.status;
  const slash = f.name.lastIndexOf('/');
  const folder = slash >= 0 ? `<span class="muted"> · ${escapeHtml(f.name.slice(0, slash))}</span>` : '';
  f.el.innerHTML = `<div class="up-name" title="${escapeHtml(f.name)}">${escapeHtml(f.name.slice(slash + 1))}${folder}</div>
    <div class="bar"><div class="fill" style="width:${f.status === 'ok' || f.status === 'failed' ? 100 : f.status === 'uploading' ? pct : f.status === 'waiting' ? 0 : 100}%"></div></div>
    <div class="up-status">${escapeHtml(text)}</div>`;
}

async function remap(button) {
  button.disabled = true;
  button.textContent = 'Recomputing…';
  listenOnce();
  const ack = await requestRemap({ collection: state.collection, key: state.reduction });
  if (!ack.ok) {
    toast(ack.error, 'error');
    return;
  }
  up.remapJobId = ack.job_id; // the result listener reloads the page when it is done
}
