// The WebGL map (regl-scatterplot): points in normalised coordinates, categorical colours, hover/click/lasso.
import createScatterplot from 'regl-scatterplot';
import { toRGBA } from '../colors.js';

/** A minimal D3-compatible linear scale, so the scatterplot keeps data<->screen mapping current for us. */
function linearScale(d = [-1, 1], r = [0, 1]) {
  let domain = [...d];
  let range = [...r];
  const s = (v) => range[0] + ((v - domain[0]) / (domain[1] - domain[0])) * (range[1] - range[0]);
  s.domain = (x) => (x ? ((domain = [...x]), s) : [...domain]);
  s.range = (x) => (x ? ((range = [...x]), s) : [...range]);
  s.invert = (p) => domain[0] + ((p - range[0]) / (range[1] - range[0])) * (domain[1] - domain[0]);
  s.copy = () => linearScale(domain, range);
  return s;
}

/** Map raw x,y pairs to [-1, 1] keeping the aspect ratio (with a margin). */
export function normalise(xy) {
  const n = xy.length >> 1;
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = xy[2 * i];
    const y = xy[2 * i + 1];
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  if (!Number.isFinite(x0)) [x0, x1, y0, y1] = [0, 1, 0, 1];
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const half = Math.max(x1 - x0, y1 - y0, 1e-9) / 2 / 0.92;
  const nx = new Float32Array(n);
  const ny = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const x = xy[2 * i];
    const y = xy[2 * i + 1];
    nx[i] = Number.isFinite(x) ? (x - cx) / half : 0;
    ny[i] = Number.isFinite(y) ? (y - cy) / half : 0;
  }
  return { nx, ny, box: robustBox(nx, ny) };
}

/**
 * The box the view fits: the 1st-99th percentiles of each axis widened by 15 %, never wider than all the points.
 * UMAP throws a few far-away islands; fitting every one of them would shrink the map's body to a corner.
 * Everything stays reachable by zooming out.
 */
function robustBox(nx, ny) {
  const n = nx.length;
  const q = (arr) => {
    const sorted = Float32Array.from(arr).sort();
    const lo = sorted[Math.floor(0.01 * (n - 1))];
    const hi = sorted[Math.ceil(0.99 * (n - 1))];
    const pad = 0.15 * (hi - lo);
    return [Math.max(sorted[0], lo - pad), Math.min(sorted[n - 1], hi + pad)];
  };
  if (n === 0) return { x: -1, y: -1, width: 2, height: 2 };
  const [bx0, bx1] = q(nx);
  const [by0, by1] = q(ny);
  return { x: bx0, y: by0, width: bx1 - bx0, height: by1 - by0 };
}

/** A uniform grid over [-1, 1]² (CSR layout) answering "nearest point within r" in a few microseconds. */
function gridIndex(nx, ny) {
  const n = nx.length;
  const G = Math.max(16, Math.min(512, Math.round(Math.sqrt(n / 2))));
  const cellOf = (v) => Math.max(0, Math.min(G - 1, Math.floor(((v + 1) / 2) * G)));
  const start = new Int32Array(G * G + 1);
  const cell = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    cell[i] = cellOf(ny[i]) * G + cellOf(nx[i]);
    start[cell[i] + 1]++;
  }
  for (let c = 0; c < G * G; c++) start[c + 1] += start[c];
  const fill = start.slice(0, G * G);
  const items = new Int32Array(n);
  for (let i = 0; i < n; i++) items[fill[cell[i]]++] = i;
  return {
    nearest(x, y, r, visible) {
      let best = -1;
      let bestD = r * r;
      const gx0 = cellOf(x - r);
      const gx1 = cellOf(x + r);
      const gy0 = cellOf(y - r);
      const gy1 = cellOf(y + r);
      for (let gy = gy0; gy <= gy1; gy++) {
        for (let gx = gx0; gx <= gx1; gx++) {
          const c = gy * G + gx;
          for (let k = start[c]; k < start[c + 1]; k++) {
            const i = items[k];
            if (visible && !visible[i]) continue;
            const d = (nx[i] - x) ** 2 + (ny[i] - y) ** 2;
            if (d <= bestD) {
              bestD = d;
              best = i;
            }
          }
        }
      }
      return best;
    },
  };
}

function pointSizeFor(n) {
  if (n < 500) return 10;
  if (n < 2000) return 7;
  if (n < 20000) return 4.5;
  if (n < 100000) return 3;
  return 2;
}

export function createMap({ canvas, onHover, onOut, onClick, onLasso, onDeselect }) {
  const xScale = linearScale();
  const yScale = linearScale();
  let lassoing = false;
  let nx = null;
  let ny = null;
  let codes = null;
  let spatialIndex;
  let selected = [];
  let filter = null;
  let drawn = false;
  let index = null; // grid index for hover picking
  let visible = null; // Uint8Array mask when a filter hides points
  let dataBox = null;

  const plot = createScatterplot({
    canvas,
    width: 'auto',
    height: 'auto',
    syncEvents: true, // hover → sound inside the same mousemove task: no extra frame of latency
    xScale,
    yScale,
    backgroundColor: [0.055, 0.063, 0.078, 1],
    pointColor: [[0.6, 0.65, 0.75, 0.85]],
    pointColorHover: [1, 1, 1, 1],
    pointColorActive: [1, 1, 1, 1],
    pointOutlineWidth: 1,
    pointSizeSelected: 1,
    opacity: 0.85,
    lassoColor: [0.42, 0.75, 1, 1],
    lassoLineWidth: 2,
    lassoMinDelay: 10,
    showReticle: false,
  });

  // The timestamp of the pointer event that leads to a hover, for the latency hook (t_event).
  // Hover → sound does not wait for a frame: Chrome delivers mousemove/pointermove aligned to animation frames,
  // but 'pointerrawupdate' as soon as the input arrives. We find the point under the pointer ourselves (a grid
  // index over the normalised coordinates) and let regl-scatterplot only draw the highlight.
  let hovered = -1;
  const onPointer = (e) => {
    if (!nx || e.buttons) return;
    const tHandler = performance.now();
    const r = canvas.getBoundingClientRect();
    const px = e.clientX - r.left;
    const py = e.clientY - r.top;
    if (px < 0 || py < 0 || px > r.width || py > r.height) return;
    const x = xScale.invert(px);
    const y = yScale.invert(py);
    const perPx = Math.abs(xScale.invert(1) - xScale.invert(0));
    const i = index ? index.nearest(x, y, (pointSizeFor(nx.length) / 2 + 3) * perPx, visible) : -1;
    if (i === hovered) return;
    hovered = i;
    if (i >= 0) {
      onHover && onHover(i, e.timeStamp, tHandler);
      plot.hover(i, { preventEvent: true });
    } else {
      onOut && onOut(-1);
    }
  };
  const rawSupported = 'onpointerrawupdate' in window;
  canvas.addEventListener(rawSupported ? 'pointerrawupdate' : 'pointermove', onPointer, { passive: true });
  canvas.addEventListener('mouseleave', () => {
    hovered = -1;
    onOut && onOut(-1);
  });

  // regl-scatterplot publishes 'select' before 'lassoEnd': remember that a lasso is under way.
  plot.subscribe('lassoStart', () => (lassoing = true));
  plot.subscribe('lassoEnd', () => (lassoing = false));
  plot.subscribe('select', ({ points }) => {
    if (lassoing) {
      lassoing = false;
      onLasso && onLasso(points);
    } else if (points.length === 1) {
      onClick && onClick(points[0]);
    }
  });
  plot.subscribe('deselect', () => onDeselect && onDeselect());

  /** Fill the canvas with the data's bounding box (plus a margin), whatever the canvas's aspect ratio. */
  function fitView(transition) {
    if (!dataBox) return plot.zoomToOrigin({ transition, transitionDuration: 300 });
    const m = 0.06;
    const w = Math.max(dataBox.width, 1e-3);
    const h = Math.max(dataBox.height, 1e-3);
    plot.zoomToArea(
      { x: dataBox.x - w * m, y: dataBox.y - h * m, width: w * (1 + 2 * m), height: h * (1 + 2 * m) },
      { transition, transitionDuration: 300, preventFilterReset: true },
    );
  }

  // Rings over the clip being heard and the pinned clip: plain DOM, so they are crisp and cost no redraw.
  const markers = {};
  const markerIdx = { current: -1, pinned: -1 };
  for (const kind of ['current', 'pinned']) {
    markers[kind] = document.createElement('div');
    markers[kind].className = `map-marker ${kind}`;
    markers[kind].hidden = true;
    canvas.parentElement.appendChild(markers[kind]);
  }
  function placeMarkers() {
    for (const kind of ['current', 'pinned']) {
      const i = markerIdx[kind];
      const m = markers[kind];
      if (!nx || i < 0 || i >= nx.length) {
        m.hidden = true;
        continue;
      }
      const x = xScale(nx[i]);
      const y = yScale(ny[i]);
      m.hidden = !(x >= 0 && y >= 0 && x <= canvas.clientWidth && y <= canvas.clientHeight);
      m.style.transform = `translate(${x}px, ${y}px)`;
    }
  }
  plot.subscribe('view', placeMarkers);

  function pointsObject() {
    return codes ? { x: nx, y: ny, valueA: codes } : { x: nx, y: ny };
  }

  // regl-scatterplot refuses a draw while the previous one is running: draws go through one queue, and a draw
  // that is already superseded by a newer one in the queue is skipped (the newer one uses the latest state).
  let queue = Promise.resolve();
  let queued = 0;
  function enqueue(fn) {
    queued++;
    queue = queue.then(async () => {
      queued--;
      if (queued > 0) return;
      try {
        await fn();
      } catch (e) {
        console.warn(e);
      }
    });
    return queue;
  }

  function redraw() {
    if (!nx) return Promise.resolve();
    return enqueue(async () => {
      await plot.draw(pointsObject(), {
        spatialIndex,
        zDataType: 'categorical',
        preventFilterReset: true,
        select: selected.length ? selected : undefined,
        filter: filter || undefined,
      });
      spatialIndex = plot.get('spatialIndex');
    });
  }

  return {
    plot,
    xScale,
    yScale,
    get drawn() {
      return drawn;
    },
    /** Draw new positions (normalised [-1, 1]). Resolves when the first frame with points is drawn. */
    async setPoints(newNx, newNy, box = null) {
      dataBox = box;
      nx = newNx;
      ny = newNy;
      codes = null;
      spatialIndex = undefined;
      selected = [];
      filter = null;
      plot.set({ pointSize: pointSizeFor(nx.length), colorBy: null, pointColor: [[0.55, 0.62, 0.75, 0.8]] });
      index = gridIndex(nx, ny);
      visible = null;
      await enqueue(async () => {
        await plot.draw({ x: nx, y: ny });
        spatialIndex = plot.get('spatialIndex');
      });
      fitView(false);
      drawn = true;
    },
    /** Colour points: codes Float32Array [n] of category indices into colors (CSS strings). */
    async setColors(newCodes, colors) {
      codes = newCodes;
      const alpha = nx && nx.length > 50000 ? 0.7 : 0.88;
      const rgba = colors.map((c) => toRGBA(c, alpha));
      plot.set({ colorBy: 'valueA', pointColor: rgba });
      await redraw();
    },
    setFilter(indices) {
      filter = indices;
      visible = null;
      if (indices) {
        visible = new Uint8Array(nx.length);
        for (const i of indices) visible[i] = 1;
      }
      if (indices) plot.filter(indices, { preventEvent: true });
      else plot.unfilter({ preventEvent: true });
    },
    select(ids) {
      selected = ids ? Array.from(ids) : [];
      if (selected.length) plot.select(selected, { preventEvent: true });
      else plot.deselect({ preventEvent: true });
    },
    hover(i) {
      plot.hover(i, { preventEvent: true });
    },
    fit() {
      fitView(true);
    },
    zoomTo(ids) {
      if (ids && ids.length) plot.zoomToPoints(Array.from(ids), { padding: 0.3, transition: true, transitionDuration: 400 });
    },
    setMarkers(current, pinned) {
      markerIdx.current = current === pinned ? -1 : current;
      markerIdx.pinned = pinned;
      placeMarkers();
    },
    setLasso(on) {
      plot.set({ mouseMode: on ? 'lasso' : 'panZoom' });
    },
    /** Client (page) coordinates of point i, or null if it is off screen. */
    pointToScreen(i) {
      const r = canvas.getBoundingClientRect();
      const x = r.left + xScale(nx[i]);
      const y = r.top + yScale(ny[i]);
      if (x < r.left || x > r.right || y < r.top || y > r.bottom) return null;
      return [x, y];
    },
    /** Normalised data coordinates under a client position. */
    screenToData(cx, cy) {
      const r = canvas.getBoundingClientRect();
      return [xScale.invert(cx - r.left), yScale.invert(cy - r.top)];
    },
  };
}
