// Pooling: named classes, add the current cluster(s)/lasso/pinned clip, remove, rename, delete, undo, export.
// The form and the export controls are built once (a re-render never wipes what someone is typing); the class
// list, the "Add:" line and the undo/redo buttons follow the state.
import { state, subscribe } from '../state.js';
import { actions } from '../actions.js';
import { urls } from '../api.js';
import { fmtInt, el } from '../util.js';

export function initPooling(root) {
  let exportFormat = 'csv';
  let labelledOnly = false;

  const name = el('input', { type: 'text', id: 'new-class-name', placeholder: 'New class, e.g. “Blackbird song”', 'aria-label': 'New class name' });
  const create = el('button', { class: 'primary', id: 'create-class', type: 'submit' }, '+ New class');
  const form = el('form', { class: 'new-class' }, name, create);
  form.onsubmit = async (e) => {
    e.preventDefault();
    const v = name.value;
    if (await actions.createClass(v)) name.value = '';
  };
  const undo = el('button', { class: 'tool small', id: 'undo', title: 'Undo (Ctrl+Z)', onclick: () => actions.undo() }, '↶ Undo');
  const redo = el('button', { class: 'tool small', id: 'redo', title: 'Redo (Ctrl+Y)', onclick: () => actions.redo() }, '↷');
  const head = el('div', { class: 'row' }, el('h2', {}, 'Classes'), el('span', { class: 'spacer' }), undo, redo);
  const tgt = el('div', { class: 'target' });
  const list = el('div', { class: 'class-list', id: 'class-list' });

  const fmt = el('select', { id: 'export-format', 'aria-label': 'Export format' },
    [['csv', 'CSV'], ['raven', 'Raven'], ['audacity', 'Audacity'], ['audacity-bbox', 'Audacity + bands'], ['json', 'JSON']].map(([v, t]) => el('option', { value: v }, t)));
  const only = el('input', { type: 'checkbox', id: 'export-labelled-only' });
  const download = el('a', { class: 'button primary', id: 'export', download: '' }, '⤓ Export');
  const setHref = () => (download.href = urls.exportFile(state.collection, exportFormat, labelledOnly));
  fmt.onchange = () => {
    exportFormat = fmt.value;
    setHref();
  };
  only.onchange = () => {
    labelledOnly = only.checked;
    setHref();
  };
  const exp = el('div', { class: 'export' }, fmt, el('label', { class: 'check' }, only, ' labelled only'), el('span', { class: 'spacer' }), download);
  root.append(head, form, tgt, list, exp);
  setHref();

  const render = () => {
    const target = actions.addTarget();
    undo.disabled = !state.canUndo;
    redo.disabled = !state.canRedo;
    tgt.replaceChildren(
      ...(target
        ? [el('span', { class: 'muted' }, 'Add: '), el('b', { id: 'add-target' }, target.label), el('span', { class: 'muted' }, ` (${fmtInt(target.ids.length)})`)]
        : [el('span', { class: 'muted' }, 'Pick a cluster, lasso points or pin a clip, then press + on a class (or its number key).')]),
    );
    const rows = state.classes.map((k, j) => {
      const isFocus = state.focus && state.focus.kind === 'class' && state.focus.classId === k.id;
      const nameEl = el('span', { class: 'cl-name', title: `${k.name} (double-click to rename)` }, k.name);
      nameEl.ondblclick = () => {
        const input = el('input', { type: 'text', class: 'rename', value: k.name, 'aria-label': 'Rename class' });
        let finished = false;
        const done = (ok) => {
          if (finished) return;
          finished = true;
          if (ok && input.value.trim() && input.value.trim() !== k.name) actions.renameClass(k.id, input.value);
          else render();
        };
        input.onkeydown = (e) => {
          e.stopPropagation();
          if (e.key === 'Enter') done(true);
          if (e.key === 'Escape') done(false);
        };
        input.onblur = () => done(true);
        nameEl.replaceWith(input);
        input.focus();
        input.select();
      };
      return el('div', { class: `cl-row${isFocus ? ' active' : ''}`, 'data-class': String(k.id), 'data-name': k.name },
        el('span', { class: 'key' }, j < 9 ? String(j + 1) : ''),
        el('span', { class: 'sw', style: { background: k.color || '#888' } }),
        nameEl,
        el('span', { class: 'cl-size' }, fmtInt(k.size ?? (state.members[k.id] || []).length)),
        el('button', { class: 'tool small add', title: `Add the selection${j < 9 ? ` (${j + 1})` : ''}`, disabled: !target, onclick: () => actions.addToClass(k.id) }, '+'),
        el('button', { class: 'tool small rm', title: 'Remove the selection from this class', disabled: !target, onclick: () => actions.removeFromClass(k.id, target.ids) }, '−'),
        el('button', { class: 'tool small view', title: 'Show its gallery', onclick: () => actions.focusClass(k.id) }, '▦'),
        el('button', { class: 'tool small del', title: 'Delete class', onclick: () => confirm(`Delete class “${k.name}”? (Undo brings it back.)`) && actions.deleteClass(k.id) }, '✕'),
      );
    });
    if (!rows.length) rows.push(el('div', { class: 'empty' }, 'No classes yet. Name one above.'));
    // keep a rename in progress: skip re-rendering the list while its input has the focus
    if (list.contains(document.activeElement) && document.activeElement.classList.contains('rename')) return;
    list.replaceChildren(...rows);
  };
  subscribe(['classes', 'members', 'focus', 'pinned', 'canUndo', 'canRedo', 'collection', 'galleryIndex'], () => {
    setHref();
    render();
  });
  render();
}
