"""The checkpoint hook: saves on a timer, on request and on stop (a writer thread); the wear budget."""
from __future__ import annotations

import logging
import signal
import threading
import time

import numpy as np

from ..config import CheckpointConfig
from ..runtime import Hook
from .fileformat import HEADER_SIZE, CheckpointError, SlotInfo, encode
from .state import apply, capture
from .store import CheckpointStore

log = logging.getLogger("edge_runtime.checkpoint")


# ---------------------------------------------------------------------------- config
def ring_cost(rule) -> tuple[int, int]:
    """(bytes per RAM rollback snapshot, bytes when the ring is full)."""
    per = sum(t.nbytes if isinstance(t, np.ndarray) else t.numel() * t.element_size()
              for ts in rule.snapshot_tensors().values() for t in ts)
    return per, per * rule.ring.depth


def budget(bytes_per_save: int, c: CheckpointConfig) -> dict:
    """The wear budget: bytes written per day by the timer, and the worst case with back-to-back requests."""
    timer = 86400.0 / c.every_s * bytes_per_save if c.every_s > 0 else 0.0
    worst = 86400.0 / c.min_interval_s * bytes_per_save if c.min_interval_s > 0 else float("inf")
    return {"bytes_per_save": bytes_per_save, "every_s": c.every_s, "min_interval_s": c.min_interval_s,
            "bytes_per_day_timer": int(timer), "bytes_per_day_max": worst if worst == float("inf") else int(worst)}


def _mb(n) -> str:
    return "unbounded" if n == float("inf") else f"{n / 1e6:.1f} MB"


# ---------------------------------------------------------------------------- the hook
class CheckpointHook(Hook):
    """Saves on a timer, on request (request_save(), from any thread) and on graceful stop; resumes on start.

    The state is captured in the loop thread between steps (so it is
    consistent); with background=True the write + fsync happens in a thread.
    """

    def __init__(self, store: CheckpointStore, cfg: CheckpointConfig, resume_state: dict | None = None,
                 clock=time.monotonic, handle_sigint: bool = True):
        self.store = store
        self.cfg = cfg
        self.resume_state = resume_state
        self.clock = clock
        self.handle_sigint = handle_sigint
        self._requested = threading.Event()
        self._writer: threading.Thread | None = None
        self._last_save_t = None
        self._last_saved_step = None
        self._prev_sigint = None
        self.last: SlotInfo | None = None
        self.last_error: str | None = None
        self.bytes_per_save = None
        self.runner = None

    # -------------------------------------------------------- hook
    def on_start(self, runner):
        self.runner = runner
        self.store.lock()
        self.store.clean_temp()
        if self.resume_state is not None:
            apply(runner, self.resume_state)
            self._last_saved_step = runner.rule.steps
            log.info("resumed from checkpoint: step %d, %d lives so far, body step %d", runner.rule.steps,
                     len(runner.lifespans), runner.body_steps)
            self.resume_state = None
        self.bytes_per_save = HEADER_SIZE + len(encode(capture(runner)))
        b = budget(self.bytes_per_save, self.cfg)
        per, full = ring_cost(runner.rule)
        log.info("rollback ring: depth %d, a snapshot every %d decisions, %.2f MB each, %.2f MB of RAM when full",
                 runner.rule.ring.depth, runner.rule.cfg.rollback_every, per / 2**20, full / 2**20)
        log.info("checkpoints: %s, %s per save, timer every %s, min interval %.0f s; wear ~%s/day from the timer "
                 "(at most %s/day with back-to-back requests) + one per stop", self.store.dir, _mb(self.bytes_per_save),
                 f"{self.cfg.every_s:.0f} s" if self.cfg.every_s else "off", self.cfg.min_interval_s,
                 _mb(b["bytes_per_day_timer"]), _mb(b["bytes_per_day_max"]))
        self._last_save_t = self.clock()
        if self.handle_sigint and threading.current_thread() is threading.main_thread():
            # first Ctrl-C: finish this step, then stop with a final checkpoint; a second one interrupts at once
            def on_int(signum, frame):
                if runner.stop_requested:
                    raise KeyboardInterrupt
                log.info("SIGINT: stopping after this step (Ctrl-C again to interrupt at once)")
                runner.request_stop()
            self._prev_sigint = signal.signal(signal.SIGINT, on_int)

    def on_step(self, runner, sense, metrics):
        if sense.dead or self._busy():
            return  # a dead body is respawned right after this; save from a living one
        now = self.clock()
        since = now - self._last_save_t
        due = self.cfg.every_s > 0 and since >= self.cfg.every_s
        if self._requested.is_set() and since >= self.cfg.min_interval_s:
            due = True
        if due:
            self._requested.clear()
            self._save(runner, "requested" if not (self.cfg.every_s > 0 and since >= self.cfg.every_s) else "timer",
                       background=self.cfg.background)

    def on_stop(self, runner, summary):
        try:
            self.join()
            if self.cfg.on_stop and runner.rule.steps != self._last_saved_step and not self._body_dead(runner):
                self._save(runner, "stop", background=False)
        finally:
            if self._prev_sigint is not None:
                try:
                    signal.signal(signal.SIGINT, self._prev_sigint)
                except ValueError:
                    pass
                self._prev_sigint = None
            self.store.unlock()

    # -------------------------------------------------------- on request
    def request_save(self):
        """Ask for a checkpoint at the next step (thread-safe; honours min_interval_s)."""
        self._requested.set()

    def save_now(self, reason: str = "requested") -> SlotInfo | None:
        """Save synchronously, now (call from the loop thread, e.g. a hook). Ignores the wear interval."""
        self.join()
        return self._save(self.runner, reason, background=False)

    def join(self):
        if self._writer is not None:
            self._writer.join()
            self._writer = None

    def status(self) -> dict:
        b = budget(self.bytes_per_save, self.cfg) if self.bytes_per_save else {}
        return {"dir": str(self.store.dir), "saves": self.store.saves, "bytes_written": self.store.bytes_written,
                "last": self.last.to_dict() if self.last else None, "last_error": self.last_error,
                "save_pending": self._requested.is_set() or self._busy(), **b}

    # -------------------------------------------------------- internals
    def _busy(self) -> bool:
        return self._writer is not None and self._writer.is_alive()

    @staticmethod
    def _body_dead(runner) -> bool:
        """A dead world must not be saved as where to resume; a dead robot may (it comes back by reset anyway)."""
        from ..body import Revivable

        return runner.sense is not None and runner.sense.dead and not isinstance(runner.body, Revivable)

    def _save(self, runner, reason: str, background: bool) -> SlotInfo | None:
        t0 = time.perf_counter()
        state = capture(runner)
        step = state["meta"]["step"]
        self._last_save_t = self.clock()
        self._last_saved_step = step

        def write():
            try:
                payload = encode(state)
                info = self.store.save(payload, step)
            except CheckpointError as e:
                self.last_error = str(e)
                self._last_saved_step = None  # nothing new on flash: the stop save must still happen
                log.error("%s", e)
                return None
            self.last, self.last_error = info, None
            log.info("checkpoint (%s): step %d -> slot %s, sequence %d, %s in %.0f ms", reason, step, info.slot,
                     info.sequence, _mb(info.bytes), (time.perf_counter() - t0) * 1e3)
            return info

        if background:
            self._writer = threading.Thread(target=write, name="checkpoint-writer", daemon=True)
            self._writer.start()
            return None
        return write()
