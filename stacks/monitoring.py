"""Monitoring: one CloudWatch dashboard for the pipelines and the alarms an operator acts on.

Alarms: failed runs (executions FAILED or TIMED_OUT), stale runs (below), and the dead-letter queues' alarms,
which live beside their queues (stacks/notifications.py) and only get the alarm topic and a dashboard place here.
With ``alarmTopicArn`` set, every alarm notifies that topic when it goes into ALARM and back to OK.

Stale runs. Step Functions has no metric for the age of executions still running: ExecutionTime arrives only
when an execution ends, and ExecutionsTimedOut only at the state machine's TimeoutSeconds (31 days), long after
a pipeline's maxRunHours deadline would have stopped the run. A scheduled function listing executions would
work, at the price of a function, a schedule and ListExecutions rights, to learn what the runs already know: each
job submit attempt and each poll reports ``RunAge`` (seconds since the run started, batchline.metrics). The
alarm watches its Maximum over all pipelines, over a window longer than the longest wait between two polls
(maxPollSeconds) so a run waiting on a long job stays seen between polls. The steps that neither submit nor
poll are bounded by Lambda timeouts and retries (at most about 1.5 hours), too short to hide a stale run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from aws_cdk import Duration, Stack, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from batchline.config import Pipelines, StackSettings
from batchline.errors import ConfigError
from batchline.metrics import (
    NAMESPACE,
    PIPELINE_DIMENSION,
    POLLS,
    RECORDS_FAILED,
    RECORDS_IN,
    RECORDS_PREDICTED,
    RECORDS_REJECTED,
    RUN_AGE,
    RUN_DURATION,
    SERVICE,
    SERVICE_DIMENSION,
)
from constructs import Construct

FIVE_MINUTES = Duration.minutes(5)
HOUR = Duration.hours(1)
# CloudWatch evaluates at most one day of data for an alarm (evaluation periods x period).
MAX_EVALUATION_HOURS = 24


def stale_run_evaluation_hours(pipelines: Pipelines) -> int:
    """Hours of RunAge the stale-run alarm looks back over: the longest wait between polls, and one more."""
    longest_wait = max(p.max_poll_seconds for p in pipelines.pipelines.values())
    return min(MAX_EVALUATION_HOURS, math.ceil(longest_wait / 3600) + 1)


class Monitoring(Construct):
    """``dashboard``, ``failed_runs`` and ``stale_runs`` alarms, and ``alarms`` (all, with the queues')."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipelines: Pipelines,
        settings: StackSettings,
        state_machine: sfn.StateMachine,
        functions: Mapping[str, lambda_.IFunction],
        dead_letter_queues: Mapping[str, tuple[sqs.IQueue, cloudwatch.Alarm]],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        names = sorted(pipelines.pipelines)

        ended_badly = {
            "failed": state_machine.metric_failed(period=FIVE_MINUTES, statistic="Sum"),
            "timedOut": state_machine.metric_timed_out(period=FIVE_MINUTES, statistic="Sum"),
        }
        self.failed_runs = cloudwatch.Alarm(
            self,
            "FailedRuns",
            alarm_description="Batchline runs failed or timed out (each also published a Batch Prediction Failed "
            "event naming its error)",
            metric=cloudwatch.MathExpression(
                expression="FILL(failed, 0) + FILL(timedOut, 0)",
                using_metrics=ended_badly,
                label="Executions failed or timed out",
                period=FIVE_MINUTES,
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        hours = settings.run_age_alarm_hours
        window = stale_run_evaluation_hours(pipelines)
        self.stale_runs = cloudwatch.Alarm(
            self,
            "StaleRuns",
            alarm_description=f"A Batchline run has been running for more than {hours:g} hours "
            "(RunAge, reported at each job submit and poll; see the dashboard for the pipeline)",
            metric=self._metric(RUN_AGE, "Maximum", HOUR),
            threshold=hours * 3600,
            evaluation_periods=window,
            datapoints_to_alarm=1,  # one report over the threshold within the window: no flapping between polls
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        queue_alarms = [alarm for _, alarm in dead_letter_queues.values()]
        self.alarms: list[cloudwatch.Alarm] = [self.failed_runs, self.stale_runs, *queue_alarms]
        self._notify(settings, stack)

        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{stack.stack_name}-pipelines", default_interval=Duration.days(1)
        )
        executions = [
            state_machine.metric_started(period=FIVE_MINUTES, statistic="Sum", label="Started"),
            state_machine.metric_succeeded(period=FIVE_MINUTES, statistic="Sum", label="Succeeded"),
            state_machine.metric_failed(period=FIVE_MINUTES, statistic="Sum", label="Failed"),
            state_machine.metric_timed_out(period=FIVE_MINUTES, statistic="Sum", label="Timed out"),
            state_machine.metric_aborted(period=FIVE_MINUTES, statistic="Sum", label="Stopped by hand"),
        ]
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Executions", left=executions, width=12),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=12),
        )
        self.dashboard.add_widgets(
            *(
                self._per_pipeline(title, metric, "Sum", HOUR, names, width=6)
                for title, metric in (
                    ("Records in", RECORDS_IN),
                    ("Records predicted", RECORDS_PREDICTED),
                    ("Records failed at the service", RECORDS_FAILED),
                    ("Records rejected before sending", RECORDS_REJECTED),
                )
            )
        )
        self.dashboard.add_widgets(
            self._per_pipeline("Run duration (s, longest)", RUN_DURATION, "Maximum", HOUR, names, width=8),
            cloudwatch.AlarmWidget(title="Age of the oldest running run (s)", alarm=self.stale_runs, width=8),
            self._per_pipeline("Job status polls", POLLS, "Sum", HOUR, names, width=8),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Lambda errors",
                left=[
                    function.metric_errors(period=FIVE_MINUTES, statistic="Sum", label=name)
                    for name, function in functions.items()
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queues (messages waiting)",
                left=[
                    queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, label=label)
                    for label, (queue, _) in dead_letter_queues.items()
                ],
                width=12,
            ),
        )

    @staticmethod
    def _metric(
        name: str, statistic: str, period: Duration, *, pipeline: str | None = None, label: str | None = None
    ) -> cloudwatch.Metric:
        """A Batchline EMF metric, for one pipeline or (no ``pipeline``) for all of them."""
        dimensions = {SERVICE_DIMENSION: SERVICE}
        if pipeline is not None:
            dimensions[PIPELINE_DIMENSION] = pipeline
        return cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=period,
            label=label or pipeline,
        )

    def _per_pipeline(
        self, title: str, name: str, statistic: str, period: Duration, pipelines: Sequence[str], *, width: int
    ) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title=title,
            left=[self._metric(name, statistic, period, pipeline=pipeline) for pipeline in pipelines],
            width=width,
        )

    def _notify(self, settings: StackSettings, stack: Stack) -> None:
        if settings.alarm_topic_arn is None:
            return
        region = settings.alarm_topic_region
        if not Token.is_unresolved(stack.region) and region != stack.region:
            raise ConfigError(
                f"alarmTopicArn is in {region}, but the stack deploys to {stack.region}: CloudWatch alarms notify "
                "topics in their own Region only"
            )
        action = actions.SnsAction(sns.Topic.from_topic_arn(self, "AlarmTopic", settings.alarm_topic_arn))
        for alarm in self.alarms:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
