"""The import graph is the folder map: the brain knows no body, and the bodies know only the brain's contract.

Bodies are found by name through entry points (edge_runtime/bodies.py, pyproject.toml), never imported by the
brain's package. Checked on the source (every import statement, at any depth, including those inside functions).
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge_runtime", "sim_bridge", "hardware", "calibration")


def top_imports(src: str) -> set[str]:
    """The top-level packages of this repository that a source imports (absolute imports, at any depth)."""
    found = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


def imports_of(package: str) -> dict[str, set[str]]:
    return {str(f.relative_to(ROOT)): top_imports(f.read_text()) for f in sorted((ROOT / package).rglob("*.py"))}


def test_the_brain_imports_no_body_package():
    bad = {f: sorted(m - {"edge_runtime"}) for f, m in imports_of("edge_runtime").items() if m - {"edge_runtime"}}
    assert bad == {}


@pytest.mark.parametrize("body,other", [("sim_bridge", "hardware"), ("hardware", "sim_bridge")])
def test_bodies_do_not_import_each_other(body, other):
    assert {f: m for f, m in imports_of(body).items() if other in m} == {}


def test_calibration_builds_on_the_bodies_never_the_reverse():
    """calibration/ makes stereo.toml with the cameras (hardware/); the camera reads the file with its own code
    (hardware/stereo_calibration.py), so a robot runs without the calibration tools."""
    for pkg in ("edge_runtime", "sim_bridge", "hardware"):
        assert {f: m for f, m in imports_of(pkg).items() if "calibration" in m} == {}


def test_the_check_sees_imports_inside_functions():
    src = "import os\ndef f():\n    from sim_bridge.arena import Arena\n    import hardware.robot\n    from . import x\n"
    assert top_imports(src) == {"sim_bridge", "hardware"}


def test_the_core_imports_and_configures_without_opencv():
    """A board keeps its vendor OpenCV (or none, for an act-only box): the brain, its config and the CLI import
    without cv2; only resizing eyes and the cameras need it."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['cv2'] = None\n"
            "import edge_runtime.cli, edge_runtime.runtime, edge_runtime.checkpoint, edge_runtime.console\n"
            "from edge_runtime.config import Config; Config.from_dict({'arena': {'eye_w': 32}})\n"
            "assert 'cv2' not in sys.modules or sys.modules['cv2'] is None\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr


MODULE_LINES = 460  # "no module over ~450 lines": one job per module
ONE_FILE_PER_RULE = "edge_runtime/rules/"  # a learning rule stays one file, readable top to bottom, however long


def test_one_job_per_module_no_module_over_the_size_bar():
    sizes = {str(f.relative_to(ROOT)): len(f.read_text().splitlines())
             for p in PACKAGES for f in (ROOT / p).rglob("*.py")}
    assert len(sizes) > 40  # the walk found the packages
    big = {f: n for f, n in sizes.items() if n > MODULE_LINES and not f.startswith(ONE_FILE_PER_RULE)}
    assert big == {}


def test_rules_run_the_brain_only_through_their_net():
    """One rule, every backend (edge_runtime/net.py): a rule that called the brain or torch's autograd itself would
    silently bypass model.backend = ort. Checked on the syntax tree (docstrings may name them)."""
    bad = []
    for f in sorted((ROOT / "edge_runtime" / "rules").glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call):
                fn = ast.unparse(node.func)
                if fn in ("self.brain", "brain") or "autograd" in fn:
                    bad.append(f"{f.name}:{node.lineno}: {fn}(...)")
    assert bad == []
