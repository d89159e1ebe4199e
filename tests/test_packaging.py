"""The built wheel in a fresh virtualenv, outside the checkout: it finds its own cards and data, and an install
from the runtime lock resolves to exactly the lock's versions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.model
UNSAFE = ("pip", "setuptools", "wheel")  # pip-compile leaves these out of a lock unless asked (as pip freeze does)


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
    """A fresh virtualenv that sees the project's installed dependencies (set up from the same lock) behind its
    own site-packages, instead of a second copy of them: with torch that copy is several gigabytes, and CI
    machines' disks can be small (a run once failed here with 'No space left on device')."""
    run(sys.executable, "-m", "venv", tmp_path / "venv", cwd=tmp_path)
    (site_packages,) = (tmp_path / "venv" / "lib").glob("python*/site-packages")
    (site_packages / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return tmp_path / "venv"


def test_the_wheel_outside_the_checkout_uses_its_packaged_cards_and_data(tmp_path, venv):
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", REPO, "-w", tmp_path / "dist", cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("scribe_rm-*.whl")
    bin_dir = venv / "bin"
    # what an install of the wheel from the runtime lock resolves to, from nothing: exactly the lock
    run(bin_dir / "pip", "install", "-q", "--dry-run", "--ignore-installed", "--report", tmp_path / "plan.json",
        "-r", REPO / "requirements" / "service.lock", wheel, cwd=tmp_path)
    plan = json.loads((tmp_path / "plan.json").read_text())["install"]
    resolved = {entry["metadata"]["name"].lower().replace("_", "-"): entry["metadata"]["version"] for entry in plan}
    assert resolved.pop("scribe-rm") == "0.1.0"
    for unpinned in UNSAFE:
        resolved.pop(unpinned, None)
    assert resolved == lock_pins(REPO / "requirements" / "service.lock")

    run(bin_dir / "pip", "install", "-q", "--no-deps", wheel, cwd=tmp_path)
    cards = len(list((REPO / "prototypes").rglob("*.yaml")))
    validated = run(bin_dir / "scribe-rm", "cards", "validate", cwd=tmp_path).stdout
    assert f"{cards} valid cards" in validated and "0 invalid" in validated
    where = run(bin_dir / "python", "-c", "import scribe_rm; from scribe_rm.blocks import resources as r; "
                "print(scribe_rm.__file__); print(r.shipped_cards_dir()); "
                "print(r.heldout_set('routing_heldout.jsonl'))", cwd=tmp_path).stdout
    assert str(REPO) not in where and where.count(str(venv)) == 3  # the wheel's code, cards and data
    run(bin_dir / "scribe-rm", "eval", "routing", "--json-out", tmp_path / "routing.json", cwd=tmp_path)
    report = json.loads((tmp_path / "routing.json").read_text())
    assert report["n"] == 144 and report["top1"] >= 0.85

