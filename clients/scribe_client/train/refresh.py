"""Refresh the skill library during training: every N steps, draft cards from the service's coverage gaps
(`scribe-rm library induce --from-gaps`), accept them if asked (review is the default), reload the service,
tell the client to score with the new version from the next step on, and mark the refresh in the dynamics
log. Needs the `scribe-rm` command (the service package) where the trainer runs, write access to the
service's library directory, and the service's admin key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import httpx
from transformers import TrainerCallback

from .dynamics import DynamicsLog


class LibraryRefresh(TrainerCallback):
    def __init__(self, service_url: str, every: int, out_dir: Path, domain: str, log: DynamicsLog,
                 library_dir: Optional[Path] = None, auto_accept: bool = False, admin_key: Optional[str] = None,
                 api_key: Optional[str] = None, command: Sequence[str] = (sys.executable, "-m", "scribe_rm.cli"),
                 gaps_domain: str = "none", client: Optional[Any] = None):
        self.service_url = service_url.rstrip("/")
        self.every = every
        self.out_dir = out_dir
        self.domain = domain
        self.log = log
        self.library_dir = library_dir
        self.auto_accept = auto_accept
        self.admin_key = admin_key
        self.api_key = api_key
        self.command = list(command)  # the service's CLI (`scribe-rm`), by default from this interpreter
        self.gaps_domain = gaps_domain  # the trainer's items carry no domain unless its reward sets one
        self.client = client  # the reward's client: it takes the new version at the next step boundary

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.log.library_version = self._version()  # records name the version they were scored with

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step > 0 and state.global_step % self.every == 0:
            self.refresh(state.global_step)

    def _run(self, *arguments: str) -> subprocess.CompletedProcess:
        done = subprocess.run([*self.command, *arguments], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"scribe-rm {arguments[0]} {arguments[1]} failed: {done.stdout[-800:]}{done.stderr[-800:]}")
        return done

    def refresh(self, step: int) -> Dict[str, Any]:
        out = self.out_dir / f"refresh-{step:05d}"
        key = ["--api-key", self.api_key] if self.api_key else []
        self._run("library", "induce", "--from-gaps", self.service_url, "--domain", self.domain,
                  "--gaps-domain", self.gaps_domain, "--out", str(out), *key)
        report = out / "induction.json"
        proposals: List[Dict[str, Any]] = json.loads(report.read_text())["proposals"] if report.exists() else []
        ids = [p["card_id"] for p in proposals if p["action"] in ("card", "patch")]
        accepted: List[str] = []
        version = self._version()
        if self.auto_accept and ids:
            library = ["--library", str(self.library_dir)] if self.library_dir else []
            self._run("library", "accept", *ids, "--drafts", str(out), *library)
            accepted = ids
            headers = {"Authorization": f"Bearer {self.admin_key}"} if self.admin_key else {}
            response = httpx.post(f"{self.service_url}/admin/library/reload", headers=headers, timeout=600)
            response.raise_for_status()
            version = response.json()["library_version"]
            if self.client is not None:
                self.client.set_next_version(version)
        event = {"step": step, "library_version": version, "drafts": ids, "accepted": accepted, "out": str(out)}
        self.log.mark_refresh(event)
        return event

    def _version(self) -> str:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.get(f"{self.service_url}/prototypes", headers=headers, timeout=60).json()["library_version"]
