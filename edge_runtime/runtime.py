"""The runtime loop: sense, decide, act, feel, learn; every step, while it acts.

    sense = body.reset(seed)
    loop:
        action  = rule.decide(eyes, body)                 forward pass, thought kept
        repeat up to action_repeat body steps (stop early on a felt event):
            sense = body.act(action)
        rule.learn(feeling, next eyes, next body)         loss/LR from the output, backward, update, free
        if dead: body comes back; rule.new_life()          only this body comes back

A `Revivable` body (a robot waiting for its button) is not waited for inside
respawn(): the loop polls it and meanwhile gives every hook `on_wait`, so the
console answers, the watchdog is fed and a stop request ends the wait.

Console changes (learning off, the learning-rate range, motors held) are
`Overrides`: state of the run, saved in checkpoints and re-applied on resume,
never written into the config (which a resume compares against).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import sys
import time
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .acting import act_repeat
from .body import Body, MotorControl, Revivable, Sense
from .config import Config, ConfigError, learner_backend, section_to_dict
from .hooks import Hook
from .jsonout import dumps

if typing.TYPE_CHECKING:
    from .rules import Rule

# torch is imported when a learning rule is built: a run that only acts (an exported ONNX brain, with its own
# Rule-like actor, edge_runtime/onnx_policy.py) never imports it

log = logging.getLogger("edge_runtime.runtime")

# what a rule reports per step (metrics.jsonl, the live view and recordings carry these, rounded to 6 decimals)
RULE_METRICS = ("self_loss", "self_lr", "lr_eff", "entropy", "entropy_w", "td_error", "discomfort", "setback")
METRIC_KEYS = ("step", "body_step", "life", "hp", "energy", "self_loss", "self_lr", "lr_eff", "entropy", "td_error",
               "discomfort", "entropy_w", "setback", "rollbacks", "faults", "dead")


def median(xs) -> float:
    return float(np.median(xs)) if len(xs) else float("nan")


@dataclass
class Overrides:
    """What the console changed at run time. None = not overridden (the config's value holds)."""

    learning: bool | None = None
    lr_min: float | None = None
    lr_max: float | None = None
    motors_held: bool | None = None

    def active(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def describe(self) -> str:
        a = self.active()
        return ", ".join(f"{k} {v}" for k, v in a.items()) if a else "none"

    @classmethod
    def from_dict(cls, d: dict) -> "Overrides":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def apply(self, runner: "Runner") -> None:
        """Put the overridden values into the running rule and body (the rule holds its own copy of the config)."""
        rule, c = runner.rule, runner.cfg.rule
        if rule.learns:  # (an actor with an exported brain has no learning to switch or rate to bound)
            rule.learning = True if self.learning is None else self.learning
            lo = c.lr_min if self.lr_min is None else self.lr_min
            hi = c.lr_max if self.lr_max is None else self.lr_max
            try:
                dataclasses.replace(c, lr_min=lo, lr_max=hi)  # the config's own checks
            except ConfigError as e:
                raise ConfigError(f"console override lr [{lo}, {hi}]: {e}") from None
            rule.cfg.lr_min, rule.cfg.lr_max = lo, hi
        if isinstance(runner.body, MotorControl):
            if self.motors_held:
                runner.body.stop_motors()
            elif runner.body.motors_held:
                runner.body.release_motors()


class Runner:
    def __init__(self, cfg: Config, body: Body, seed: int = 0, run_dir: str | Path | None = None,
                 rule: "Rule | None" = None, progress: bool = True, out=sys.stderr, hooks: list[Hook] | None = None,
                 encoder=None):
        self.cfg = cfg
        self.body = body
        self.seed = seed
        numpy_backend = (learner_backend(cfg.model, cfg.rule.name) == "numpy" if rule is None
                         else rule.learns and rule.net.name == "numpy")
        if (rule is None or rule.learns) and not numpy_backend:
            import torch

            torch.set_num_threads(cfg.runtime.threads)
        if rule is None:
            # the rule gets its own copy of its section: console overrides change the copy, never the run's config
            if numpy_backend:  # never imports torch (edge_runtime/numpy_learner/)
                from .numpy_learner import build as build_numpy
                from .numpy_learner import limit_blas_threads

                limit_blas_threads(cfg.runtime.threads)
                rule = build_numpy(body.spec, cfg.model, dataclasses.replace(cfg.rule), seed)
            else:
                from .rules import build

                rule = build(body.spec, cfg.model, dataclasses.replace(cfg.rule), seed)
        self.rule = rule
        self.overrides = Overrides()
        self.counters_before: dict = {}  # body counters of earlier processes of this run (from the checkpoint)
        if encoder is None and numpy_backend:
            from .numpy_learner import NumpySenseEncoder

            encoder = NumpySenseEncoder(body.spec, cfg.model.input_hw)
        elif encoder is None:
            from .senses import SenseEncoder

            encoder = SenseEncoder(body.spec, cfg.model.input_hw)
        self.enc = encoder  # sense -> what the rule's decide/act_frozen take
        self.run_dir = Path(run_dir) if run_dir else None
        self.progress = progress
        self.out = out
        self.stop_requested = False
        self.lifespans: list[int] = []
        self.body_steps = 0
        self.life_steps = 0
        self.last: dict = {}
        self.hooks: list[Hook] = list(hooks or [])
        self.sense: Sense | None = None
        self._revived: Sense | None = None
        self._stop_announced = False
        self._metrics_f = None
        if self.run_dir:
            self._open_run_dir()

    # ------------------------------------------------------------ run directory
    def _open_run_dir(self):
        d = self.run_dir
        d.mkdir(parents=True, exist_ok=True)
        import tomli_w

        (d / "config.toml").write_text(tomli_w.dumps(self.cfg.to_dict()))
        (d / "body_spec.json").write_text(dumps(self.body.spec.to_dict(), indent=1))
        (d / "run.json").write_text(dumps({"seed": self.seed, "rule": self.rule.name, "learns": self.rule.learns,
                                           "towers": self.rule.brain.towers if self.rule.learns else None}, indent=1))
        self._metrics_f = open(d / "metrics.jsonl", "a", buffering=1 << 16)
        self._lives_f = open(d / "lives.jsonl", "a", buffering=1)

    def save_weights(self, path: Path | None = None) -> Path | None:
        if not self.rule.learns:  # an actor with an exported brain: nothing here changes, nothing to save
            return None
        if self.rule.net.name == "numpy":  # weights.npz: torch Brain's names (evaluate.py reads it), no torch here
            if path is None:
                if not self.run_dir:
                    return None
                path = self.run_dir / "weights.npz"
            path = Path(path).with_suffix(".npz")  # (evaluation tells the formats apart by the suffix)
            tmp = Path(str(path) + ".tmp")
            self.rule.brain.save(tmp, {"towers": "split", "spec": self.body.spec.to_dict(),
                                       "model_cfg": section_to_dict(self.cfg.model), "rule": self.rule.name,
                                       "steps": self.rule.steps})
            os.replace(tmp, path)
            return path
        import torch

        if path is None:
            if not self.run_dir:
                return None
            path = self.run_dir / "weights.pt"
        tmp = Path(str(path) + ".tmp")
        torch.save({"model": self.rule.brain.state_dict(), "towers": self.rule.brain.towers,
                    "spec": self.body.spec.to_dict(), "model_cfg": section_to_dict(self.cfg.model),
                    "rule": self.rule.name, "steps": self.rule.steps}, tmp)
        os.replace(tmp, path)
        return path

    # ------------------------------------------------------------ the loop
    def run(self, steps: int | None = None) -> dict:
        """Learn for `steps` decisions (None: until stopped). Returns a summary."""
        rt = self.cfg.runtime
        prev_handler = None
        try:
            prev_handler = signal.signal(signal.SIGTERM, lambda *a: self.request_stop())
        except ValueError:  # not in the main thread
            pass
        t0 = time.perf_counter()
        t_last = t0
        s_last = 0
        sense = self.body.reset(seed=self.seed)
        self.sense = sense
        for h in self.hooks:
            h.on_start(self)
        if self.overrides.active():
            self.overrides.apply(self)
            log.warning("console overrides in effect (from the checkpoint): %s", self.overrides.describe())
        sense = self.sense  # a hook may have put the body back where a checkpoint left it (resume)
        eyes, bodyv = self.enc(sense)
        done = 0
        try:
            if sense.dead and isinstance(self.body, Revivable):  # a robot switched on with a flat battery
                sense = self._await_revive(sense)
                eyes, bodyv = self.enc(sense)
            while not self.stop_requested and (steps is None or done < steps):
                learning = self.rule.learning  # False: act frozen, no update (console `learn off`)
                action = self.rule.decide(eyes, bodyv) if learning else self.rule.act_frozen(eyes, bodyv)
                sense, feel = act_repeat(self.body, action, sense, rt.repeat_for(self.body.spec), rt.event_threshold)
                self.body_steps += feel.body_steps
                self.life_steps += feel.body_steps
                eyes, bodyv = self.enc(sense)
                m = self.rule.learn(feel, eyes, bodyv) if learning else {}
                done += 1
                self.last = m
                if self._metrics_f and done % rt.metrics_every == 0:
                    self._write_metrics(m, sense)
                self.sense = sense
                for h in self.hooks:
                    h.on_step(self, sense, m)
                if sense.dead:
                    span = self._end_life()
                    for h in self.hooks:
                        h.on_death(self, span)
                    sense = self._await_revive(sense) if isinstance(self.body, Revivable) else self.body.respawn()
                    if sense.dead:  # a stop ended the wait: the body stays dead, the loop ends
                        self.sense = sense
                        break
                    self.rule.new_life()
                    eyes, bodyv = self.enc(sense)
                    self.sense = sense
                elif self._revived is not None:  # a hook brought the body back (console `revive`): new life, no death
                    sense, self._revived = self._revived, None
                    self.life_steps = 0
                    self.rule.new_life()
                    eyes, bodyv = self.enc(sense)
                    self.sense = sense
                now = time.perf_counter()
                if self.progress and now - t_last >= rt.progress_every_s:
                    self._progress((done - s_last) / (now - t_last), done, sense)
                    t_last, s_last = now, done
        except KeyboardInterrupt:
            log.info("interrupted: stopping cleanly")
        finally:
            self._announce_stop()
            if prev_handler is not None:
                signal.signal(signal.SIGTERM, prev_handler)
            if self.progress:
                el = time.perf_counter() - t0
                self._progress(done / el if el > 0 else 0.0, done, self.sense)
                self.out.write("\n")
            wall = time.perf_counter() - t0
            summary = self.summary(done, wall)
            self.close_run(summary)
            for h in self.hooks:
                h.on_stop(self, summary)
        return summary

    def request_stop(self):
        """Stop after the current step (thread- and signal-safe). A wait for a revive ends at its next poll."""
        self.stop_requested = True
        self._announce_stop()

    def _announce_stop(self):
        if self._stop_announced:
            return
        self._stop_announced = True
        for h in self.hooks:
            h.on_stop_requested(self)

    def _await_revive(self, sense: Sense) -> Sense:
        """Poll a dead Revivable body until it comes back; hooks keep working meanwhile. Returns the dead Sense
        when a stop was requested first."""
        body = self.body
        assert isinstance(body, Revivable)
        log.info("dead (%s): waiting for %s", sense.extra.get("cause", "?"), body.waiting_for)
        while not self.stop_requested:
            if self._revived is not None:  # the console revived it (a hook, in on_wait)
                new, self._revived = self._revived, None
                return new
            new = body.poll_revive()
            if new is not None:
                return new
            for h in self.hooks:
                h.on_wait(self, body.waiting_for)
            time.sleep(0.01)
        log.info("stop requested while dead: not waiting for a revive")
        return sense

    def begin_life(self, sense: Sense):
        """From a hook's on_step: the body was brought back outside the death path; go on from `sense`."""
        self._revived = sense

    def _end_life(self) -> int:
        span = self.life_steps
        self.lifespans.append(self.life_steps)
        if self.run_dir:
            s = self.sense
            rec = {"life": len(self.lifespans), "length": self.life_steps, "step": self.rule.steps,
                   "body_step": self.body_steps, "t": s.t if s is not None else None,
                   "cause": s.extra.get("cause") if s is not None else None, **self.body_counters()}
            self._lives_f.write(dumps(rec) + "\n")
        self.life_steps = 0
        return span

    def _write_metrics(self, m: dict, sense: Sense):
        rec = {"step": self.rule.steps, "body_step": self.body_steps, "life": len(self.lifespans) + 1,
               "hp": round(sense.hp, 4), "energy": round(sense.energy, 4), "rollbacks": self.rule.rollbacks,
               "faults": self.rule.faults, "dead": bool(sense.dead)}
        for k in RULE_METRICS:
            if k in m:
                rec[k] = round(float(m[k]), 6)
        if "fault" in m:
            rec["fault"] = m["fault"]
        self._metrics_f.write(dumps(rec) + "\n")

    def _progress(self, rate: float, done: int, sense: Sense):
        m = self.last
        hmax = sum(math.log(n) for n in self.body.spec.action_heads.values())
        med = median(self.lifespans[-50:])
        line = (f"\rstep {done:>7} | {rate:6.1f} st/s | lives {len(self.lifespans) + 1:>4} | med life {med:>6.0f} | "
                f"hp {sense.hp:.2f} en {sense.energy:.2f} | loss {m.get('self_loss', 0):+.3f} | lr {m.get('self_lr', 0):.3f} "
                f"eff {m.get('lr_eff', 0):.1e} | H {m.get('entropy', 0):.2f}/{hmax:.2f} | td {m.get('td_error', 0):+.2f} | "
                f"rb {self.rule.rollbacks} | faults {self.rule.faults}")
        if m.get("setback"):
            line += f" | setback {m['setback']:.2f}"
        self.out.write(line)
        self.out.flush()

    def summary(self, done: int, wall: float) -> dict:
        return {
            "rule": self.rule.name, "backend": self.rule.net.name if self.rule.learns else "onnx",
            "seed": self.seed, "steps": done, "body_steps": self.body_steps,
            "wall_s": round(wall, 2), "steps_per_s": round(done / wall, 2) if wall > 0 else None,
            "lives_completed": len(self.lifespans), "median_lifespan_learning": median(self.lifespans),
            "median_lifespan_last50": median(self.lifespans[-50:]), "rollbacks": self.rule.rollbacks,
            "faults": self.rule.faults, "overrides": self.overrides.active(),
            "body": self.body_counters(), "body_this_process": self.body.counters,
        }

    def body_counters(self) -> dict:
        """The body's counters over the whole run: earlier processes (from the checkpoint) plus this one.

        Counts add up; figures that are not counts (latency percentiles) are this process's."""
        now = self.body.counters
        out = dict(now)
        for k, v in self.counters_before.items():
            if isinstance(v, int) and not isinstance(v, bool) and (k not in now or isinstance(now[k], int)):
                out[k] = v + now.get(k, 0)
        return out

    def close_run(self, summary: dict):
        if self.run_dir:
            self.save_weights()
            (self.run_dir / "summary.json").write_text(dumps(summary, indent=1))
            self._metrics_f.close()
            self._lives_f.close()
            self._metrics_f = None

