// The "Add recordings" dialog: which files (dropped, picked, or a folder walked), and where they go (this
// collection or a new one). The upload itself is views/upload.js.
import { state } from '../state.js';
import { toast } from '../toast.js';
import { escapeHtml, el } from '../util.js';

const AUDIO_EXT = /\.(wav|wave|flac|mp3|ogg|oga|opus|aif|aiff|w64|rf64|zip|csv|json)$/i;
const up = state.upload;

/** Files from a drop, walking dropped folders (webkitGetAsEntry) so a whole folder of MP3s works. */
export async function filesFromDrop(dt) {
  const entries = Array.from(dt.items || []).map((it) => it.webkitGetAsEntry && it.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length) return Array.from(dt.files || []);
  const out = [];
  const walk = async (entry, prefix) => {
    if (entry.isFile) {
      const f = await new Promise((res, rej) => entry.file(res, rej));
      out.push(Object.assign(f, { relPath: prefix + f.name }));
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const entry of entries) await walk(entry, '');
  return out;
}

export const fmtBytes = (n) => (n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)} GB` : n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(1)} MB` : `${Math.ceil(n / 1024)} KB`);

function defaultName(files) {
  const first = files[0];
  const top = first && (first.relPath || first.webkitRelativePath || '').split('/')[0];
  const base = (top && top !== first.name ? top : first ? first.name.replace(/\.[^.]+$/, '') : 'recordings') || 'recordings';
  let name = base.normalize('NFKD').replace(/[^\w.+-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 48) || 'recordings';
  const taken = new Set((state.collections || []).map((c) => c.name));
  for (let k = 2; taken.has(name); k++) name = `${base.slice(0, 40)}-${k}`.replace(/[^\w.+-]+/g, '-');
  return name;
}

/** The "Add recordings" dialog for `files`; its start button calls onStart(usableFiles, target). */
export function openDialog(files, onStart) {
  if (up.state === 'uploading' || up.state === 'processing') {
    toast('Recordings are still being added; wait for them to finish', 'error');
    return;
  }
  files = files.filter((f) => !/(^|\/)\./.test(f.relPath || f.webkitRelativePath || f.name));
  // empty files are reported in the upload panel (never silently dropped); other kinds are left out and counted
  const empty = files.filter((f) => f.size === 0);
  const skipped = files.filter((f) => f.size > 0 && !AUDIO_EXT.test(f.name));
  const usable = files.filter((f) => f.size > 0 && AUDIO_EXT.test(f.name));
  if (up.dialog) up.dialog.remove();
  const total = usable.reduce((s, f) => s + f.size, 0);
  const current = state.collection;
  const dialog = el('div', { class: 'overlay', id: 'upload-dialog' });
  up.dialog = dialog;
  dialog.innerHTML = `
    <div class="dialog upload-dialog">
      <h2>Add recordings</h2>
      ${usable.length
        ? `<p><b>${usable.length}</b> file${usable.length > 1 ? 's' : ''} · ${fmtBytes(total)}${skipped.length ? ` · <span class="muted">${skipped.length} other file(s) left out</span>` : ''}</p>`
        : '<p class="muted">Drop audio files, a folder, or a zip anywhere on the page, or choose them:</p>'}
      ${empty.length ? `<p class="up-empty-note" id="upload-empty-note"><b>${empty.length}</b> empty file${empty.length > 1 ? 's' : ''} (0 bytes): ${escapeHtml(empty.slice(0, 3).map((f) => f.name).join(', '))}${empty.length > 3 ? '…' : ''} — listed in the report, nothing to add</p>` : ''}
      <div class="row">
        <button data-pick-files>Choose files…</button>
        <button data-pick-folder>Choose a folder…</button>
      </div>
      <fieldset class="upload-target">
        <label class="check"><input type="radio" name="upload-target" value="add" ${current ? 'checked' : 'disabled'}>
          add to <b>${escapeHtml(current || '(no collection open)')}</b> <span class="muted">(the map keeps its points; new ones are placed on it)</span></label>
        <label class="check"><input type="radio" name="upload-target" value="new" ${current ? '' : 'checked'}>
          new collection named <input type="text" id="upload-name" value="${escapeHtml(defaultName(usable))}" maxlength="64"></label>
      </fieldset>
      <div class="row end">
        <button data-cancel>Cancel</button>
        <button class="primary" id="upload-start" ${usable.length || empty.length ? '' : 'disabled'}>Upload and process</button>
      </div>
    </div>`;
  document.body.append(dialog);
  const q = (s) => dialog.querySelector(s);
  q('[data-pick-files]').onclick = () => document.getElementById('upload-input').click();
  q('[data-pick-folder]').onclick = () => document.getElementById('upload-folder').click();
  q('[data-cancel]').onclick = () => dialog.remove();
  q('#upload-name').onfocus = () => (q('input[value=new]').checked = true);
  q('#upload-start').onclick = () => {
    const target = q('input[name=upload-target]:checked').value;
    const name = q('#upload-name').value.trim();
    if (target === 'new' && !/^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/.test(name)) {
      toast('A collection name uses letters, digits, _ - . + (starting with a letter or digit)', 'error');
      return;
    }
    dialog.remove();
    onStart([...usable, ...empty], target === 'add' ? { collection: current } : { new_collection: name });
  };
  up.state = 'choosing';
}
