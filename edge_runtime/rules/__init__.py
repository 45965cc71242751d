"""Learning rules, one file each. `survival` is the default; `seed-v1` is the seed's rule as written."""
from __future__ import annotations

from ..body import BodySpec
from ..config import ModelConfig, RuleConfig
from ..model import Brain
from ..net import make_net
from .base import Feeling, Rule
from .seed_v1 import SeedV1
from .survival import Survival

RULES: dict[str, type[Rule]] = {"survival": Survival, "seed-v1": SeedV1}


def towers_for(model_cfg: ModelConfig, rule_name: str) -> str:
    """The tower layout: model.towers, or with `auto` the one the rule needs."""
    return RULES[rule_name].towers if model_cfg.towers == "auto" else model_cfg.towers


def build(spec: BodySpec, model_cfg: ModelConfig, rule_cfg: RuleConfig, seed: int = 0) -> Rule:
    """A fresh brain with the tower layout the rule needs, and the rule driving it."""
    import torch

    cls = RULES[rule_cfg.name]
    torch.manual_seed(seed)
    brain = Brain(spec, model_cfg, towers_for(model_cfg, rule_cfg.name))
    return cls(brain, rule_cfg, seed=seed, net=make_net(brain, rule_cfg.name))


__all__ = ["RULES", "Rule", "Feeling", "build", "towers_for", "Survival", "SeedV1"]
