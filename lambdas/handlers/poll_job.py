"""Poll step: the job's normalised status and how long to wait before the next look.

The same function records a job whose execution caught an error it cannot handle (``"step": "jobError"``),
so the run's later steps find every job's end in S3.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.config import pipelines_from_env
from batchline.flow import Deployment, poll_job, record_job_error, utc_now
from batchline.metrics import poll_measures, publish
from batchline.state import JobExecutionState

logger = Logger()
tracer = Tracer()
metrics = Metrics()
clients = AwsClients()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = JobExecutionState.model_validate(event)  # the job's child execution, as the state machine gives it
    run, chunk = step.run.dump(), step.chunk.dump()
    logger.append_keys(run_id=run["runId"], pipeline=run["pipeline"], chunk=chunk["index"])
    if event.get("step") == "jobError" and step.error is not None:
        error = step.error.dump()
        recorded = record_job_error(run, chunk, error, deployment=Deployment.from_env(), clients=clients)
        logger.warning("job step failed", extra={"job": recorded, "error": error})
        return recorded
    if step.job is None:
        raise ValueError("PollJob needs the job's last look ($.job)")
    job = poll_job(
        run,
        chunk,
        step.job.dump(),
        pipelines=pipelines_from_env(),
        deployment=Deployment.from_env(),
        clients=clients,
    )
    publish(metrics, pipeline=run["pipeline"], run_id=run["runId"], measures=poll_measures(run, utc_now()))
    logger.info("job polled", extra={"job": job})
    return job
