// The cluster protocol: send the controls' latest request (latest.js), follow its job's events, apply its result,
// cancel it. Only the current job's events count; a result that beats its ack waits in `state.jobs.early`.
import { state, set } from './state.js';
import { requestCluster, cancelJob, toInt32 } from './socket.js';
import { latestOnly } from './latest.js';
import { toast } from './toast.js';
import { clearFocus } from './focus.js';
import { recolor } from './coloring.js';

const send = latestOnly(requestCluster, state.jobs.send);

function applyResult(m) {
  const labels = toInt32(m.labels);
  if (labels.length !== state.n) {
    toast(`Clustering result has ${labels.length} labels for ${state.n} clips`, 'error');
    return;
  }
  const hadFocus = state.focus && state.focus.kind === 'cluster';
  set({
    cluster: { labels, result: m, request: m.request },
    job: { job_id: m.job_id, state: 'done', fraction: 1, message: m.cached ? 'cached' : `${(m.elapsed_s ?? 0).toFixed(2)} s` },
  });
  if (hadFocus) clearFocus(); // cluster ids mean other clusters now
  state.stats.clusterResults++;
  state.stats.lastResult = { job_id: m.job_id, n_clusters: m.n_clusters, n_noise: m.n_noise, request: m.request };
  if (state.colorBy === 'cluster') recolor();
}

export function setClusterRequest(req, { run = true } = {}) {
  set({ clusterRequest: req });
  if (run) runClustering();
}

/** Send the latest clustering request; a slider moved while one is on its way sends only its newest value. */
export async function runClustering() {
  if (!state.clusterRequest) return;
  set({ job: { job_id: null, state: 'running', fraction: 0, message: 'starting…' } });
  const r = await send(state.clusterRequest);
  if (r.stale) return; // superseded: the server cancels it when the next one arrives
  const ack = r.value;
  if (!ack || !ack.ok) {
    const allowed = ack && ack.allowed ? ` (allowed: ${JSON.stringify(ack.allowed)})` : '';
    set({ job: { job_id: null, state: 'error', fraction: 0, message: (ack && ack.error) || 'failed' } });
    toast(`Clustering: ${(ack && ack.error) || 'failed'}${allowed}`, 'error');
    return;
  }
  const jobs = state.jobs;
  jobs.current = ack.job_id;
  if (jobs.early.has(ack.job_id)) {
    const m = jobs.early.get(ack.job_id);
    jobs.early.clear();
    applyResult(m);
  } else if (!state.job || state.job.state !== 'done' || state.job.job_id !== ack.job_id) {
    set({ job: { job_id: ack.job_id, state: 'running', fraction: 0, message: ack.cached ? 'cached' : 'queued' } });
  }
}

/** The progress bar's Cancel: stop the running cluster job (the map keeps the last result). */
export async function cancelClustering() {
  const j = state.job;
  if (!j || j.state !== 'running' || !j.job_id) return false;
  const ack = await cancelJob(j.job_id, 'cluster');
  if (state.job && state.job.job_id === j.job_id && state.job.state === 'running') {
    if (ack.ok) set({ job: { ...j, state: 'cancelled', message: 'cancelled' } });
    else toast(`Could not cancel: ${ack.error || 'the job has already ended'}`, 'error');
  }
  return !!ack.ok;
}

export function onJobProgress(m) {
  if (m.job_id !== state.jobs.current || !state.job || state.job.state !== 'running') return;
  set({
    job: {
      job_id: m.job_id,
      state: 'running',
      fraction: m.fraction ?? (m.total ? m.done / m.total : 0),
      message: m.message || m.stage || '',
    },
  });
}

export function onJobResult(m) {
  if (m.kind && m.kind !== 'cluster') return;
  if (m.collection && m.collection !== state.collection) return;
  const jobs = state.jobs;
  if (m.job_id !== jobs.current) {
    jobs.early.set(m.job_id, m);
    if (jobs.early.size > 8) jobs.early.delete(jobs.early.keys().next().value);
    return;
  }
  if (state.job && state.job.job_id === m.job_id && state.job.state === 'cancelled') return;
  applyResult(m);
}

export function onJobError(m) {
  if (m.job_id !== state.jobs.current) return;
  set({ job: { job_id: m.job_id, state: 'error', fraction: 0, message: m.error } });
  toast(`Clustering failed: ${m.error}`, 'error');
}

export function onJobCancelled(m) {
  if (m.job_id !== state.jobs.current) return;
  set({ job: { job_id: m.job_id, state: 'cancelled', fraction: 0, message: 'cancelled' } });
}
