"""Configuration: dataclasses per section, loaded from TOML, validated with errors that name the field."""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (JetPack 6): the same parser from PyPI
    import tomli as tomllib


class ConfigError(ValueError):
    """A configuration problem; the message names the offending field."""


def check(cond: bool, where: str, msg: str):
    if not cond:
        raise ConfigError(f"{where}: {msg}")


@dataclass
class ModelConfig:
    preset: str = "compact"  # compact | small | large (MobileNetV3 block tables)
    width: float = 0.5  # MobileNetV3 width multiplier
    input_hw: tuple[int, int] = (24, 32)  # eye images are resized to this (H, W) before the model
    norm: str = "layer"  # layer (GroupNorm(1, C) without affine, batch-1 safe) | none
    head: str = "flatten"  # flatten keeps where things are in view; avg = MobileNetV3's global pool
    hidden: int = 128
    eye_skip: tuple[int, int] = (4, 8)  # (H, W) of a pooled raw-pixel path beside the trunk; (0, 0) = off
    loss_size: int = 8  # the region read as the model's own loss
    lr_size: int = 8  # the region read as the model's own learning rate
    thought_size: int = 112  # fed back as next step's input; the majority of the output
    thought_feedback: bool = True
    towers: str = "auto"  # auto (the rule decides) | shared | split
    sparse_init: float = 0.9
    actor_reads_critic: bool = True  # split towers: the action/thought head also reads the discomfort tower's features (detached)
    head_reads_senses: bool = True  # each tower's output layer also reads the body vector and the pooled eyes (a direct, linear path)
    thought_init: str = "zero"  # sparse | zero: the weights reading the fed-back thought start at zero
    eye_norm: bool = True  # standardise each eye pixel by its running mean and std (learned while acting, frozen in evaluation)
    # who computes the forward pass and the gradients the rule asks for: torch | ort (ONNX Runtime, from training
    # graphs made from this model; pip install -e .[ort-training]) | numpy (the survival rule and its brain by hand
    # in numpy: the learning process never imports torch; edge_runtime/numpy_learner/) | auto: numpy where it
    # computes the config (the survival rule, split towers, head = flatten: the defaults), else torch, because it is
    # about twice as fast at batch 1 (issue 21). The rule's math is the same; learner_backend() resolves auto.
    backend: str = "auto"
    ort_artifacts: str = ""  # ort: a directory from `edge-runtime export --training DIR`; empty = made at start

    def __post_init__(self):
        w = "model"
        check(self.preset in ("compact", "small", "large"), f"{w}.preset", f"must be compact|small|large, got {self.preset!r}")
        check(0.1 <= float(self.width) <= 2.0, f"{w}.width", f"must be in [0.1, 2.0], got {self.width}")
        self.input_hw = tuple(int(x) for x in self.input_hw)
        check(len(self.input_hw) == 2 and min(self.input_hw) >= 16, f"{w}.input_hw", f"must be [H, W] with both >= 16, got {list(self.input_hw)}")
        check(self.norm in ("layer", "none"), f"{w}.norm", f"must be layer|none, got {self.norm!r}")
        check(self.head in ("flatten", "avg"), f"{w}.head", f"must be flatten|avg, got {self.head!r}")
        check(self.hidden >= 8, f"{w}.hidden", "must be >= 8")
        self.eye_skip = tuple(int(x) for x in self.eye_skip)
        check(len(self.eye_skip) == 2 and min(self.eye_skip) >= 0 and (min(self.eye_skip) > 0 or max(self.eye_skip) == 0),
              f"{w}.eye_skip", f"must be [H, W] both > 0, or [0, 0] for off, got {list(self.eye_skip)}")
        check(self.loss_size >= 1, f"{w}.loss_size", "must be >= 1")
        check(self.lr_size >= 1, f"{w}.lr_size", "must be >= 1")
        check(self.thought_size >= 0, f"{w}.thought_size", "must be >= 0")
        check(self.towers in ("auto", "shared", "split"), f"{w}.towers", f"must be auto|shared|split, got {self.towers!r}")
        check(0.0 <= self.sparse_init < 1.0, f"{w}.sparse_init", "must be in [0, 1)")
        check(self.thought_init in ("sparse", "zero"), f"{w}.thought_init", f"must be sparse|zero, got {self.thought_init!r}")
        check(self.backend in ("auto", "torch", "ort", "numpy"), f"{w}.backend",
              f"must be auto|torch|ort|numpy, got {self.backend!r}")
        check(self.backend != "numpy" or self.head == "flatten", f"{w}.head",
              f"model.backend = numpy computes head = flatten, got {self.head!r}")
        check(not self.ort_artifacts or self.backend == "ort", f"{w}.ort_artifacts", "goes with model.backend = ort")


def learner_backend(model: ModelConfig, rule_name: str) -> str:
    """model.backend with `auto` resolved for a learner of rule `rule_name`: numpy where the numpy learner computes
    the config (the survival rule on split towers, head = flatten), torch elsewhere. A population learns on the
    same learner, batched (edge_runtime/population/); the frozen evaluation harness is torch's."""
    if model.backend != "auto":
        return model.backend
    numpy_computes = rule_name == "survival" and model.towers in ("auto", "split") and model.head == "flatten"
    return "numpy" if numpy_computes else "torch"


@dataclass
class RuleConfig:
    name: str = "survival"
    # shared by both rules
    lr_min: float = 0.5
    lr_max: float = 1.0
    rollback: bool = True
    rollback_every: int = 8  # K: decisions between parameter snapshots
    rollback_depth: int = 2  # snapshots kept in the RAM ring
    # seed-v1: plain SGD with the self-LR mapped into [seed_lr_min, seed_lr_max]
    seed_lr_min: float = 1e-4
    seed_lr_max: float = 1e-2
    death_lr: float = 0.05  # seed-v1's large learning rate for the negative-loss update
    # survival
    gamma: float = 0.99
    lam: float = 0.8
    alpha: float = 1.0
    kappa_policy: float = 1.0
    kappa_discomfort: float = 1.0
    forecast_gammas: tuple[float, ...] = (0.0, 0.5, 0.75, 0.9)  # extra discomfort forecasts at these horizons, in the first loss-region slots
    bound_scope: str = "block"  # tower: one ObGD bound per tower | block: one per block (trunk, fc, out) of each tower
    entropy: float = 0.01  # entropy weight (the starting value when entropy_target > 0)
    entropy_target: float = 0.3  # > 0: each action head's entropy weight adapts to keep it above this fraction of its maximum
    entropy_adapt: float = 0.01  # step of log(weight) per decision per nat below or above the target
    # a setback (lives fell far below the best it has lived, as when the world changed): the entropy target rises
    setback_entropy_target: float = 0.8  # the target at a full setback (recent lives ~0); <= entropy_target: off
    setback_lives: int = 5  # lives in the median that measures "recent" and "best"
    setback_ratio: float = 0.5  # a setback starts when the recent median life is below this fraction of the best
    setback_decay: float = 0.95  # per life, the best decays by this factor (an old best fades, and the setback ends)
    setback_forget: float = 0.1  # at each death in a setback f, both towers move f * this of the way back to their birth weights
    death_discomfort: float = 1.0
    self_lr: bool = True  # False: the learning-rate region is ignored and fixed_lr_scale used
    fixed_lr_scale: float = 1.0
    lr_head_step: float = 0.01
    max_abs_delta: float = 100.0  # an estimate's TD part |gamma*D(s') - D(s)| beyond this is a fault (runaway learning); the felt discomfort is not held to it

    def __post_init__(self):
        w = "rule"
        check(self.name in ("survival", "seed-v1"), f"{w}.name", f"unknown rule {self.name!r} (survival | seed-v1)")
        check(0 < self.lr_min <= self.lr_max, f"{w}.lr_min", "need 0 < lr_min <= lr_max")
        check(self.lr_max <= 1.0, f"{w}.lr_max", "must be <= 1 (it scales an overshoot-bounded step)")
        check(0 < self.seed_lr_min <= self.seed_lr_max, f"{w}.seed_lr_min", "need 0 < seed_lr_min <= seed_lr_max")
        check(self.death_lr > 0, f"{w}.death_lr", "must be > 0")
        check(self.rollback_every >= 1, f"{w}.rollback_every", "must be >= 1")
        check(self.rollback_depth >= 1, f"{w}.rollback_depth", "must be >= 1")
        check(0 <= self.gamma < 1, f"{w}.gamma", "must be in [0, 1)")
        check(0 <= self.lam <= 1, f"{w}.lam", "must be in [0, 1]")
        check(self.alpha > 0, f"{w}.alpha", "must be > 0")
        check(self.kappa_policy > 0 and self.kappa_discomfort > 0, f"{w}.kappa_policy", "kappas must be > 0")
        check(self.entropy >= 0, f"{w}.entropy", "must be >= 0")
        self.forecast_gammas = tuple(float(g) for g in self.forecast_gammas)
        check(all(0.0 <= g < 1.0 for g in self.forecast_gammas), f"{w}.forecast_gammas", "each must be in [0, 1)")
        check(0.0 <= self.entropy_target < 1.0, f"{w}.entropy_target", "must be in [0, 1)")
        check(self.entropy_target == 0.0 or self.entropy > 0, f"{w}.entropy", "must be > 0 when entropy_target > 0")
        check(0.0 <= self.setback_entropy_target < 1.0, f"{w}.setback_entropy_target", "must be in [0, 1)")
        check(self.setback_lives >= 1, f"{w}.setback_lives", "must be >= 1")
        check(0.0 < self.setback_ratio <= 1.0, f"{w}.setback_ratio", "must be in (0, 1]")
        check(0.0 < self.setback_decay <= 1.0, f"{w}.setback_decay", "must be in (0, 1]")
        check(0.0 <= self.setback_forget <= 1.0, f"{w}.setback_forget", "must be in [0, 1]")
        check(self.bound_scope in ("tower", "block"), f"{w}.bound_scope", f"must be tower|block, got {self.bound_scope!r}")
        check(0 < self.fixed_lr_scale <= 1.0, f"{w}.fixed_lr_scale", "must be in (0, 1]")


@dataclass
class RuntimeConfig:
    action_repeat: int = 0  # body steps per decision (ends early on a felt event); 0 = the body's own (its spec)
    event_threshold: float = 0.02  # |change| of hp/energy within a repeat that ends it early
    threads: int = 1
    metrics_every: int = 1
    progress_every_s: float = 1.0
    eval_cap: int = 5000  # body steps: lives reaching it are right-censored

    def repeat_for(self, spec) -> int:
        """Body steps per decision in this body: action_repeat, or the body's own when it is 0."""
        return self.action_repeat or spec.action_repeat

    def __post_init__(self):
        check(self.action_repeat >= 0, "runtime.action_repeat", "must be >= 1, or 0 for the body's own")
        check(self.threads >= 1, "runtime.threads", "must be >= 1")
        check(self.metrics_every >= 1, "runtime.metrics_every", "must be >= 1")
        check(self.eval_cap >= 10, "runtime.eval_cap", "must be >= 10")


@dataclass
class ServiceConfig:
    """[service]: running under systemd (the watchdog interval itself is WatchdogSec= in the unit)."""

    status_every_s: float = 5.0  # STATUS= line for `systemctl status`

    def __post_init__(self):
        check(self.status_every_s > 0, "service.status_every_s", "must be > 0")


@dataclass
class ConsoleConfig:
    """[console]: the serial debug console (`run --console DEVICE`)."""

    writable: bool = False  # commands that change the runtime (learn, lr, save, rollback, motors, revive, log)
    baud: int = 115200  # for a real UART; ignored by ptys
    stream_every_s: float = 1.0  # default period of `stream on`
    prompt: str = "edge> "

    def __post_init__(self):
        check(self.baud > 0, "console.baud", "must be > 0")
        check(self.stream_every_s >= 0.1, "console.stream_every_s", "must be >= 0.1")
        check(0 < len(self.prompt) <= 32 and self.prompt.isprintable(), "console.prompt", "must be 1..32 printable characters")


@dataclass
class ViewConfig:
    """[view]: the live view (docs/view.md). `run --view` / `--view-token` override `listen` / `token_file`."""

    listen: str = ""  # "" = off; "[HOST:]PORT" as --view (a robot's service turns the view on here)
    token_file: str = ""  # a file whose first line is the token: required for a listen address off loopback
    hz: float = 10.0  # frames per second at most, while a page is open
    max_clients: int = 4  # event streams at once
    send_timeout_s: float = 2.0  # a page that cannot take a frame this long is dropped

    def __post_init__(self):
        check(0 < self.hz <= 60, "view.hz", f"must be in (0, 60], got {self.hz}")
        check(self.max_clients >= 1, "view.max_clients", f"must be >= 1, got {self.max_clients}")
        check(self.send_timeout_s > 0, "view.send_timeout_s", f"must be > 0, got {self.send_timeout_s}")
        if self.listen:
            host, sep, port = self.listen.rpartition(":")
            check(port.isdigit() and 0 <= int(port) <= 65535, "view.listen",
                  f"expected \"[HOST:]PORT\" (e.g. \"0.0.0.0:8765\"), got {self.listen!r}")


@dataclass
class CheckpointConfig:
    """The `[checkpoint]` section."""

    enabled: bool = True
    every_s: float = 600.0  # timer: a full checkpoint this often (0 = no timer; stop and requested saves only)
    min_interval_s: float = 60.0  # wear guard: no two timer/requested saves closer than this (the stop save is exempt)
    on_stop: bool = True  # a final checkpoint on graceful stop (SIGINT/SIGTERM, end of --steps)
    dir: str = "checkpoints"  # relative to the run directory (or absolute)
    background: bool = True  # timer/requested saves are written by a thread; the loop only serialises

    def __post_init__(self):
        w = "checkpoint"
        check(self.every_s >= 0, f"{w}.every_s", f"must be >= 0 (0 = no timer), got {self.every_s}")
        check(self.min_interval_s >= 0, f"{w}.min_interval_s", f"must be >= 0, got {self.min_interval_s}")
        check(self.every_s == 0 or self.every_s >= self.min_interval_s, f"{w}.every_s",
              f"must be >= checkpoint.min_interval_s ({self.min_interval_s}), the wear budget, got {self.every_s}")
        check(bool(self.dir), f"{w}.dir", "must not be empty")


# The sections of the brain itself, typed on Config as attributes.
CORE_SECTIONS = {"model": ModelConfig, "rule": RuleConfig, "runtime": RuntimeConfig}
# The runtime's other sections; a body kind declares its own (BodyKind.section, BodyKind.config_sections).
RUNTIME_SECTIONS = {"service": ServiceConfig, "console": ConsoleConfig, "checkpoint": CheckpointConfig,
                    "view": ViewConfig}


def _is_dataclass_type(typ) -> bool:
    return isinstance(typ, type) and dataclasses.is_dataclass(typ)


def _coerce(where: str, typ, value):
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):  # Optional[X] / X | None: None stays None
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None:
            return None
        return _coerce(where, args[0], value) if len(args) == 1 else value
    if typ is bool:
        check(isinstance(value, bool), where, f"must be true/false, got {value!r}")
        return value
    if typ is int:
        check(isinstance(value, int) and not isinstance(value, bool), where, f"must be an integer, got {value!r}")
        return value
    if typ is float:
        check(isinstance(value, (int, float)) and not isinstance(value, bool), where, f"must be a number, got {value!r}")
        return float(value)
    if typ is str:
        check(isinstance(value, str), where, f"must be a string, got {value!r}")
        return value
    if typ is dict or origin is dict:
        check(isinstance(value, dict), where, f"must be a table, got {value!r}")
        return dict(value)
    if _is_dataclass_type(typ):  # a sub-table such as [mcu.virtual]
        return value if isinstance(value, typ) else build_section(typ, where, value)
    if origin is tuple:
        check(isinstance(value, (list, tuple)), where, f"must be a list, got {value!r}")
        args = typing.get_args(typ)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(f"{where}[{i}]", args[0], v) for i, v in enumerate(value))
        check(len(value) == len(args), where, f"must have {len(args)} items, got {len(value)}")
        return tuple(_coerce(f"{where}[{i}]", a, v) for i, (a, v) in enumerate(zip(args, value)))
    return value


def build_section(cls, section: str, data: dict):
    """Build dataclass `cls` from a dict, naming `section.key` on any problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"{section}: must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        if k not in names:
            raise ConfigError(f"{section}.{k}: unknown key (known: {', '.join(sorted(names))})")
        kwargs[k] = _coerce(f"{section}.{k}", hints[k], v)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{section}: {e}") from None


# [model] keys that say who computes the brain's passes, not what the brain is: a checkpoint resumes on either
# backend, and an exported brain or the ort graphs match a model whatever they say
MODEL_BACKEND_KEYS = ("backend", "ort_artifacts")


def model_architecture(model: "ModelConfig") -> dict:
    """The model config without MODEL_BACKEND_KEYS."""
    d = section_to_dict(model)
    for k in MODEL_BACKEND_KEYS:
        d.pop(k, None)
    return d


def section_to_dict(obj) -> dict:
    """A typed section back to TOML-able data (unset optional fields, None, are left out)."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if v is None:
            continue
        if dataclasses.is_dataclass(v):
            v = section_to_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, dict):
            v = dict(v)
        out[f.name] = v
    return out


@dataclass(frozen=True)
class SectionType:
    """One config section other than the core three: its name, its dataclass (imported on first use), its owner."""

    name: str
    load: Callable[[], type]
    owner: str  # "runtime" or the body kind that declares it
    always: bool = False  # kept with its defaults even when the file does not have it (a body kind's own section)


def section_types() -> dict[str, SectionType]:
    """Every non-core section the installed runtime knows: its own and those the body kinds declare."""
    from .bodies import kinds, section_loader  # (entry points: no body package is imported by name)

    out = {n: SectionType(n, (lambda c=c: c), "runtime") for n, c in RUNTIME_SECTIONS.items()}
    for k in kinds().values():
        if k.section and k.section_type:
            out[k.section] = SectionType(k.section, (lambda c=k.section_type: c), k.name, always=True)
        for name, ref in k.config_sections.items():
            out.setdefault(name, SectionType(name, section_loader(ref) if isinstance(ref, str) else (lambda c=ref: c),
                                             k.name))
    return out


@dataclass
class Config:
    """The whole runtime configuration, every section typed.

    model, rule and runtime are attributes. Every other section ([service], [console], [checkpoint], and those the
    body kinds declare: [arena], [robot], [camera], [mcu], [godot], [gym]) is an instance of the dataclass declared
    next to the code it configures, kept in `sections` by name: `cfg.section("mcu")` (or `cfg.mcu`) reads it. A
    section the file does not have reads as its defaults, or, when it has required fields, as a ConfigError that
    names it; `cfg.has(name)` says whether the file had it (a body kind is selected by the sections present).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    rule: RuleConfig = field(default_factory=RuleConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    sections: dict = field(default_factory=dict)  # name -> typed section (those given, and body kinds' own ones)

    def __post_init__(self):
        for name, st in section_types().items():
            if st.always and name not in self.sections:
                self.sections[name] = st.load()()

    def has(self, name: str) -> bool:
        return name in self.sections

    def section(self, name: str, needed_by: str = ""):
        """The typed section `name`: as given, else its defaults; ConfigError if it cannot go without values."""
        if name in self.sections:
            return self.sections[name]
        types_ = section_types()
        if name not in types_:
            raise ConfigError(f"{name}: unknown section (known: {', '.join(sorted(set(CORE_SECTIONS) | set(types_)))})")
        try:
            return build_section(types_[name].load(), name, {})
        except ConfigError as e:
            why = f" for {needed_by}" if needed_by else ""
            raise ConfigError(f"{name}: section needed{why} ({e})") from None

    def __getattr__(self, name):  # cfg.arena, cfg.mcu: a section by its name
        if name.startswith("_") or name in ("model", "rule", "runtime", "sections"):
            raise AttributeError(name)
        try:
            return self.section(name)
        except ConfigError as e:
            raise AttributeError(f"Config: {e}") from None

    def to_dict(self) -> dict:
        d = {name: section_to_dict(sec) for name, sec in self.sections.items()}
        d.update({name: section_to_dict(getattr(self, name)) for name in CORE_SECTIONS})
        return d

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "Config":
        types_ = section_types()
        parts, sections = {}, {}
        for k, v in data.items():
            if k in CORE_SECTIONS:
                parts[k] = build_section(CORE_SECTIONS[k], k, v)
            elif k in types_:
                sections[k] = build_section(types_[k].load(), k, v)  # every key and value checked now, naming section.key
            else:
                names = sorted(set(CORE_SECTIONS) | set(types_))
                raise ConfigError(f"{k}: unknown section (known: {', '.join(names)})")
        return cls(**parts, sections=sections)

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise ConfigError(f"{path}: cannot read config file ({e.strerror})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML ({e})") from None
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def replace(self, section: str, **changes) -> "Config":
        """A copy with some fields of one section changed (validated again)."""
        d = self.to_dict()
        d[section] = {**d.get(section, {}), **changes}
        return Config.from_dict(d)
