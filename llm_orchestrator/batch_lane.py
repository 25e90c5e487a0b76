"""BatchLane: non-urgent requests through the provider's own batch API, at its batch price.

Batch jobs trade latency (minutes to 24 hours) for a discount (50 % at all three providers in
``pricing.yaml``). The lane is two calls and no waiting: :meth:`BatchLane.submit` hands the items
to the provider and returns its batch id; :meth:`BatchLane.collect` returns ``None`` while the
job runs and, once it has finished, every item's outcome — recording one ledger row per answered
item, priced at the batch rate. Polling (e.g. a periodic worker task) is the caller's business;
nothing here sleeps or imports Celery.

Example:
    >>> lane = BatchLane(LLMOrchestrator.from_yaml())
    >>> batch_id = lane.submit([BatchItem("s-1", [Message("user", "Classify: ...")])])
    >>> results = lane.collect(batch_id, job_id="nightly-42")   # None until the job has finished
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from llm_orchestrator.exceptions import ProviderError
from llm_orchestrator.providers.base import BatchItem, BatchStatus, LLMResponse

if TYPE_CHECKING:
    from llm_orchestrator.orchestrator import LLMOrchestrator

log = logging.getLogger(__name__)

BatchResults = dict[str, LLMResponse | ProviderError]


class BatchLane:
    """Submit and collect provider batch jobs for one orchestrator's provider.

    Batch calls bypass the orchestrator's retry layer, fallback chain, breaker and rate limiter:
    the provider queues the work itself, and a failed item is returned, not retried (submit it
    again, e.g. live, if it matters).

    Args:
        orchestrator: supplies the provider adapter, the default model (``active_model``) and the
            cost tracker (when cost tracking is disabled, nothing is recorded and ``cost_usd``
            stays ``None``).
    """

    def __init__(self, orchestrator: LLMOrchestrator) -> None:
        self.orchestrator = orchestrator

    @property
    def provider(self) -> str:
        return self.orchestrator.provider

    def submit(self, items: list[BatchItem], model: str | None = None) -> str:
        """Send ``items`` as one batch job.

        Args:
            items: the requests; each ``custom_id`` must be unique within the batch.
            model: the model for every item (default: the configured ``active_model``).

        Returns:
            The provider's batch id; keep it to call :meth:`collect`.

        Raises:
            ValueError: no items, or a repeated ``custom_id``.
            ProviderError: the provider refused the job (a subclass saying why).
        """
        ids = [item.custom_id for item in items]
        if not ids or len(set(ids)) != len(ids):
            raise ValueError("a batch needs at least one item and unique custom_ids")
        model = model or self.orchestrator.config.active_model
        batch_id = self.orchestrator.adapter.submit_batch(items, model)
        log.info(
            "submitted batch",
            extra={"provider": self.provider, "model": model, "batch_id": batch_id, "items": len(items)},
        )
        return batch_id

    def status(self, batch_id: str) -> BatchStatus:
        """The job's state (``running``, ``done``, ``failed``, ``cancelled``, ``expired``) and counts.

        Raises:
            BatchNotFoundError: the provider does not know ``batch_id``.
            ProviderError: the status call failed.
        """
        return self.orchestrator.adapter.batch_status(batch_id)

    def cancel(self, batch_id: str) -> None:
        """Ask the provider to cancel the job; items it already answered are still collected.

        Raises:
            BatchNotFoundError: the provider does not know ``batch_id``.
            ProviderError: the cancel call failed.
        """
        self.orchestrator.adapter.cancel_batch(batch_id)

    def collect(self, batch_id: str, job_id: str | None = None, tenant: str | None = None) -> BatchResults | None:
        """The job's results once it has finished, with every answered item billed once.

        Safe to call repeatedly (a polling task may run twice): each answered item is recorded
        under ``job_id = f"{job_id}:{custom_id}"`` and the ledger keeps one row per job id, so a
        second collect returns the same costs without a second row.

        Args:
            batch_id: the id :meth:`submit` returned.
            job_id: prefix of each item's ledger job id (default: ``batch_id``).
            tenant: recorded with each ledger row.

        Returns:
            ``None`` while the job runs; else ``{custom_id: LLMResponse | ProviderError}``. A
            response carries ``cost_usd`` at the batch price; a failed item is the error a live call
            would have raised (:class:`BatchItemNotRunError` if the job was cancelled or expired
            before it ran). A job that failed as a whole (``status().state == "failed"``) gives
            ``{}``.

        Raises:
            BatchNotFoundError: the provider does not know ``batch_id``.
            ProviderError: fetching the status or results failed.
        """
        status = self.status(batch_id)
        if not status.finished:
            return None
        results = self.orchestrator.adapter.batch_results(batch_id)
        tracker = self.orchestrator.cost_tracker
        prefix = job_id or batch_id
        for custom_id, outcome in results.items():
            if isinstance(outcome, LLMResponse) and tracker is not None:
                record = tracker.log_usage(
                    outcome, batch=True, job_id=f"{prefix}:{custom_id}", session_id=job_id, tenant=tenant
                )
                outcome.cost_usd = record.cost_usd
        failed = sum(1 for outcome in results.values() if isinstance(outcome, ProviderError))
        log.info(
            "collected batch",
            extra={
                "provider": self.provider,
                "batch_id": batch_id,
                "state": status.state,
                "items": len(results),
                "failed": failed,
            },
        )
        return results
