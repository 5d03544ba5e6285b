"""WakeJob: parks a job's wait (its child execution's AwaitJobEnd task) and resumes it on the job's end event.

The state machine invokes it with ``"step": "await"`` and the wait's task token; the rules on the default bus
(SageMaker's and Bedrock's job state changes) invoke it with the event. See batchline.steps.wake.
"""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batchline.clients import AwsClients
from batchline.config import Deployment, pipelines_from_env
from batchline.state import JobExecutionState
from batchline.steps.wake import park_job, wake_on_event

logger = Logger()
tracer = Tracer()
clients = AwsClients()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("step") != "await":  # an EventBridge event (a foreign one is ignored, never an error)
        result = wake_on_event(event, deployment=Deployment.from_env(), clients=clients)
        if result.get("runId"):  # a waiting job of a run: its log line names the run, as every run's line does
            logger.append_keys(run_id=result["runId"], pipeline=result.get("pipeline"), chunk=result.get("chunk"))
            logger.info("job event", extra={"result": result, "detailType": event.get("detail-type")})
        else:  # foreign, or no wait recorded yet (the next poll reads the job): nobody's run to log under
            logger.debug("job event", extra={"result": result, "detailType": event.get("detail-type")})
        return result
    step = JobExecutionState.model_validate(event)
    if step.job is None:
        raise ValueError("AwaitJobEnd needs the job's last look ($.job)")
    logger.append_keys(run_id=step.run.run_id, pipeline=step.run.pipeline, chunk=step.chunk.index)
    parked = park_job(
        step.run,
        step.chunk,
        step.job,
        str(event["taskToken"]),
        pipelines=pipelines_from_env(),
        deployment=Deployment.from_env(),
        clients=clients,
    )
    logger.info("job waiting for its end event or its next poll", extra=parked)
    return parked
