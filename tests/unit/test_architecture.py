"""The import-linter contracts in pyproject.toml hold: no service imports another, shared/ imports no service."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_contracts_are_declared():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    independence = next(c for c in contracts if c["type"] == "independence")
    assert set(independence["modules"]) == {f"services.{s}" for s in ("registration", "comments", "notifications")}
    assert any(c["type"] == "forbidden" and c["source_modules"] == ["shared"] and "services" in c["forbidden_modules"]
               for c in contracts)


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ", 0 broken" in result.stdout, result.stdout
