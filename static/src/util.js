// Small DOM/format helpers shared by the views.
export function escapeHtml(s) {
  return String(s ?? '').replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
  );
}

export const fmtInt = (v) => Number(v).toLocaleString('en-US');

export function debounce(fn, ms) {
  let t = null;
  let last = [];
  const d = (...args) => {
    last = args;
    clearTimeout(t);
    t = setTimeout(() => {
      t = null;
      fn(...last);
    }, ms);
  };
  /** Run a pending call now (nothing if none is pending). */
  d.flush = () => {
    if (t === null) return;
    clearTimeout(t);
    t = null;
    fn(...last);
  };
  return d;
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'style') Object.assign(e.style, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v === true) e.setAttribute(k, '');
    else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}
