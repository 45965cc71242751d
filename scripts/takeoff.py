"""Learning-phase figures of bench run directories, from their lives.jsonl.

    python scripts/takeoff.py runs/bench-v3/survival-s1 runs/bench-v3/survival-s2 ...

Per run: training deaths, deaths per 10k learning steps, and the take-off step: the learning step
at which the median of the last 5 training lives first reaches 1000 body steps (2x the arena's
stationary baseline of 500), or "never".
"""
import json
import statistics
import sys
from pathlib import Path

WINDOW, BAR = 5, 1000


def takeoff(lives: list[dict]) -> int | None:
    for i in range(WINDOW, len(lives) + 1):
        if statistics.median(x["length"] for x in lives[i - WINDOW:i]) >= BAR:
            return lives[i - 1]["step"]
    return None


def main(paths: list[str]):
    print(f"{'run':40s} {'deaths':>6s} {'per 10k steps':>13s} {'take-off step':>13s}")
    for p in paths:
        lives = [json.loads(line) for line in (Path(p) / "lives.jsonl").read_text().splitlines() if line.strip()]
        steps = json.loads((Path(p) / "summary.json").read_text()).get("steps") or (lives[-1]["step"] if lives else 0)
        t = takeoff(lives)
        rate = 1e4 * len(lives) / steps if steps else float("nan")
        print(f"{p:40s} {len(lives):6d} {rate:13.1f} {t if t is not None else 'never':>13}")


if __name__ == "__main__":
    main(sys.argv[1:])
