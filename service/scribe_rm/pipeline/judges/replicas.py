"""Which judge replica a call goes to. Among the replicas that are up, the one with the fewest calls in
flight (ties in turn). A replica that fails a call (connection refused, 5xx, timeout) is ejected after
`eject_after` failures in a row, for a back-off that doubles each time, and comes back only after its health
endpoint answers 200; a retry goes to another replica. With a DNS name (`dns://HOST:PORT`) the replicas are
its address records, resolved again every `discovery_interval_s`: replicas added or removed are followed
without a restart. If every replica is down, calls still go to the one whose ejection ends first, so an
outage shows as judge errors rather than a hang."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ...blocks.discovery import is_dns_name, resolve_all
from .. import metrics

log = logging.getLogger("scribe_rm.judge")


@dataclass
class Replica:
    url: str
    up: bool = True
    inflight: int = 0
    failures: int = 0  # in a row
    backoff_s: float = 0.0
    ejected_until: float = 0.0


@dataclass(frozen=True)
class PoolConfig:
    eject_after: int = 1  # failures in a row that eject a replica
    eject_base_s: float = 2.0  # the first back-off; doubled on each ejection until a health check passes
    eject_max_s: float = 60.0
    discovery_interval_s: float = 10.0
    nameservers: tuple[str, ...] = ()  # DNS servers for discovery names ('IP[:PORT]'); empty: the system's


class ReplicaPool:
    def __init__(self, specs: tuple[str, ...], config: PoolConfig):
        self.specs = specs  # base URLs and/or dns://HOST:PORT names
        self.config = config
        self.replicas: dict[str, Replica] = {url.rstrip("/"): Replica(url.rstrip("/")) for url in specs
                                             if not is_dns_name(url)}
        self._turn = 0

    @property
    def discovers(self) -> bool:
        return any(is_dns_name(spec) for spec in self.specs)

    def pick(self, avoid: set[str] = frozenset()) -> Replica:
        """The replica for the next attempt, avoiding `avoid` (those this call already failed on) if it can."""
        if not self.replicas:
            raise LookupError(f"no judge replica: {', '.join(self.specs)} resolved to no address")
        candidates = [r for r in self.replicas.values() if r.up and r.url not in avoid] or \
                     [r for r in self.replicas.values() if r.up]
        if not candidates:  # all down: the one back soonest, so that the outage shows as errors, not a hang
            return min(self.replicas.values(), key=lambda r: r.ejected_until)
        self._turn += 1
        least = min(r.inflight for r in candidates)
        tied = [r for r in candidates if r.inflight == least]
        return tied[self._turn % len(tied)]

    def started(self, replica: Replica, first_attempt: bool) -> None:
        replica.inflight += 1
        metrics.JUDGE_REPLICA_INFLIGHT.labels(replica.url).set(replica.inflight)
        if first_attempt:
            metrics.JUDGE_REPLICA_FIRST_ATTEMPTS.labels(replica.url).inc()

    def finished(self, replica: Replica, failure: str | None = None) -> None:
        """After a call: `failure` names the kind (connection, 5xx, timeout) when it failed for the replica."""
        replica.inflight -= 1
        metrics.JUDGE_REPLICA_INFLIGHT.labels(replica.url).set(replica.inflight)
        if failure is None:
            replica.failures = 0
            return
        metrics.JUDGE_REPLICA_ERRORS.labels(replica.url, failure).inc()
        replica.failures += 1
        if replica.up and replica.failures >= self.config.eject_after:
            self._eject(replica, f"{replica.failures} failed call(s), the last: {failure}")

    def _eject(self, replica: Replica, why: str) -> None:
        c = self.config
        replica.up = False
        replica.backoff_s = min(c.eject_max_s, replica.backoff_s * 2 if replica.backoff_s else c.eject_base_s)
        replica.ejected_until = time.monotonic() + replica.backoff_s
        metrics.JUDGE_REPLICA_EJECTIONS.labels(replica.url).inc()
        metrics.JUDGE_REPLICA_UP.labels(replica.url).set(0)
        log.warning("judge replica %s ejected for %.0fs: %s", replica.url, replica.backoff_s, why)

    def _admit(self, replica: Replica) -> None:
        replica.up, replica.failures, replica.backoff_s = True, 0, 0.0
        metrics.JUDGE_REPLICA_UP.labels(replica.url).set(1)
        log.info("judge replica %s re-admitted after a passing health check", replica.url)

    async def maintain(self, healthy: Callable[[str], Awaitable[bool]], tick_s: float = 0.5) -> None:
        """Forever: health-check ejected replicas whose back-off has passed; follow the discovery names."""
        next_discovery = 0.0
        while True:
            now = time.monotonic()
            if self.discovers and now >= next_discovery:
                await self.discover()
                next_discovery = now + self.config.discovery_interval_s
            due = [r for r in self.replicas.values() if not r.up and r.ejected_until <= now]
            for replica, ok in zip(due, await asyncio.gather(*(healthy(r.url) for r in due))):
                if ok:
                    self._admit(replica)
                else:
                    self._eject(replica, "its health check failed")
            await asyncio.sleep(tick_s)

    async def discover(self) -> None:
        """Resolve the specs again: new addresses join (up), vanished ones leave (their calls finish)."""
        try:
            urls = await resolve_all(list(self.specs), self.config.nameservers)
        except Exception as exc:  # keep the replicas known so far
            log.warning("judge discovery failed, keeping %d replica(s): %s", len(self.replicas), exc)
            return
        if not urls and self.replicas:
            log.warning("judge discovery found no address; keeping %d replica(s)", len(self.replicas))
            return
        for url in urls:
            if url not in self.replicas:
                self.replicas[url] = Replica(url)
                metrics.JUDGE_REPLICA_UP.labels(url).set(1)
                log.info("judge replica %s discovered", url)
        for url in [u for u in self.replicas if u not in urls]:
            del self.replicas[url]
            metrics.JUDGE_REPLICA_UP.labels(url).set(0)
            log.info("judge replica %s left", url)
