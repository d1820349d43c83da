"""What one attempt at an instance's head delivery leads to: the delivery settled, due again
(a retry, or a probe of a down endpoint), or dead-lettered; and the endpoint's new state
(webhooks/endpoint.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from config import Settings
from webhooks.endpoint import Endpoint
from webhooks.outbox import Attempt, Delivery


@dataclass(frozen=True)
class Schedule:
    retry_delays: tuple[float, ...]
    probe_delays: tuple[float, ...]
    hold: float

    @classmethod
    def of(cls, settings: Settings) -> Schedule:
        return cls(settings.webhook_retry_delays, settings.webhook_probe_delays, settings.webhook_hold)

    def settle(
        self,
        delivery: Delivery,
        attempt: Attempt,
        answer: str | None,
        retryable: bool,
        endpoint: Endpoint,
        now_ms: int,
    ) -> tuple[Delivery, Endpoint]:
        """The head once `attempt` is made (`answer`: the start of the receiver's answer), and the
        endpoint's state it leads to."""
        tried = delivery.attempted(attempt, answer)
        if attempt.ok:
            return tried.delivered(attempt.at), endpoint.moved("ok", now_ms)
        if not retryable:  # refused by the address guard, or an unusable URL: retrying cannot help
            return tried.dead(), endpoint
        if endpoint.state != "down" and tried.tries <= len(self.retry_delays):
            due = now_ms + round(self.retry_delays[tried.tries - 1] * 1000)
            return tried.due(due), endpoint.moved("retrying", now_ms)
        down = endpoint.moved("down", now_ms)
        assert down.since is not None
        disabled_at = down.since + round(self.hold * 1000)
        if now_ms >= disabled_at:
            return tried.dead(), down.moved("disabled", now_ms)
        probe = self.probe_delays[min(down.probes, len(self.probe_delays) - 1)]
        due = min(now_ms + round(probe * 1000), disabled_at)  # disabled on time, not at the next probe
        return tried.due(due), replace(down, probes=down.probes + 1)
