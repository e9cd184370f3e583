// Labels back in from a file: the export's CSV or `clip_id,label`, Raven selection tables, Audacity
// labels, or a zip of them → POST /api/collections/<c>/import, one undoable change. Owns state.importReport.
import { state, set } from './state.js';
import { api } from './api.js';
import { toast, plural } from './toast.js';
import { refreshClasses } from './classes.js';

/**
 * Send `file` (a File) with `fields` ({format?: 'csv'|'raven'|'audacity', recording?, annot_col?}); the report
 * ({file, added, classes_created, format, n_rows, n_matched, n_unmatched, unmatched_rows}) lands in
 * state.importReport, or {file, error} when the server refused the file. Resolves to the report.
 */
export async function importLabels(file, fields = {}) {
  if (!file) return null;
  set({ importReport: { file: file.name, pending: true } });
  let report;
  try {
    const r = await api.importLabels(state.collection, file, fields);
    report = { file: file.name, ...r };
    const created = (r.classes_created || []).length;
    toast(
      `Imported ${plural(r.added ?? 0, 'label')} from ${file.name}` +
        (created ? ` (${plural(created, 'new class', 'new classes')})` : '') +
        (r.n_unmatched ? `; ${plural(r.n_unmatched, 'row')} did not match` : ''),
    );
  } catch (e) {
    report = { file: file.name, error: e.message };
    toast(`Import: ${e.message}`, 'error');
  }
  set({ importReport: report });
  await refreshClasses();
  return report;
}

export function closeImportReport() {
  set({ importReport: null });
}
