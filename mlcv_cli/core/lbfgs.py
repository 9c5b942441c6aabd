"""Full-batch L-BFGS (optimizer "lbfgs") for the classifiers of training.py: the iteration,
and the state it keeps (correction pairs, the float64 iterate) saved and restored for resume.
"""
import numpy as np

LBFGS_MEMORY = 10
"""Correction pairs L-BFGS keeps (the usual 3-20; 10 as in scipy and scikit-learn)."""
LBFGS_GTOL = 1e-6
"""L-BFGS stops once no gradient component of the (mean) objective exceeds this..."""
LBFGS_FTOL = 1e-10
"""...or once an iteration lowers the objective by less than this fraction of it."""
_ARMIJO = 1e-4
_MAX_HALVINGS = 30


class LBFGSMixin:
    """L-BFGS over the weights of a training.GradientClassifier, which provides the epoch
    bookkeeping it uses (_weights, _set_weights, _flat_loss_grad, _end_epoch, _diverged,
    _epoch, _iteration, loss_history_, epochs) and calls the methods below."""

    def _init_lbfgs(self):
        self._lbfgs_pairs = []
        self._lbfgs_done = False
        self._lbfgs_theta = None

    def _fit_lbfgs(self, X, y, on_step, on_epoch, should_stop):
        # Full-batch L-BFGS (Nocedal and Wright, algorithm 7.4) on theta, every weight raveled
        # into one float64 vector; the model's _flat_loss_grad keeps its products with X in the
        # data's dtype. A backtracking (Armijo) line search is enough here: with an L2 penalty
        # the linear objectives are strictly convex, so every step keeps the curvature s.y
        # positive; a pair without it (hinge kinks, a network's non-convexity) is skipped.
        dt = X.dtype

        def evaluate(theta):
            return self._flat_loss_grad(theta, X, y, dt)

        # The float64 iterate itself, not the weights rounded to float32: a resumed run must
        # continue from exactly where the interrupted one was.
        theta = self._lbfgs_theta
        if theta is None:
            theta = np.concatenate([w.ravel() for w in self._weights().values()]).astype(np.float64)
        f, g = evaluate(theta)
        if not np.isfinite(f):
            self._diverged(f)
        while self._epoch < self.epochs and not self._lbfgs_done:
            if np.abs(g).max() <= LBFGS_GTOL:
                self._lbfgs_done = True
                break
            p = -self._lbfgs_direction(g)
            slope = float(g @ p)
            if slope >= 0:  # not a descent direction (rounding): restart from steepest descent
                self._lbfgs_pairs = []
                p, slope = -g, -float(g @ g)
            step = 1.0 if self._lbfgs_pairs else min(1.0, 1.0 / np.abs(g).sum())
            for _ in range(_MAX_HALVINGS):
                f_new, g_new = evaluate(theta + step * p)
                if np.isfinite(f_new) and f_new <= f + _ARMIJO * step * slope:
                    break
                step *= 0.5
            else:
                # No decrease left that float arithmetic can see: as converged as it gets.
                self._lbfgs_done = True
                break
            s_vec, y_vec = step * p, g_new - g
            if float(s_vec @ y_vec) > 1e-12 * float(y_vec @ y_vec):
                self._lbfgs_pairs = (self._lbfgs_pairs + [(s_vec, y_vec)])[-LBFGS_MEMORY:]
            f_old, theta, f, g = f, theta + s_vec, f_new, g_new
            self._lbfgs_theta = theta
            self._set_weights(self._unflatten(theta, dt))
            self._iteration += 1
            self.loss_history_.append(f)
            self._epoch_loss_sum, self._epoch_steps = f, 1
            self._lbfgs_done = f_old - f <= LBFGS_FTOL * max(abs(f_old), abs(f), 1.0)
            if on_step is not None:
                on_step(self._iteration, f)
            info = self._end_epoch(X, y)
            if on_epoch is not None:
                on_epoch(info)
            if should_stop is not None and should_stop() and self._epoch < self.epochs and not self._lbfgs_done:
                self.stopped_ = True
                return
        self.converged_ = bool(self._lbfgs_done)

    def _unflatten(self, theta, dt):
        """The weights stored in theta (float64, WEIGHTS order), each reshaped and cast to dt."""
        weights, start = {}, 0
        for name, w in self._weights().items():
            weights[name] = theta[start:start + w.size].reshape(w.shape).astype(dt)
            start += w.size
        return weights

    def _lbfgs_direction(self, g):
        """H g for the inverse-Hessian approximation of the stored pairs (two-loop recursion)."""
        q = g.copy()
        alphas = []
        for s_vec, y_vec in reversed(self._lbfgs_pairs):
            a = float(s_vec @ q) / float(s_vec @ y_vec)
            q -= a * y_vec
            alphas.append(a)
        if self._lbfgs_pairs:
            s_vec, y_vec = self._lbfgs_pairs[-1]
            q *= float(s_vec @ y_vec) / float(y_vec @ y_vec)
        for (s_vec, y_vec), a in zip(self._lbfgs_pairs, reversed(alphas)):
            b = float(y_vec @ q) / float(s_vec @ y_vec)
            q += (a - b) * s_vec
        return q

    def _lbfgs_state(self, P):
        """The get_state entries of L-BFGS for P weights in all: lbfgs_s, lbfgs_y, lbfgs_done, lbfgs_theta."""
        state = {
            "lbfgs_s": np.array([s for s, _ in self._lbfgs_pairs], np.float64).reshape(-1, P),
            "lbfgs_y": np.array([y for _, y in self._lbfgs_pairs], np.float64).reshape(-1, P),
            "lbfgs_done": np.int64(self._lbfgs_done),
        }
        if self._lbfgs_theta is not None:
            state["lbfgs_theta"] = self._lbfgs_theta.copy()
        return state

    def _restore_lbfgs(self, state, P):
        S, Y = np.asarray(state["lbfgs_s"], np.float64), np.asarray(state["lbfgs_y"], np.float64)
        if S.shape != Y.shape or S.ndim != 2 or S.shape[1] != P or S.shape[0] > LBFGS_MEMORY:
            raise ValueError(
                f"the saved L-BFGS pairs have shapes {S.shape} and {Y.shape} but ({LBFGS_MEMORY} or "
                f"fewer, {P}) are needed; the checkpoint is damaged, train from the start."
            )
        self._lbfgs_pairs = [(S[i].copy(), Y[i].copy()) for i in range(S.shape[0])]
        self._lbfgs_done = bool(state["lbfgs_done"])
        self._lbfgs_theta = None
        if "lbfgs_theta" in state:
            self._lbfgs_theta = np.array(state["lbfgs_theta"], np.float64)
            if self._lbfgs_theta.shape != (P,):
                raise ValueError(
                    f"the saved L-BFGS iterate has shape {self._lbfgs_theta.shape} but ({P},) is "
                    "needed; the checkpoint is damaged, train from the start."
                )
