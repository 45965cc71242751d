"""The Godot arena (sim_bridge/godot_arena/main.gd, GDScript) keeps the built-in arena's rules (sim_bridge/arena.py).

Both worlds are driven by the same seeded random policy, step by step, and every step's change of energy and HP
is checked against one statement of the rules, with the constants of `ArenaConfig()`:

    energy <- min(1, energy + food_energy)            once per food eaten this step
    energy <- max(0, energy - energy_drain * (1 + drive_cost if the robot drove else 1))
    hp     <- hp - hazard_damage * new hazard contacts - collision_damage * bumps while driving
    hp     <- hp - starve_rate                        if energy == 0
              min(1, hp + regen_rate)                 elif energy > regen_above
    hp     <- max(0, hp); dead  <=>  hp == 0;  a new life starts at hp = energy = 1

The events (food, hazard contacts, bumps) are each world's own per-life counters. Tolerances: 1e-9 for the
built-in arena (float64 throughout); 1e-5 for Godot, whose HP and energy reach us as JSON text (Godot 3 prints
floats with 6 significant digits, so a reading can be off by 5e-7 before a step adds its own rounding). Each
world must show every term at least once (driving and standing, food, a hazard, a bump, starving, regenerating,
a death and a new life), or the test fails as not having checked that term.
"""
import random
import shutil

import pytest

from sim_bridge.arena import Arena, ArenaConfig

RULES = ArenaConfig()
TERMS = ("drive", "still", "food", "hazard", "bump", "starve", "regen", "death", "new_life")
EVENTS = ("food", "hazard_hits", "bumps")


def expected(hp, energy, drove, food, hits, bumps):
    c = RULES
    for _ in range(food):
        energy = min(1.0, energy + c.food_energy)
    energy = max(0.0, energy - c.energy_drain * (1.0 + (c.drive_cost if drove else 0.0)))
    hp = hp - c.hazard_damage * hits - c.collision_damage * bumps
    starving = energy <= 0.0
    if starving:
        hp -= c.starve_rate
    elif energy > c.regen_above:
        hp = min(1.0, hp + c.regen_rate)
    return max(0.0, hp), energy, starving


def check_rules(step, tol: float, seen: set, where: str) -> int:
    """step(action) -> (hp, energy, dead, events); drives the world for a while and checks every transition."""
    rng = random.Random(7)
    hp, energy, dead, ev = step(None)
    n = lives = 0
    while n < 6000 and not seen.issuperset(TERMS):
        if lives % 2:  # every other life stands still, and starves unless a drifting hazard comes first
            action = {"drive": 1, "turn": 1}
        else:
            action = {"drive": rng.choice((0, 1, 2, 2, 2)), "turn": rng.choice((0, 1, 2))}
        lives += dead
        hp2, e2, dead2, ev2 = step(action)
        n += 1
        if dead:  # the step after a death starts a new life
            assert (hp2, e2, dead2) == (1.0, 1.0, False), f"{where} step {n}: a new life starts at hp {hp2}, energy {e2}"
            seen.add("new_life")
        else:
            d = {k: ev2[k] - ev[k] for k in EVENTS}
            assert min(d.values()) >= 0, f"{where} step {n}: a per-life counter went back: {ev} -> {ev2}"
            drove = action["drive"] != 1
            want_hp, want_e, starving = expected(hp, energy, drove, d["food"], d["hazard_hits"], d["bumps"])
            assert abs(e2 - want_e) <= tol, f"{where} step {n}: energy {energy} -> {e2}, rules say {want_e} ({d})"
            assert abs(hp2 - want_hp) <= tol, f"{where} step {n}: hp {hp} -> {hp2}, rules say {want_hp} ({d})"
            assert dead2 == (hp2 <= 0.0), f"{where} step {n}: dead={dead2} at hp {hp2}"  # death is hp == 0 exactly
            seen.update(t for t, on in (("drive", drove), ("still", not drove), ("food", d["food"]),
                                        ("hazard", d["hazard_hits"]), ("bump", d["bumps"]), ("starve", starving),
                                        ("regen", not starving and want_e > RULES.regen_above and hp < 1.0 and hp2 > hp),
                                        ("death", dead2)) if on)
        hp, energy, dead, ev = hp2, e2, dead2, ev2
    assert seen.issuperset(TERMS), f"{where}: after {n} steps these rules were never exercised: {set(TERMS) - seen}"
    return n


def stepper(body, events):
    """step(action) over a body: None resets the world, a step after a death respawns the robot."""
    state = {}

    def step(action):
        if action is None:
            s = body.reset(seed=3)
        elif state["dead"]:
            s = body.respawn()
        else:
            s = body.act(action)
        state["dead"] = s.dead
        return s.hp, s.energy, s.dead, events(s)
    return step


def test_the_built_in_arena_keeps_the_stated_rules():
    arena = Arena(ArenaConfig())
    check_rules(stepper(arena, lambda s: arena.counters), 1e-9, set(), "arena")


@pytest.mark.skipif(not (shutil.which("godot3-runner") and shutil.which("xvfb-run")),
                    reason="needs godot3-runner and xvfb-run (apt-get install godot3-runner xvfb; scripts/test does)")
def test_the_godot_arena_keeps_the_same_rules():
    from sim_bridge.godot_body import GodotBody, GodotOptions

    with GodotBody.launch(GodotOptions(port=0, seed=3, eye_w=16, eye_h=12, connect_timeout=60)) as body:
        check_rules(stepper(body, lambda s: {k: int(s.extra[k]) for k in EVENTS}), 1e-5, set(), "godot")
