"""Poll step: the job's normalised status and how long to wait before the next look.

The same function records a job whose execution caught an error it cannot handle (``"step": "jobError"``),
so the run's later steps find every job's end in S3.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.clock import utc_now
from batchline.config import Deployment, pipelines_from_env
from batchline.metrics import poll_measures, publish
from batchline.state import JobExecutionState
from batchline.steps.jobs import poll_job, record_job_error

logger = Logger()
tracer = Tracer()
metrics = Metrics()
clients = AwsClients()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = JobExecutionState.model_validate(event)  # the job's child execution, as the state machine gives it
    run, chunk = step.run, step.chunk
    logger.append_keys(run_id=run.run_id, pipeline=run.pipeline, chunk=chunk.index)
    if event.get("step") == "jobError" and step.error is not None:
        recorded = record_job_error(run, chunk, step.error, deployment=Deployment.from_env(), clients=clients)
        logger.warning("job step failed", extra={"job": recorded, "error": step.error.dump()})
        return recorded
    if step.job is None:
        raise ValueError("PollJob needs the job's last look ($.job)")
    job = poll_job(
        run,
        chunk,
        step.job,
        pipelines=pipelines_from_env(),
        deployment=Deployment.from_env(),
        clients=clients,
    ).dump()
    publish(metrics, pipeline=run.pipeline, run_id=run.run_id, measures=poll_measures(run.started_at, utc_now()))
    logger.info("job polled", extra={"job": job})
    return job
