// "Import labels" in the Classes panel: a file picker (CSV export or clip_id,label; Raven selection tables;
// Audacity labels; a zip of them), the format and, for tables that do not name their recording, which recording
// they belong to; then the report: how many rows matched, the classes made, and the first unmatched rows with why.
import { state, subscribe } from '../state.js';
import { actions } from '../actions.js';
import { el, fmtInt } from '../util.js';

const SHOWN_ROWS = 20;
const FORMATS = [
  ['', 'any format'],
  ['csv', 'CSV'],
  ['raven', 'Raven table'],
  ['audacity', 'Audacity labels'],
];

export function initImport(root) {
  const input = el('input', { type: 'file', id: 'import-file', accept: '.csv,.txt,.tsv,.zip,text/csv,text/plain,application/zip', hidden: true });
  const pick = el('button', { class: 'tool small', id: 'import-labels', title: 'Import labels: the CSV export or clip_id,label, Raven selection tables, Audacity labels, or a zip of them (one undo step)' }, '⤒ Import');
  const format = el('select', { id: 'import-format', 'aria-label': 'Import format' }, FORMATS.map(([v, t]) => el('option', { value: v }, t)));
  const recording = el('input', { type: 'text', id: 'import-recording', list: 'import-recordings', placeholder: 'from the file name', 'aria-label': 'Recording the table belongs to' });
  const recordings = el('datalist', { id: 'import-recordings' });
  const annot = el('input', { type: 'text', id: 'import-annot-col', placeholder: 'Annotation', 'aria-label': 'Class column' });
  const more = el('details', { class: 'import-more' },
    el('summary', { class: 'button tool small', title: 'Import options: format, recording, class column' }, '▾'),
    el('div', { class: 'import-options' },
      el('label', {}, 'format', format),
      el('label', {}, 'recording', recording),
      el('label', {}, 'class column', annot),
      el('div', { class: 'muted small' }, 'Raven and Audacity tables named after their recording (XC1.Table.1.selections.txt, XC1.txt) find it themselves.'),
    ),
    recordings,
  );
  const report = el('div', { class: 'import-report', id: 'import-report', hidden: true });
  // In the Classes header, before Undo: always in view, however short the panel.
  const head = root.querySelector('.row');
  const undo = head && head.querySelector('#undo');
  if (undo) {
    undo.before(pick, more);
  } else {
    root.append(el('div', { class: 'import' }, pick, more));
  }
  root.append(report, input);

  pick.onclick = () => input.click();
  input.onchange = async () => {
    const file = input.files && input.files[0];
    input.value = ''; // choosing the same file again imports it again
    if (!file) return;
    await actions.importLabels(file, { format: format.value, recording: recording.value.trim(), annot_col: annot.value.trim() });
  };
  more.addEventListener('toggle', () => {
    if (!more.open || recordings.childElementCount || !state.clips) return;
    const names = [...new Set((state.clips.file_name || []).filter(Boolean))].sort().slice(0, 2000);
    recordings.replaceChildren(...names.map((n) => el('option', { value: n })));
  });

  const render = () => {
    const r = state.importReport;
    report.hidden = !r;
    if (!r) return report.replaceChildren();
    const close = el('button', { class: 'tool small', title: 'Close the report', onclick: () => actions.closeImportReport() }, '✕');
    if (r.pending) return report.replaceChildren(el('div', { class: 'muted' }, `Importing ${r.file}…`));
    if (r.error) {
      report.dataset.state = 'error';
      return report.replaceChildren(el('div', { class: 'ir-head' }, el('b', {}, `Could not import ${r.file}`), el('span', { class: 'spacer' }), close), el('div', { class: 'ir-error' }, r.error));
    }
    report.dataset.state = r.n_unmatched ? 'partial' : 'ok';
    const created = r.classes_created || [];
    const undo = el('button', { class: 'tool small', id: 'import-undo', title: 'Undo the whole import (one step)', onclick: () => actions.undo().then(() => actions.closeImportReport()) }, '↶ Undo import');
    const head = el('div', { class: 'ir-head' }, el('b', {}, r.file), el('span', { class: 'spacer' }), undo, close);
    const counts = el('div', { class: 'ir-counts', id: 'import-counts' },
      `${fmtInt(r.n_matched ?? 0)} of ${fmtInt(r.n_rows ?? 0)} rows matched · ${fmtInt(r.added ?? 0)} labels added` +
        (r.format ? ` · ${r.format}` : ''));
    const made = created.length ? el('div', { class: 'muted' }, `new classes: ${created.map((c) => (typeof c === 'string' ? c : c.name)).join(', ')}`) : null;
    const rows = r.unmatched_rows || [];
    const list = rows.length
      ? el('div', { class: 'ir-rows' },
          el('div', { class: 'ir-title' }, `${fmtInt(r.n_unmatched ?? rows.length)} unmatched row${(r.n_unmatched ?? rows.length) === 1 ? '' : 's'}${rows.length > SHOWN_ROWS ? ` (first ${SHOWN_ROWS})` : ''}:`),
          el('table', { id: 'import-unmatched' },
            el('tr', {}, el('th', {}, 'line'), el('th', {}, 'why')),
            rows.slice(0, SHOWN_ROWS).map((u) =>
              el('tr', {},
                el('td', { class: 'ir-line' }, String(u.row ?? '')),
                el('td', {}, u.file ? el('span', { class: 'muted' }, `${u.file}: `) : null, u.reason || '', u.clip_id !== undefined && u.clip_id !== null && u.clip_id !== '' ? el('span', { class: 'muted' }, ` (clip ${u.clip_id})`) : null),
              ),
            ),
          ),
        )
      : el('div', { class: 'muted' }, 'every row matched a clip');
    report.replaceChildren(head, counts, made, list);
  };
  subscribe('importReport', render);
  render();
}
