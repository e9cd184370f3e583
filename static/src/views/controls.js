// Clustering controls: feature set(s), reduction dimension, algorithm and its parameters (ranges from the server).
// Every change sends a new `cluster` request; the server cancels the previous one, the page ignores stale results.
import { state, subscribe } from '../state.js';
import { actions } from '../actions.js';
import { escapeHtml, fmtInt, debounce, el } from '../util.js';

const STEPS = 1000;
const COUNT_PARAMS = new Set(['min_cluster_size', 'min_samples', 'n_clusters']);

/** A slider mapping: linear for narrow ranges, logarithmic for wide ones; counts capped at the collection size. */
function scaleFor(name, rule, n, hint) {
  const isInt = rule.type === 'int';
  if (hint && hint.log_min > 0 && hint.log_max > hint.log_min) {
    const lo = Math.max(Number(hint.log_min), Number(rule.min));
    const hi = Math.min(Number(hint.log_max), Number(rule.max));
    if (hi > lo) return logSpan(lo, hi);
  }
  let lo = Number(rule.min);
  let hi = Number(rule.max);
  if (hint && hint.max !== undefined) hi = Math.min(hi, Number(hint.max));
  if (COUNT_PARAMS.has(name)) hi = Math.max(lo + 1, Math.min(hi, Math.max(2, Math.floor(n / 2))));
  else if (name === 'eps' || name === 'cluster_selection_epsilon') hi = Math.min(hi, 10);
  const zeroAllowed = lo <= 0;
  const logLo = Math.max(lo, isInt ? 1 : 1e-3);
  const log = hi / logLo > 50;
  const toValue = (p) => {
    if (log) {
      if (zeroAllowed && p === 0) return 0;
      const v = Math.exp(Math.log(logLo) + (p / STEPS) * (Math.log(hi) - Math.log(logLo)));
      return isInt ? Math.round(v) : Number(v.toPrecision(3));
    }
    const v = lo + (p / STEPS) * (hi - lo);
    return isInt ? Math.round(v) : Number(v.toPrecision(3));
  };
  const toPos = (v) => {
    if (log) {
      if (v <= 0) return 0;
      return Math.round(((Math.log(Math.max(v, logLo)) - Math.log(logLo)) / (Math.log(hi) - Math.log(logLo))) * STEPS);
    }
    return Math.round(((v - lo) / (hi - lo)) * STEPS);
  };
  if (isInt && !log) {
    // one arrow-key press = one step of the parameter
    return { lo, hi, isInt, log, min: lo, max: hi, toValue: (p) => Math.round(p), toPos: (v) => Math.round(v) };
  }
  return { lo, hi, isInt, toValue, toPos, log, min: 0, max: STEPS };
}

/**
 * A slider over [lo, hi] on a log scale (the server's span of the data's neighbour distances, e.g. DBSCAN eps:
 * cluster_defaults' log_min..log_max); values typed in the number box may lie outside it.
 */
export function logSpan(lo, hi) {
  const a = Math.log(lo);
  const b = Math.log(hi);
  const toValue = (p) => Number(Math.exp(a + (p / STEPS) * (b - a)).toPrecision(3));
  const toPos = (v) => (v <= lo ? 0 : v >= hi ? STEPS : Math.round(((Math.log(v) - a) / (b - a)) * STEPS));
  return { lo, hi, isInt: false, log: true, toValue, toPos, min: 0, max: STEPS };
}

/**
 * Defaults that suit the collection: the server's per-reduction, per-dimension suggestions (``cluster_defaults``,
 * from the coordinates' neighbour distances) when it sends them, else counts scaled by size, eps by dimension.
 */
function sensibleDefault(name, rule, n, dims, hint) {
  if (hint && hint.default !== undefined) return Number(hint.default);
  if (rule.choices && rule.choices.includes(rule.default)) return rule.default;
  const d = Number(rule.default);
  if (name === 'min_cluster_size') return Math.max(d, Math.min(500, Math.round(n / 100)));
  if (name === 'eps') return Number((d * Math.sqrt(Math.max(1, dims) / 2)).toPrecision(2));
  if (name === 'n_clusters') return Math.min(d, Math.max(2, Math.floor(n / 5)));
  return d;
}

export function initControls(root, jobEl, summaryEl) {
  const info = state.info;
  const algorithms = info.algorithms || {};
  const reductions = (info.reductions || []).filter((r) => (r.dims || []).length);
  const algNames = Object.keys(algorithms);
  if (!reductions.length || !algNames.length) {
    root.innerHTML = `<div class="empty">No reduced coordinates to cluster yet (run <code>python -m preprocess reduce</code>).</div>`;
    return;
  }
  const saved = JSON.parse(sessionStorage.getItem(`sonomap:cluster:${state.collection}`) || 'null');
  const ui = {
    reduction: reductions.find((r) => r.key === state.reduction) || reductions[0],
    dims: null,
    algorithm: algNames.includes('hdbscan') ? 'hdbscan' : algNames[0],
    params: {},
  };
  const dimsOf = (r) => (r.dims || []).map(Number).sort((a, b) => a - b);
  const pickDims = (r) => {
    const ds = dimsOf(r);
    // Clustering on a few UMAP dimensions beats the 2-d map slightly and costs little (PERF_NOTES).
    return ds.find((d) => d >= 8) || ds[ds.length - 1];
  };
  ui.dims = pickDims(ui.reduction);
  const hintFor = (name) => {
    const d = (info.cluster_defaults || {})[ui.reduction.key];
    const a = d && (d[String(ui.dims)] || {})[ui.algorithm];
    return a && a[name];
  };
  const resetParams = () => {
    ui.params = {};
    for (const [name, rule] of Object.entries(algorithms[ui.algorithm])) {
      ui.params[name] = sensibleDefault(name, rule, state.n, ui.dims, hintFor(name));
    }
  };
  resetParams();
  if (saved && algorithms[saved.algorithm] && saved.key === ui.reduction.key) { // saved for the map on show
    ui.reduction = reductions.find((r) => r.key === saved.key);
    ui.algorithm = saved.algorithm;
    if (dimsOf(ui.reduction).includes(saved.dims)) ui.dims = saved.dims;
    resetParams();
    Object.assign(ui.params, saved.params || {});
  }

  const send = () => {
    const feats = ui.reduction.features && ui.reduction.features.length ? ui.reduction.features : ui.reduction.key.split('+');
    const req = {
      collection: state.collection,
      features: feats.length === 1 ? feats[0] : feats,
      dims: ui.dims,
      algorithm: ui.algorithm,
      params: { ...ui.params },
    };
    sessionStorage.setItem(
      `sonomap:cluster:${state.collection}`,
      JSON.stringify({ key: ui.reduction.key, dims: ui.dims, algorithm: ui.algorithm, params: ui.params }),
    );
    actions.setClusterRequest(req);
  };
  const sendSoon = debounce(send, 120);

  const render = () => {
    root.innerHTML = '';
    const featSel = el(
      'select',
      { id: 'ctl-features', 'aria-label': 'Feature set' },
      reductions.map((r) => el('option', { value: r.key }, (r.features || [r.key]).join(' + '))),
    );
    featSel.value = ui.reduction.key;
    featSel.onchange = () => {
      ui.reduction = reductions.find((r) => r.key === featSel.value);
      ui.dims = pickDims(ui.reduction);
      render();
      send();
      if (ui.reduction.key !== state.reduction) {
        const u = new URL(location.href);
        u.searchParams.set('r', ui.reduction.key);
        u.searchParams.set('c', state.collection);
        location.href = u.toString(); // a different reduction is a different map
      }
    };
    const dimSel = el(
      'select',
      { id: 'ctl-dims', 'aria-label': 'Dimensions' },
      dimsOf(ui.reduction).map((d) => el('option', { value: String(d) }, `${d}-d`)),
    );
    dimSel.value = String(ui.dims);
    dimSel.onchange = () => {
      ui.dims = Number(dimSel.value);
      resetParams(); // distances differ between dimensions: start again from that dimension's defaults
      render();
      send();
    };
    const algSel = el('select', { id: 'ctl-algorithm', 'aria-label': 'Algorithm' }, algNames.map((a) => el('option', { value: a }, a.toUpperCase())));
    algSel.value = ui.algorithm;
    algSel.onchange = () => {
      ui.algorithm = algSel.value;
      resetParams();
      render();
      send();
    };
    root.append(
      el('div', { class: 'ctl-grid' },
        el('label', {}, 'features'), featSel,
        el('label', {}, 'dimensions'), dimSel,
        el('label', {}, 'algorithm'), algSel,
      ),
    );
    for (const [name, rule] of Object.entries(algorithms[ui.algorithm])) {
      if (rule.choices && rule.choices.length) {
        // e.g. dbscan.partition: "auto" | "off" (numbers are for the CLI)
        const opts = [...rule.choices];
        if (!opts.includes(String(ui.params[name]))) opts.push(String(ui.params[name]));
        const sel = el('select', { id: `param-${name}`, 'aria-label': name }, opts.map((v) => el('option', { value: v }, v)));
        sel.value = String(ui.params[name]);
        sel.onchange = () => {
          const v = sel.value;
          ui.params[name] = Number.isFinite(Number(v)) ? Number(v) : v;
          send();
        };
        root.append(
          el('div', { class: 'param', title: rule.help || '' },
            el('div', { class: 'param-head' }, el('span', {}, name.replace(/_/g, ' ')), sel),
          ),
        );
        continue;
      }
      const sc = scaleFor(name, rule, state.n, hintFor(name));
      const range = el('input', { type: 'range', min: String(sc.min), max: String(sc.max), step: '1', id: `param-${name}`, 'data-param': name, 'aria-label': name });
      const num = el('input', { type: 'number', class: 'num', step: sc.isInt ? '1' : 'any', min: String(rule.min), max: String(rule.max), 'aria-label': `${name} value` });
      const setBoth = (v) => {
        ui.params[name] = v;
        range.value = String(sc.toPos(v));
        num.value = String(v);
      };
      setBoth(ui.params[name]);
      range.oninput = () => {
        const v = sc.toValue(Number(range.value));
        ui.params[name] = v;
        num.value = String(v);
        sendSoon();
      };
      range.onchange = () => sendSoon.flush();
      num.onchange = () => {
        let v = Number(num.value);
        if (!Number.isFinite(v)) return;
        v = Math.max(Number(rule.min), Math.min(Number(rule.max), sc.isInt ? Math.round(v) : v));
        setBoth(v);
        send();
      };
      root.append(
        el('div', { class: 'param', title: rule.help || '' },
          el('div', { class: 'param-head' }, el('span', {}, name.replace(/_/g, ' ')), num),
          range,
        ),
      );
    }
  };
  render();

  // progress bar (with its Cancel) and summary
  const fill = jobEl.querySelector('.fill');
  const text = jobEl.querySelector('.job-text');
  const cancel = jobEl.querySelector('#job-cancel');
  cancel.onclick = () => actions.cancelClustering();
  subscribe('job', (s) => {
    const j = s.job || {};
    jobEl.dataset.state = j.state || '';
    fill.style.width = `${Math.round(100 * (j.state === 'done' ? 1 : j.fraction || 0))}%`;
    text.textContent =
      j.state === 'running'
        ? `clustering… ${j.message || ''}`
        : j.state === 'error'
          ? `error: ${j.message}`
          : j.state === 'cancelled'
            ? 'cancelled: the map keeps the last result (move a control to run again)'
            : j.message || '';
    cancel.hidden = !(j.state === 'running' && j.job_id);
  });
  subscribe('cluster', (s) => {
    const r = s.cluster && s.cluster.result;
    if (!r) return (summaryEl.innerHTML = '');
    const sizes = (r.clusters || []).map((c) => c.size).sort((a, b) => b - a);
    const nNoise = r.n_noise ?? 0;
    const pct = s.n ? ((100 * nNoise) / s.n).toFixed(0) : '0';
    const maxSize = Math.max(1, ...sizes);
    const med = sizes.length ? sizes[Math.floor(sizes.length / 2)] : 0;
    summaryEl.innerHTML = `
      <div class="stats">
        <div><b id="n-clusters">${fmtInt(r.n_clusters)}</b><span>clusters</span></div>
        <div><b>${fmtInt(nNoise)}</b><span>noise (${pct}%)</span></div>
        <div><b>${fmtInt(sizes[0] || 0)}</b><span>largest</span></div>
        <div><b>${fmtInt(med)}</b><span>median</span></div>
      </div>
      <div class="sizes" title="cluster sizes, largest first">${sizes
        .slice(0, 60)
        .map((v) => `<i style="height:${Math.max(2, Math.round((28 * v) / maxSize))}px"></i>`)
        .join('')}</div>
      ${r.note ? `<div class="muted small">${escapeHtml(r.note)}</div>` : ''}`;
  });

  send();
}
