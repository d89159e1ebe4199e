"""The built wheel in a fresh virtualenv, outside the checkout: it finds its own cards and data, and an install
from the runtime lock resolves to exactly the lock's versions."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.model


def lock_pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture
def venv(tmp_path):
    """A fresh virtualenv, removed as soon as the test ends: with torch it holds over a gigabyte, and pytest keeps
    every test's tmp_path until the session ends (CI machines' disks can be small)."""
    run(sys.executable, "-m", "venv", tmp_path / "venv", cwd=tmp_path)
    yield tmp_path / "venv"
    shutil.rmtree(tmp_path / "venv", ignore_errors=True)


def test_the_wheel_outside_the_checkout_uses_its_packaged_cards_and_data(tmp_path, venv):
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", REPO, "-w", tmp_path / "dist", cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("scribe_rm-*.whl")
    bin_dir = venv / "bin"
    run(bin_dir / "pip", "install", "-q", "--no-cache-dir", "-r", REPO / "requirements" / "service.lock", wheel, cwd=tmp_path)

    freeze = run(bin_dir / "pip", "freeze", "--exclude", "scribe-rm", cwd=tmp_path).stdout
    assert lock_pins_from_freeze(freeze) == lock_pins(REPO / "requirements" / "service.lock")

    cards = len(list((REPO / "prototypes").rglob("*.yaml")))
    validated = run(bin_dir / "scribe-rm", "cards", "validate", cwd=tmp_path).stdout
    assert f"{cards} valid cards" in validated and "0 invalid" in validated
    where = run(bin_dir / "python", "-c", "from scribe_rm.blocks import resources as r; "
                "print(r.shipped_cards_dir()); print(r.heldout_set('routing_heldout.jsonl'))", cwd=tmp_path).stdout
    assert str(REPO) not in where and where.count(str(venv)) == 2
    run(bin_dir / "scribe-rm", "eval", "routing", "--json-out", tmp_path / "routing.json", cwd=tmp_path)
    report = json.loads((tmp_path / "routing.json").read_text())
    assert report["n"] == 144 and report["top1"] >= 0.85


def lock_pins_from_freeze(freeze: str) -> dict[str, str]:
    return {name.lower().replace("_", "-"): version
            for name, _, version in (line.partition("==") for line in freeze.splitlines() if "==" in line)}
