"""The run's end lets each service drop what it keeps of the run's jobs (adapters.base.ReleasesServiceObjects).

FinalizeRun calls ``release_run_jobs`` once the manifest is written; the failure path calls
``adapters.base.release_job`` for each job it has just looked at. Neither can fail the run: its outcome is
already decided, and a deletion that did not happen is logged.
"""

from __future__ import annotations

import logging

from batchline.adapters import adapter_for
from batchline.adapters.base import ReleasesServiceObjects, release_job
from batchline.clients import AwsClients
from batchline.config import Deployment, Pipelines
from batchline.state import JobLook, RunFacts
from batchline.steps.run import job_state, run_chunks, run_context

logger = logging.getLogger(__name__)


def release_run_jobs(
    facts: RunFacts, looks: list[JobLook], *, pipelines: Pipelines, deployment: Deployment, clients: AwsClients
) -> None:
    """Release every ended job of a finished run; ``looks`` are the jobs' last looks FinalizeRun has just read
    (each says whether its job ended)."""
    try:
        adapter = adapter_for(pipelines.get(facts.pipeline), clients)
        if not isinstance(adapter, ReleasesServiceObjects):
            return
        ended = {look.chunk: look for look in looks}
        for chunk in run_chunks(clients, facts):
            look = ended.get(chunk.index)
            if look is not None:
                release_job(adapter, run_context(facts, chunk, pipelines, deployment), job_state(look))
    except Exception:  # noqa: BLE001 - the run has ended; its event must still go out
        logger.exception("could not release the service objects of run %s", facts.run_id)
