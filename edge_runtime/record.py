"""`--record FILE.rrd`: every decision's eyes, body and output regions as a rerun recording.

Open it with the rerun viewer (`pip install rerun-sdk`, then `rerun FILE.rrd`), the tool LeRobot users already
have, to replay a life frame by frame. Entities (timelines `step`, the learning step, and `body_step`):

    eyes/left, eyes/right   Image, RGB at the size the brain sees
    body                    Scalars, one series each: hp, energy, touch0..
    heads/<head>            Scalars, one series per action: the head's probabilities
    regions/loss, regions/lr  Scalars, one series per value: the loss and learning-rate regions as output
    regions/thought         Image, 1 x thought size, grey: the thought as fed back (tanh; -1 black, +1 white)
    metrics/<name>          Scalars: self_loss, self_lr, lr_eff, entropy, entropy_w, td_error, discomfort, setback
                            (as in metrics.jsonl)
    lives/lifespan          Scalars at each death (body steps), with a TextLog `lives/event`

The rerun SDK encodes and writes in threads of its own; the loop's cost per decision is measured by
`edge-runtime bench view` (mode `record`).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .acting import body_vector, eyes_at
from .hooks import Hook
from .runtime import RULE_METRICS

log = logging.getLogger("edge_runtime.record")


class RecordError(ValueError):
    pass


class RecordHook(Hook):
    """Buffers each decision in numpy arrays and hands rerun `batch` decisions at a time (send_columns): one
    call per entity per batch instead of one per entity per decision keeps the loop's cost small."""

    def __init__(self, path: str | Path, hw: tuple[int, int], batch: int = 64, application: str = "edge-runtime"):
        self.path = Path(path)
        if self.path.suffix != ".rrd":
            raise RecordError(f"--record {path}: a rerun recording is a .rrd file")
        if not self.path.parent.is_dir():
            raise RecordError(f"--record {path}: no such directory {self.path.parent}")
        try:
            import rerun as rr
        except ImportError:
            raise RecordError("--record needs the rerun SDK: pip install -e '.[record]'") from None
        self.rr = rr
        self.hw = (int(hw[0]), int(hw[1]))
        self.batch = batch
        self.rec = rr.RecordingStream(application)
        try:
            self.rec.save(str(self.path))
        except Exception as e:  # (rerun raises its own types for an unwritable path)
            raise RecordError(f"--record {path}: cannot write ({e})") from None
        self.rows: list[dict] = []
        self.logged = 0
        self._declared = False

    def on_start(self, runner):
        log.info("recording every decision to %s (open it with `rerun %s`)", self.path, self.path)

    def on_step(self, runner, sense, metrics):
        left, right = eyes_at(sense, self.hw)
        regions = runner.rule.regions_now()
        self.rows.append({
            "step": runner.rule.steps, "body_step": runner.body_steps, "left": np.array(left, np.uint8),
            "right": np.array(right, np.uint8), "body": body_vector(sense, runner.body.spec.touch_channels),
            "regions": regions, "metrics": {k: float(metrics[k]) for k in RULE_METRICS if k in metrics}})
        if len(self.rows) >= self.batch:
            self._send(runner)

    def on_death(self, runner, lifespan):
        self._send(runner)  # (what led to the death is in the file before the death is)
        self.rec.set_time("step", sequence=runner.rule.steps)
        self.rec.set_time("body_step", sequence=runner.body_steps)
        self.rec.log("lives/lifespan", self.rr.Scalars(float(lifespan)))
        self.rec.log("lives/event", self.rr.TextLog(f"life {len(runner.lifespans)} ended after {lifespan} body steps"))

    def on_stop(self, runner, summary):
        self._send(runner)
        self.rec.flush()
        self.rec.disconnect()
        log.info("recording: %d decisions in %s", self.logged, self.path)

    def _declare(self, runner, row):
        """What does not change: image formats and the names of each series."""
        rr, rec = self.rr, self.rec
        h, w = self.hw
        for eye in ("left", "right"):
            rec.log(f"eyes/{eye}", rr.Image.from_fields(format=rr.components.ImageFormat(
                width=w, height=h, color_model="RGB", channel_datatype="U8")), static=True)
        spec = runner.body.spec
        rec.log("body", rr.SeriesLines(names=["hp", "energy"] + [f"touch{j}" for j in range(spec.touch_channels)]),
                static=True)
        if row["regions"] is not None:
            for head, p in row["regions"]["heads"].items():
                rec.log(f"heads/{head}", rr.SeriesLines(names=[f"{head} {i}" for i in range(len(p))]), static=True)
            n = len(row["regions"]["thought"])
            if n:
                rec.log("regions/thought", rr.Image.from_fields(format=rr.components.ImageFormat(
                    width=n, height=1, color_model="L", channel_datatype="U8")), static=True)
        self._declared = True

    def _send(self, runner):
        rows, self.rows = self.rows, []
        if not rows:
            return
        rr, rec = self.rr, self.rec
        if not self._declared:
            self._declare(runner, rows[0])
        n = len(rows)
        idx = [rr.TimeColumn("step", sequence=[r["step"] for r in rows]),
               rr.TimeColumn("body_step", sequence=[r["body_step"] for r in rows])]

        def series(path, values: np.ndarray):  # (n, k): k series, one row per decision
            rec.send_columns(path, indexes=idx, columns=rr.Scalars.columns(
                scalars=values.reshape(-1).astype(np.float64)).partition([values.shape[1]] * n))

        for eye in ("left", "right"):
            rec.send_columns(f"eyes/{eye}", indexes=idx,
                             columns=rr.Image.columns(buffer=np.stack([r[eye] for r in rows]).reshape(n, -1)))
        series("body", np.stack([r["body"] for r in rows]))
        with_regions = [r for r in rows if r["regions"] is not None]
        if len(with_regions) == n:
            for head in rows[0]["regions"]["heads"]:
                series(f"heads/{head}", np.array([r["regions"]["heads"][head] for r in rows]))
            for reg in ("loss", "lr"):
                if rows[0]["regions"][reg]:
                    series(f"regions/{reg}", np.array([r["regions"][reg] for r in rows]))
            th = np.array([r["regions"]["thought"] for r in rows])
            if th.size:
                grey = np.clip(np.rint((th + 1.0) * 127.5), 0, 255).astype(np.uint8)  # -1 black, +1 white
                rec.send_columns("regions/thought", indexes=idx, columns=rr.Image.columns(buffer=grey))
        for k in RULE_METRICS:
            vals = [r["metrics"].get(k, np.nan) for r in rows]
            if not all(np.isnan(vals)):
                series(f"metrics/{k}", np.array(vals)[:, None])
        self.logged += n
