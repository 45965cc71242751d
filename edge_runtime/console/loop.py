"""The loop's side of the console: ConsoleHook serves requests and stream lines from the control loop's thread."""
from __future__ import annotations

import logging
import time

from ..body import MotorControl, Revivable
from ..config import ConfigError
from ..hooks import Hook
from ..jsonout import dumps
from .server import CommandError, Console, _fmt

log = logging.getLogger("edge_runtime.console")


SAVE_MIN_INTERVAL_S = 1.0


class ConsoleHook(Hook):
    """Runner hook (edge_runtime.hooks.Hook): serves console requests and stream lines from the loop thread."""

    def __init__(self, console: Console):
        self.console = console
        self.max_requests_per_step = 0  # observed (for tests and the benchmark): never above 1
        self._next_stream = 0.0
        self._rate = None
        self._rate_t = None
        self._rate_n = 0
        self._last_save = -1e9
        self._t0 = time.monotonic()
        self.runner = None
        self.waiting_for: str | None = None  # set while the runtime waits for a dead body's revive

    @classmethod
    def from_config(cls, device: str, cfg) -> "ConsoleHook":
        """The hook for `run --console DEVICE`; opens the device now so a wrong path fails before the run."""
        c = Console(device, cfg.section("console"))
        c.open()
        return cls(c)

    # -- Hook
    def on_start(self, runner):
        self.runner = runner
        self._rate_t = time.monotonic()
        self.console.start()
        log.info("console on %s (%s)", self.console.device, "writable" if self.console.cfg.writable else "read-only")

    def on_step(self, runner, sense, metrics):
        self.waiting_for = None
        self._rate_n += 1  # (decisions per second: waits are not steps)
        self._serve(runner, sense, metrics)

    def on_wait(self, runner, waiting_for):
        """A dead body is waiting to be revived: no steps run, the console still answers."""
        self.waiting_for = waiting_for
        try:
            self._serve(runner, runner.sense, runner.last)
        finally:
            self.waiting_for = None

    def on_stop_requested(self, runner):
        pass

    def _serve(self, runner, sense, metrics):
        c = self.console
        now = time.monotonic()
        c.last_step_t, c.last_step = now, runner.rule.steps
        if now - self._rate_t >= 2.0:
            self._rate = self._rate_n / (now - self._rate_t)
            self._rate_t, self._rate_n = now, 0
        n = 0
        if c.requests:
            req = c.requests.popleft()
            with req.lock:
                go = not req.cancelled
                req.taken = go
            if go:
                n = 1
                try:
                    req.reply = self.run_command(runner, sense, metrics, req.cmd, req.args)
                except CommandError as e:
                    req.reply = f"error: {e}"
                except Exception as e:  # a console command must never take the loop down
                    log.exception("console: %s failed", req.cmd)
                    req.reply = f"error: {req.cmd}: {type(e).__name__}: {e}"
                req.done.set()
        self.max_requests_per_step = max(self.max_requests_per_step, n)
        every = c.stream_every
        if every is not None and now >= self._next_stream:
            self._next_stream = now + every
            c.post_line(self.stream_line(runner, sense, metrics))

    def on_death(self, runner, lifespan):
        pass

    def on_stop(self, runner, summary):
        c = self.console
        c.post_line(f"runtime stopped after {summary.get('steps')} steps")
        # answer whatever is still waiting so the console thread is not left hanging
        while c.requests:
            req = c.requests.popleft()
            req.reply = "error: the runtime stopped"
            req.done.set()
        c.stop()

    # -- the commands that need the runtime (loop thread)
    def stream_line(self, runner, sense, m) -> str:
        r = runner.rule
        if self.waiting_for is not None:
            return f"[stream] step {r.steps} | life {len(runner.lifespans) + 1} | dead: waiting for {self.waiting_for}"
        return (f"[stream] step {r.steps} | {_fmt(self._rate, '.1f')} st/s | life {len(runner.lifespans) + 1} | "
                f"hp {sense.hp:.2f} en {sense.energy:.2f} | loss {_fmt(m.get('self_loss'), '+.3f')} | "
                f"lr {_fmt(m.get('self_lr'))} | H {_fmt(m.get('entropy'), '.2f')} | rb {r.rollbacks} | faults {r.faults}")

    @staticmethod
    def _checkpoint_hook(runner):
        from ..checkpoint import CheckpointHook  # (the loop side runs inside the runtime: torch is loaded already)

        return next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)

    def run_command(self, runner, sense, m, cmd: str, args: list[str]) -> str:
        rule, body = runner.rule, runner.body
        if cmd == "status":
            lives = runner.lifespans
            med = sorted(lives)[len(lives) // 2] if lives else None
            up = time.monotonic() - self._t0
            lines = [
                f"body {body.spec.name} | rule {rule.name} | learning {'on' if rule.learning else 'off'} | up {up:.0f} s",
                f"step {rule.steps} | body step {runner.body_steps} | {_fmt(self._rate, '.1f')} st/s",
                f"life {len(lives) + 1} ({runner.life_steps} body steps) | lives ended {len(lives)} | "
                f"median life {med if med is not None else '-'}",
                f"hp {sense.hp:.2f} | energy {sense.energy:.2f} | rollbacks {rule.rollbacks} | faults {rule.faults}",
                f"overrides {runner.overrides.describe()}",
            ]
            if self.waiting_for is not None:
                lines.insert(1, f"dead: waiting for {self.waiting_for}")
            ck = self._checkpoint_hook(runner)
            if ck is not None:
                st = ck.status()
                last = st.get("last") or {}
                lines.append(f"checkpoints {st.get('dir')} | saves {st.get('saves')} | last step {last.get('step', '-')}"
                             f"{' | save pending' if st.get('save_pending') else ''}")
            return "\n".join(lines)
        if cmd == "senses":
            touch = " ".join(f"{float(t):.2f}" for t in sense.touch) or "-"
            eyes = []
            for name in ("left", "right"):
                img = getattr(sense, name)
                eyes.append(f"{name} {img.shape[1]}x{img.shape[0]} mean {float(img.mean()):.0f}" if img is not None else f"{name} -")
            return (f"hp {sense.hp:.3f} | energy {sense.energy:.3f} | dead {'yes' if sense.dead else 'no'} | "
                    f"frame {sense.frame_id} | t {sense.t:.3f}\ntouch [{touch}]\neyes {' | '.join(eyes)}")
        if cmd == "counters":
            return dumps(runner.body_counters(), sort_keys=True)
        ov = runner.overrides
        if not rule.learns and cmd in ("learn", "lr", "rollback") and (args or cmd == "rollback"):
            raise CommandError(f"{cmd}: this run only acts, with an exported brain ({rule.name}: ONNX Runtime, no "
                               "torch): there is no learning to switch on, no rate, no snapshot; run a learning "
                               "brain (a run directory) to learn")
        if cmd == "learn":
            if args:
                ov.learning = None if args[0] == "on" else False  # on is the default: no override left
                ov.apply(runner)
                log.warning("console: learning %s (an override, kept across restarts until `overrides clear`)", args[0])
            return f"learning {'on' if rule.learning else 'off'}"
        if cmd == "lr":
            if not rule.learns:
                return "self_lr - | lr_eff - | no learning (an exported brain acting)"
            c = rule.cfg
            if args:
                lo, hi = float(args[0]), float(args[1])
                old = (ov.lr_min, ov.lr_max)
                ov.lr_min, ov.lr_max = lo, hi
                try:
                    ov.apply(runner)
                except ConfigError as e:
                    ov.lr_min, ov.lr_max = old
                    raise CommandError(f"lr: {e}") from None
                log.warning("console: lr range set to [%g, %g] (an override, kept across restarts)", lo, hi)
            return (f"self_lr {_fmt(m.get('self_lr'))} | lr_eff {_fmt(m.get('lr_eff'), '.2e')} | "
                    f"range [{c.lr_min:g}, {c.lr_max:g}]")
        if cmd == "overrides":
            if args:
                was = ov.describe()
                runner.overrides = type(ov)()
                runner.overrides.apply(runner)
                log.warning("console: overrides cleared (were: %s)", was)
                return f"overrides cleared (were: {was})"
            return f"overrides {ov.describe()}"
        if cmd == "save":
            ck = self._checkpoint_hook(runner)
            if ck is not None:
                ck.request_save()
                gap = ck.cfg.min_interval_s
                return (f"checkpoint requested: written at the next living step at least {gap:g} s after the last one "
                        "(wear guard; see status)")
            now = time.monotonic()
            if now - self._last_save < SAVE_MIN_INTERVAL_S:
                raise CommandError(f"save: the last save was {now - self._last_save:.1f} s ago (at most one per {SAVE_MIN_INTERVAL_S:g} s)")
            path = runner.save_weights()
            self._last_save = now
            if path is None:
                raise CommandError("save: this run has no run directory to save into")
            log.info("console: saved %s", path)
            return f"saved {path} at step {rule.steps}"
        if cmd == "rollback":
            if not rule.rollback("console"):
                raise CommandError("rollback: no snapshot to roll back to")
            return f"rolled back to the latest snapshot (rollbacks {rule.rollbacks})"
        if cmd == "motors":
            if not isinstance(body, MotorControl):
                raise CommandError(f"motors: body {body.spec.name!r} has no motor control")
            ov.motors_held = True if args[0] == "stop" else None
            ov.apply(runner)
            log.warning("console: motors %s", args[0])
            return "motors stopped (held until: motors go)" if args[0] == "stop" else "motors released"
        if cmd == "revive":
            if isinstance(body, Revivable):
                new = body.revive()
                if new is None:
                    raise CommandError(f"revive: the body cannot come back yet: waiting for {body.waiting_for}")
            elif sense.dead:
                raise CommandError("revive: the body died this step; the loop is bringing it back")
            else:
                new = body.respawn()
            runner.begin_life(new)
            log.warning("console: revived (life %d ends without a death)", len(runner.lifespans) + 1)
            return f"revived: hp {new.hp:.2f} energy {new.energy:.2f}"
        raise CommandError(f"unknown command {cmd!r} (try help)")
