"""`edge-runtime export`: the frozen brain as one ONNX model (--out), or the ort backend's training graphs
(--training)."""
from __future__ import annotations

from .cli_common import UsageError, load_config
from .jsonout import dumps


def cmd_export(args) -> int:
    from .evaluate import PolicyError

    if bool(args.out) == bool(args.training):
        raise UsageError("export: give --out brain.onnx (the frozen brain) or --training DIR (the ort backend's "
                         "graphs), one of the two")
    if args.out and not args.src:
        raise UsageError("export --out: which brain? give RUN_DIR or a weights file")
    if args.training:
        return _export_training(args)
    try:
        from .export_onnx import export
    except ImportError as e:
        raise UsageError(f"export needs torch and onnx (pip install -e '.[torch,onnx]'): {e}") from None
    try:
        res = export(args.src, args.out)
    except PolicyError as e:
        raise UsageError(str(e)) from None
    print(dumps(res) if args.json else f"{res['out']}: {res['bytes']} bytes, {res['params']} parameters, opset "
          f"{res['opset']}; inputs {', '.join(res['inputs'])}; outputs {', '.join(res['outputs'])}")
    return 0


def _export_training(args) -> int:
    """`export --training DIR`: the graphs for this brain's architecture (weights are graph inputs, so any
    weights of that architecture learn with them)."""
    from .evaluate import PolicyError
    from .ort_net import OrtUnavailable, ort_training

    try:
        ort_training()
    except OrtUnavailable as e:
        raise UsageError(str(e)) from None
    from .ort_graphs import write_graphs

    if args.src:
        if args.body or args.config or args.set:
            raise UsageError("export --training RUN_DIR: the model comes from the run; --body, --config and --set "
                             "go with --training alone")
        from .export_onnx import read_brain

        try:
            brain = read_brain(args.src)[2].rule.brain
        except PolicyError as e:
            raise UsageError(str(e)) from None
    else:
        from .bench import probe_body
        from .model import Brain
        from .rules import towers_for

        cfg = load_config(args)
        spec = probe_body(cfg, args.body or "arena")
        brain = Brain(spec, cfg.model, towers_for(cfg.model, cfg.rule.name))
    if brain.towers != "split":
        raise UsageError(f"export --training: model.backend = ort runs split towers (the survival rule); this model "
                         f"has {brain.towers} towers")
    res = write_graphs(brain, args.training)
    print(dumps(res) if args.json else f"{res['dir']}: {', '.join(res['graphs'])} for {res['params']} parameters "
          f"(onnxruntime {res['onnxruntime']}); learn with --set model.backend=ort --set "
          f"model.ort_artifacts={res['dir']}")
    return 0
