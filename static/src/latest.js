// "Only the latest request counts" (after Embedding Atlas's utils/latest_async.ts).

/**
 * Wrap `fn(...args) -> Promise` so that one call is in flight at a time and only the newest call's answer counts.
 * A call made while another is in flight waits for it; if a newer call arrives meanwhile, the waiting one is never
 * sent. Each call resolves to `{value}` when its answer is the latest, or `{stale: true}` when a newer call
 * superseded it (sent or not). `slot` ({seq, inflight}) holds the bookkeeping, so it can live in the state.
 *
 * One at a time matters for the cluster protocol: the server may handle two events of one client in either order,
 * and "a new request cancels the previous job" must see them in order.
 */
export function latestOnly(fn, slot = { seq: 0, inflight: null }) {
  return async (...args) => {
    const mine = ++slot.seq;
    while (slot.inflight) {
      await slot.inflight.catch(() => {});
      if (mine !== slot.seq) return { stale: true };
    }
    const p = Promise.resolve().then(() => fn(...args));
    slot.inflight = p;
    try {
      const value = await p;
      return mine === slot.seq ? { value } : { stale: true };
    } finally {
      if (slot.inflight === p) slot.inflight = null;
    }
  };
}
