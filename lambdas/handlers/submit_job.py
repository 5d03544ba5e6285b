"""Submit step: create the service job, or find the one an earlier attempt created."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.clock import utc_now
from batchline.config import Deployment, pipelines_from_env
from batchline.metrics import publish, run_age
from batchline.state import JobExecutionState
from batchline.steps.jobs import submit_job

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
    # Before the call: a run waiting for a job slot (QuotaFull, retried for hours) still reports its age.
    publish(metrics, pipeline=run.pipeline, run_id=run.run_id, measures=run_age(run.started_at, utc_now()))
    job = submit_job(
        run,
        chunk,
        pipelines=pipelines_from_env(),
        deployment=Deployment.from_env(),
        clients=clients,
    ).dump()
    logger.info("job submitted", extra={"job": job})
    return job
