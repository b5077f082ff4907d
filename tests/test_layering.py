"""The layering the architecture promises: `raft` stands alone, and its core needs
no event loop."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _imported_modules(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_raft_imports_nothing_from_the_layers_above():
    for path in sorted((ROOT / "raft").rglob("*.py")):
        above = _imported_modules(path) & {"coordinator", "cli", "simulations"}
        assert not above, f"{path.relative_to(ROOT)} imports {sorted(above)}"


def test_coordinator_does_not_import_cli_or_simulations():
    for path in sorted((ROOT / "coordinator").rglob("*.py")):
        above = _imported_modules(path) & {"cli", "simulations"}
        assert not above, f"{path.relative_to(ROOT)} imports {sorted(above)}"


def test_importing_the_raft_core_starts_no_event_loop_library():
    code = "import sys, raft, raft.node, raft.disk_storage; print('trio' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
