// Pooling: the user's classes (create, rename, delete, add and remove clips, undo, redo) through the REST API.
// Every change re-reads the classes; its toast says exactly what the server did.
import { state, set } from './state.js';
import { api } from './api.js';
import { toast, plural } from './toast.js';
import { membersOfCluster } from './geometry.js';
import { focusClass, clearFocus } from './focus.js';
import { recolor } from './coloring.js';

export async function refreshClasses() {
  if (!state.collection) return;
  try {
    const r = await api.classes(state.collection);
    const members = r.members || {};
    const membership = new Map();
    for (const [cid, ids] of Object.entries(members)) {
      const id = isNaN(Number(cid)) ? cid : Number(cid);
      for (const i of ids) {
        const m = membership.get(i);
        if (m) m.push(id);
        else membership.set(i, [id]);
      }
    }
    set({ classes: r.classes || [], members, membership, canUndo: !!r.can_undo, canRedo: !!r.can_redo });
    if (state.focus && state.focus.kind === 'class') focusClass(state.focus.classId);
    if (state.colorBy === 'class') recolor();
  } catch (e) {
    if (e.status !== 404) toast(`Classes: ${e.message}`, 'error');
  }
}

/** A labels:changed broadcast (another tab, another person): re-read the classes soon. */
export function onLabelsChanged(m) {
  if (m && m.collection && m.collection !== state.collection) return;
  clearTimeout(state.runtime.classesRefresh);
  state.runtime.classesRefresh = setTimeout(refreshClasses, 60);
}

/** Run a change, re-read the classes, toast `message(response)`. Resolves true on success. */
async function mutate(fn, message = null) {
  try {
    const r = await fn();
    await refreshClasses();
    const text = message && message(r || {});
    if (text) toast(text);
    return true;
  } catch (e) {
    toast(e.message, 'error');
    return false;
  }
}

const nameOf = (id) => {
  const k = state.classes.find((c) => c.id === id);
  return k ? `“${k.name}”` : `class ${id}`;
};

/** One change summary from the server ({kind, name, n, ...}) in words. */
function describe(c) {
  if (!c) return '';
  const name = c.name ? `“${c.name}”` : 'a class';
  switch (c.kind) {
    case 'create':
      return `created ${name}`;
    case 'delete':
      return `deleted ${name}`;
    case 'update':
      return `changed ${name}`;
    case 'add':
      return `added ${plural(c.n ?? 0, 'clip')} to ${name}`;
    case 'remove':
      return `removed ${plural(c.n ?? 0, 'clip')} from ${name}`;
    case 'import':
      return `imported ${plural(c.n ?? 0, 'label')}`;
    default:
      return c.kind || '';
  }
}

export function createClass(name) {
  name = (name || '').trim();
  if (!name) return Promise.resolve(false);
  return mutate(() => api.createClass(state.collection, name), () => `Class “${name}” created`);
}

export function renameClass(id, name) {
  name = (name || '').trim();
  if (!name) return Promise.resolve(false);
  const before = nameOf(id);
  return mutate(() => api.updateClass(state.collection, id, { name }), () => `Renamed ${before} to “${name}”`);
}

export function deleteClass(id) {
  const before = nameOf(id);
  const size = (state.members[id] || state.members[String(id)] || []).length;
  if (state.focus && state.focus.kind === 'class' && state.focus.classId === id) clearFocus();
  return mutate(() => api.deleteClass(state.collection, id), () => `Deleted ${before} (${plural(size, 'clip')})`);
}

/** What "add to class" would add now: the focus (cluster(s), lasso, category), else the pinned clip. */
export function addTarget() {
  const f = state.focus;
  if (f && (f.kind === 'similar' || f.kind === 'review')) {
    // a ranked result: the number keys add the tile you hover or stepped to, not the whole result
    const j = state.galleryIndex;
    const i = state.galleryOrder && j >= 0 ? state.galleryOrder[j] : state.pinned;
    return i >= 0 ? { kind: f.kind === 'similar' ? 'similar' : 'clip', label: `clip ${i}`, ids: Int32Array.of(i) } : null;
  }
  if (f && f.ids.length && f.kind !== 'class') return f;
  const i = state.pinned >= 0 ? state.pinned : -1;
  if (i >= 0) return { kind: 'clip', label: `clip ${i}`, ids: Int32Array.of(i) };
  return null;
}

export async function addToClass(classId, target = addTarget()) {
  if (!target || !target.ids.length) {
    toast('Select a cluster (legend), lasso some points or pin a clip first');
    return false;
  }
  const c = state.collection;
  const params = state.cluster ? state.cluster.request : undefined;
  let asked = target.ids.length;
  return mutate(
    () => {
      if (target.kind === 'cluster') {
        // One request for several clusters, so one undo takes the whole addition back.
        const ids = target.clusterIds.length === 1 ? membersOfCluster(target.clusterIds[0]) : target.ids;
        asked = ids.length;
        const source = { kind: 'cluster', cluster_id: target.clusterIds[0], params: { ...(params || {}), cluster_ids: target.clusterIds } };
        return api.addMembers(c, classId, ids, source);
      }
      const kind = target.kind === 'clip' || target.kind === 'similar' ? target.kind : 'lasso';
      return api.addMembers(c, classId, target.ids, { kind });
    },
    (r) => {
      const n = r.n ?? asked;
      const already = asked - n;
      return `Added ${plural(n, 'clip')} to ${nameOf(classId)}${already > 0 ? ` (${plural(already, 'was', 'were')} already in it)` : ''}`;
    },
  );
}

export function removeFromClass(classId, ids) {
  const asked = ids.length;
  return mutate(
    () => api.removeMembers(state.collection, classId, ids),
    (r) => {
      const n = r.n ?? asked;
      const missing = asked - n;
      return `Removed ${plural(n, 'clip')} from ${nameOf(classId)}${missing > 0 ? ` (${plural(missing, 'was', 'were')} not in it)` : ''}`;
    },
  );
}

export function undo() {
  return mutate(() => api.undo(state.collection), (r) => `Undone: ${describe(r.undone)}`);
}

export function redo() {
  return mutate(() => api.redo(state.collection), (r) => `Redone: ${describe(r.redone)}`);
}
