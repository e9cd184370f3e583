"""Many weighted logistic regressions at once, each optimised on its own (L-BFGS), sharing only the matmuls.

Head h minimises ``sum_i w[i, h] * BCE(x_i . W_h + b_h, y[i, h]) / sum_i w[i, h] + l2/2 * |W_h|^2`` (the bias is
not penalised). Every head has its own L-BFGS history, its own backtracking (Armijo) line search and its own
stopping test, so a head's path depends on its own rows only: a cross-validation fold trained as a head never
sees its held-out rows (weight 0), however many other heads share the batch. Heads that have converged leave
the batch, so the cost falls as they finish. One evaluation costs two float32 matmuls ``[m, D] x [D, H]``.
"""

from __future__ import annotations

import numpy as np

HISTORY = 10


def fit_heads(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    *,
    l2: float,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit H heads on float32 x [m, D], targets y [m, H] in {0, 1}, weights w [m, H] >= 0.

    Returns (W float32 [D, H], b float32 [H], iterations int [H]). A head stops when its largest gradient entry
    is below ``tol`` or its loss falls by less than ``tol`` times itself in an iteration, else at ``max_iter``.
    """
    m, d = x.shape
    h = y.shape[1]
    xa = np.empty((m, d + 1), np.float32)
    xa[:, :d] = x
    xa[:, d] = 1.0
    y = np.asarray(y, np.float32)
    wn = np.asarray(w, np.float32) / np.maximum(np.asarray(w, np.float32).sum(0), 1e-6)[None, :]
    pen = np.full((d + 1, 1), l2, np.float32)
    pen[d] = 0.0  # the bias is free

    def evaluate(theta: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = xa @ theta
        yc, wc = y[:, cols], wn[:, cols]
        loss = (wc * (np.logaddexp(0.0, z) - yc * z)).sum(0) + 0.5 * (pen * theta * theta).sum(0)
        g = wc * (_sigmoid(z) - yc)
        return loss.astype(np.float64), xa.T @ g + pen * theta

    out = np.zeros((d + 1, h), np.float32)
    iters = np.zeros(h, int)
    # the state of the heads still running, compacted (contiguous) whenever some finish
    act = np.arange(h)
    theta = np.zeros((d + 1, h), np.float32)
    f, g = evaluate(theta, act)
    s_hist = np.zeros((HISTORY, d + 1, h), np.float32)
    y_hist = np.zeros((HISTORY, d + 1, h), np.float32)
    rho = np.zeros((HISTORY, h), np.float32)  # 0 = an empty (or skipped) slot: a no-op in the two-loop recursion
    gamma = np.ones(h, np.float32)
    done = np.abs(g).max(0) <= tol
    for it in range(max_iter + 1):
        if done.any() or it == max_iter:
            out[:, act[done]] = theta[:, done]
            if it == max_iter:
                out[:, act[~done]] = theta[:, ~done]
                break
            keep = ~done
            act, theta, f, g = act[keep], theta[:, keep], f[keep], g[:, keep]
            s_hist, y_hist, rho, gamma = s_hist[:, :, keep], y_hist[:, :, keep], rho[:, keep], gamma[keep]
            if act.size == 0:
                break
        # two-loop recursion over the slots, newest first (slot it-1, it-2, ... modulo HISTORY)
        q = -g
        order = [(it - 1 - k) % HISTORY for k in range(min(it, HISTORY))]
        alpha = np.zeros((len(order), act.size), np.float32)
        for j, k in enumerate(order):
            alpha[j] = rho[k] * np.einsum("pa,pa->a", s_hist[k], q)
            q -= alpha[j] * y_hist[k]
        r = q * gamma
        for j, k in reversed(list(enumerate(order))):
            beta = rho[k] * np.einsum("pa,pa->a", y_hist[k], r)
            r += s_hist[k] * (alpha[j] - beta)
        slope = np.einsum("pa,pa->a", g, r)
        bad = slope >= 0  # not a descent direction (numerical trouble): fall back to steepest descent
        if bad.any():
            r[:, bad] = -g[:, bad]
            slope[bad] = -np.einsum("pa,pa->a", g[:, bad], g[:, bad])
        step = np.ones(act.size, np.float32)
        if it == 0:
            step = np.minimum(1.0, 1.0 / np.abs(g).sum(0)).astype(np.float32)
        f_new, g_new = np.empty(act.size), np.empty_like(g)
        trial = theta + step * r
        ft, gt = evaluate(trial, act)
        ok = ft <= f + 1e-4 * step * slope
        f_new[ok], g_new[:, ok] = ft[ok], gt[:, ok]
        todo = np.flatnonzero(~ok)
        for _ in range(30):  # backtracking until the Armijo condition holds, each head on its own
            if todo.size == 0:
                break
            step[todo] *= 0.5
            ft, gt = evaluate(theta[:, todo] + step[todo] * r[:, todo], act[todo])
            ok = ft <= f[todo] + 1e-4 * step[todo] * slope[todo]
            f_new[todo], g_new[:, todo] = ft, gt  # the last trial stands if no decrease is ever found
            todo = todo[~ok]
        sv = step * r
        yv = g_new - g
        sy = np.einsum("pa,pa->a", sv, yv)
        yy = np.einsum("pa,pa->a", yv, yv)
        slot = it % HISTORY
        good = sy > 1e-10
        s_hist[slot], y_hist[slot] = sv, yv
        rho[slot] = np.where(good, 1.0 / np.where(good, sy, 1.0), 0.0)
        gamma = np.where(good, sy / np.maximum(yy, 1e-30), gamma).astype(np.float32)
        theta += sv
        decrease = f - f_new
        f, g = f_new, g_new
        iters[act] += 1
        done = (np.abs(g).max(0) <= tol) | (decrease <= tol * np.abs(f))
    return out[:d].copy(), out[d].copy(), iters


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))
