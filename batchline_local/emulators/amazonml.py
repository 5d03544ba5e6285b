"""Legacy Amazon Machine Learning, emulated (moto answers 404 "Not yet implemented" for it).

DataSources and BatchPredictions go PENDING -> INPROGRESS -> COMPLETED over Get* calls; IDs are the
idempotency keys (same ID with other parameters: IdempotentParameterMismatchException). A BatchPrediction may
be created on a DataSource still being created: it stays PENDING until the DataSource is COMPLETED and fails
when the DataSource fails (a location with no data file), as the service's dependency management does; a look
at the prediction moves its DataSource on too (the service works on it whether or not GetDataSource is called).
A finished prediction writes ``<OutputUri>batch-prediction/<id>.manifest`` and gzip CSV results in
``batch-prediction/result/``: a header, then one line per observation in input order, the rowId first
under the header ``tag`` (whatever the attribute is called), a blank line for an observation it cannot use.
A MULTICLASS header names one column per class label of the model, written as CSV (a label with a comma or a
quote is quoted). GetBatchPrediction answers CreatedAt and LastUpdatedAt, StartedAt from INPROGRESS on,
FinishedAt once COMPLETED or FAILED, ComputeTime (milliseconds) once COMPLETED and a presigned LogUri, as
the API reference says. DeleteBatchPrediction and DeleteDataSource mark the object DELETED (Get* still
answers, with that status); an unknown ID is ResourceNotFoundException. Observations are read as the service
reads them: one per line, any end-of-line ends one (even inside quotes), the header skipped when the schema
says so.

Models (by ID): contains ``multiclass`` -> MULTICLASS (classes low, medium, high; with ``stars`` the guide's
1_star ... 5_stars; with ``awkward`` labels that need CSV quoting and are not ASCII); ``regression`` ->
REGRESSION; otherwise BINARY. All share the demo training schema below. Test hooks: ``closed`` in the
model ID answers the 403 new accounts get; ``failing`` fails the prediction; a non-numeric value in a
NUMERIC attribute gives that record a blank result line.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import re
import time
from datetime import datetime
from typing import Any

from botocore.utils import parse_timestamp

from batchline_local.emulators.base import (
    EmulatedError,
    ServiceEmulator,
    ServiceIdentity,
    list_keys,
    pipeline_of,
    s3_client,
    split_s3_uri,
)

# Amazon ML reads and writes S3 as its service principal, which may not send aws:SourceAccount (its bucket policy
# is written for that).
PRINCIPAL = "machinelearning.amazonaws.com"

TRAINING_SCHEMA = {
    "version": "1.0",
    "targetAttributeName": "churned",
    "dataFormat": "CSV",
    "dataFileContainsHeader": True,
    "attributes": [
        {"attributeName": "age", "attributeType": "NUMERIC"},
        {"attributeName": "plan", "attributeType": "CATEGORICAL"},
        {"attributeName": "monthly_spend", "attributeType": "NUMERIC"},
        {"attributeName": "churned", "attributeType": "BINARY"},
    ],
}
CLASSES = ["low", "medium", "high"]
STAR_CLASSES = ["1_star", "2_stars", "3_stars", "4_stars", "5_stars"]
# Labels a CSV header must quote or that are not ASCII: a comma, a double quote, a non-ASCII letter.
AWKWARD_CLASSES = ["low, or none", 'say "high"', "élevé"]
TAG = "tag"
CLOSED_MESSAGE = "AmazonML is no longer available to new customers. Please consider using Amazon SageMaker."


def _model_type(model_id: str) -> str:
    return "MULTICLASS" if "multiclass" in model_id else "REGRESSION" if "regression" in model_id else "BINARY"


def model_classes(model_id: str) -> list[str]:
    """The class labels a MULTICLASS model learned from its training data (see the module's test hooks)."""
    return STAR_CLASSES if "stars" in model_id else AWKWARD_CLASSES if "awkward" in model_id else CLASSES


def _epoch(moment: float) -> datetime:
    """A time as botocore hands the caller an epoch-seconds field of the response."""
    return parse_timestamp(round(moment, 3))


MAX_TAGS = 10  # "up to a limit of 10" tags per ML object (AddTags)


class AmazonMLEmulator(ServiceEmulator):
    service = "machinelearning"
    validation_error = "InvalidInputException"

    def __init__(self, polls_until_done: int = 2) -> None:
        self.polls_until_done = polls_until_done
        self.data_sources: dict[str, dict[str, Any]] = {}
        self.predictions: dict[str, dict[str, Any]] = {}
        self.create_calls = 0
        self.deleted: list[str] = []  # IDs in the order DeleteBatchPrediction / DeleteDataSource marked them

    def get_ml_model(self, MLModelId: str, Verbose: bool = False) -> dict[str, Any]:
        self._check_open(MLModelId)
        answer = {"MLModelId": MLModelId, "Status": "COMPLETED", "MLModelType": _model_type(MLModelId)}
        if Verbose:
            answer["Schema"] = json.dumps(TRAINING_SCHEMA)
        return answer

    def create_data_source_from_s3(self, **params: Any) -> dict[str, Any]:
        self._remember(self.data_sources, params["DataSourceId"], params)
        return {"DataSourceId": params["DataSourceId"]}

    def get_data_source(self, DataSourceId: str, **_: Any) -> dict[str, Any]:
        source = self._advance(self.data_sources, DataSourceId)
        answer = {
            "DataSourceId": DataSourceId,
            "Status": source["Status"],
            "DataLocationS3": source["DataSpec"]["DataLocationS3"],
        }
        if "Message" in source:
            answer["Message"] = source["Message"]
        return answer

    def create_batch_prediction(self, **params: Any) -> dict[str, Any]:
        self._check_open(params["MLModelId"])
        if params["BatchPredictionDataSourceId"] not in self.data_sources:
            raise EmulatedError("ResourceNotFoundException", f"no data source {params['BatchPredictionDataSourceId']}")
        self._remember(self.predictions, params["BatchPredictionId"], params)
        return {"BatchPredictionId": params["BatchPredictionId"]}

    def get_batch_prediction(self, BatchPredictionId: str) -> dict[str, Any]:
        prediction = self._advance(self.predictions, BatchPredictionId)
        answer = {key: prediction[key] for key in ("BatchPredictionId", "MLModelId", "OutputUri", "Status")}
        for key in ("Message", "TotalRecordCount", "InvalidRecordCount", "ComputeTime", "LogUri"):
            if key in prediction:
                answer[key] = prediction[key]
        for key in ("CreatedAt", "LastUpdatedAt", "StartedAt", "FinishedAt"):
            if key in prediction:
                answer[key] = _epoch(prediction[key])
        return answer

    def add_tags(self, ResourceId: str, ResourceType: str, Tags: list[dict[str, str]]) -> dict[str, Any]:
        """Tags on a DataSource or BatchPrediction, up to Amazon ML's 10 per object; a key already there gets the
        new value."""
        table = {"DataSource": self.data_sources, "BatchPrediction": self.predictions}.get(ResourceType, {})
        entity = table.get(ResourceId)
        if entity is None:
            raise EmulatedError("ResourceNotFoundException", f"{ResourceType} {ResourceId} does not exist")
        merged = {**entity.get("Tags", {}), **{tag["Key"]: tag.get("Value") for tag in Tags}}
        if len(merged) > MAX_TAGS:
            raise EmulatedError(
                "TagLimitExceededException", f"{ResourceId} would have {len(merged)} tags; the limit is {MAX_TAGS}"
            )
        entity["Tags"] = merged
        return {"ResourceId": ResourceId, "ResourceType": ResourceType}

    def delete_batch_prediction(self, BatchPredictionId: str) -> dict[str, Any]:
        self._delete(self.predictions, BatchPredictionId)
        return {"BatchPredictionId": BatchPredictionId}

    def delete_data_source(self, DataSourceId: str) -> dict[str, Any]:
        self._delete(self.data_sources, DataSourceId)
        return {"DataSourceId": DataSourceId}

    # --- behaviour -------------------------------------------------------------------------------

    @staticmethod
    def _check_open(model_id: str) -> None:
        if "closed" in model_id:
            raise EmulatedError("AccessDeniedException", CLOSED_MESSAGE, 403)

    def _delete(self, table: dict[str, dict[str, Any]], entity_id: str) -> None:
        entity = table.get(entity_id)
        if entity is None:
            raise EmulatedError("ResourceNotFoundException", f"{entity_id} does not exist")
        entity["Status"], entity["LastUpdatedAt"] = "DELETED", time.time()
        self.deleted.append(entity_id)

    def _remember(self, table: dict[str, dict[str, Any]], entity_id: str, params: dict[str, Any]) -> None:
        existing = table.get(entity_id)
        if existing is not None:
            if existing["params"] != params:
                raise EmulatedError("IdempotentParameterMismatchException", f"{entity_id} exists with other parameters")
            return
        self.create_calls += 1
        now = time.time()
        table[entity_id] = {
            **params,
            "params": params,
            "Status": "PENDING",
            "polls_left": self.polls_until_done,
            "CreatedAt": now,
            "LastUpdatedAt": now,
        }

    def _advance(self, table: dict[str, dict[str, Any]], entity_id: str) -> dict[str, Any]:
        entity = table.get(entity_id)
        if entity is None:
            raise EmulatedError("ResourceNotFoundException", f"{entity_id} does not exist")
        if entity["Status"] not in ("PENDING", "INPROGRESS"):
            return entity
        if table is self.predictions and not self._source_ready(entity):
            return entity  # queued behind its data source (or failed with it)
        entity["polls_left"] -= 1
        now = time.time()
        entity["LastUpdatedAt"] = now
        if table is self.predictions:
            self._started(entity, now)
        if entity["polls_left"] > 0:
            entity["Status"] = "INPROGRESS"
        elif table is self.data_sources:
            self._read_source(entity)
        elif "failing" in entity["MLModelId"]:
            entity["Status"], entity["Message"] = "FAILED", "emulated: the ML model is not usable"
            entity["FinishedAt"] = now
        else:
            entity["Status"] = "COMPLETED"
            self._predict(entity)  # may end it FAILED instead
            entity["FinishedAt"] = now
            if entity["Status"] == "COMPLETED":
                # Approximate CPU milliseconds, "only available if the BatchPrediction is in the COMPLETED state".
                entity["ComputeTime"] = 40 + entity.get("TotalRecordCount", 0) // 10
        return entity

    @staticmethod
    def _started(prediction: dict[str, Any], now: float) -> None:
        """StartedAt and the log link from the moment the prediction leaves PENDING (the log is a presigned link
        that expires)."""
        if "StartedAt" in prediction:
            return
        prediction["StartedAt"] = now
        expires = int(now) + 3600
        prediction["LogUri"] = (
            f"https://eml-prod-emr.s3.amazonaws.com/{prediction['BatchPredictionId']}/logs/batch-prediction.log"
            f"?AWSAccessKeyId=AKIAEMULATED&Expires={expires}&Signature=emulated"
        )

    def _source_ready(self, prediction: dict[str, Any]) -> bool:
        """Moves the prediction's data source on; True once it is COMPLETED (a failed one fails the prediction)."""
        source_id = prediction["BatchPredictionDataSourceId"]
        source = self._advance(self.data_sources, source_id)
        if source["Status"] in ("FAILED", "DELETED"):
            prediction["Status"] = "FAILED"
            prediction["Message"] = f"data source {source_id} is {source['Status']}: {source.get('Message', '')}"
        return bool(source["Status"] == "COMPLETED")

    @staticmethod
    def _read_source(source: dict[str, Any]) -> None:
        location = source["DataSpec"]["DataLocationS3"]
        identity = ServiceIdentity(PRINCIPAL, pipeline_of(location), source_account=False)
        if list_keys(s3_client(identity), *split_s3_uri(location)):
            source["Status"] = "COMPLETED"
        else:
            source["Status"], source["Message"] = "FAILED", f"emulated: no data file at {location}"

    def _predict(self, prediction: dict[str, Any]) -> None:
        source = self.data_sources[prediction["BatchPredictionDataSourceId"]]
        location = source["DataSpec"]["DataLocationS3"]
        s3 = s3_client(ServiceIdentity(PRINCIPAL, pipeline_of(location), source_account=False))
        schema = json.loads(source["DataSpec"]["DataSchema"])
        names = [attribute["attributeName"] for attribute in schema["attributes"]]
        numeric = {a["attributeName"] for a in schema["attributes"] if a["attributeType"] == "NUMERIC"}
        in_bucket, in_prefix = split_s3_uri(source["DataSpec"]["DataLocationS3"])
        out_bucket, out_prefix = split_s3_uri(prediction["OutputUri"])
        bp_id, model_type = prediction["BatchPredictionId"], _model_type(prediction["MLModelId"])
        row_id = schema.get("rowId")
        classes = model_classes(prediction["MLModelId"])
        header = ([TAG] if row_id else []) + (
            ["bestAnswer", "score"] if model_type == "BINARY" else classes if model_type == "MULTICLASS" else ["score"]
        )
        manifest, total, invalid = {}, 0, 0
        for key in list_keys(s3, in_bucket, in_prefix):
            data = s3.get_object(Bucket=in_bucket, Key=key)["Body"].read()
            try:
                lines = observations(data, skip_header=bool(schema.get("dataFileContainsHeader")))
            except UnicodeDecodeError as exc:
                prediction["Status"] = "FAILED"
                prediction["Message"] = f"emulated: {key} is not UTF-8 ({exc.reason} at byte {exc.start})"
                return
            out = io.StringIO()
            out.write(_csv_line(header))
            for line in lines:
                total += 1
                record = _observation(line, names, numeric)
                if record is None:
                    out.write("\n")  # an observation Amazon ML cannot score: a blank line, order kept
                    invalid += 1
                    continue
                signal = sum(float(record[name] or 0) for name in numeric) / 100
                signal += int(hashlib.sha256(record.get("plan", "").encode()).hexdigest()[:2], 16) / 256
                # The logistic written so no input overflows it: math.exp of a large argument raises OverflowError.
                score = (
                    1 / (1 + math.exp(-(signal - 1)))
                    if signal >= 1
                    else math.exp(signal - 1) / (1 + math.exp(signal - 1))
                )
                row = [record[row_id]] if row_id else []
                if model_type == "BINARY":
                    row += [str(int(score > 0.5)), _scientific(score)]
                elif model_type == "MULTICLASS":
                    centres = [(n + 0.5) / len(classes) for n in range(len(classes))]
                    weights = [max(1e-6, 1 - abs(score - centre)) for centre in centres]
                    row += [_scientific(w / sum(weights)) for w in weights]
                else:
                    row += [_scientific(score * 100)]
                out.write(_csv_line(row))
            file_name = key.rsplit("/", 1)[-1]
            result_key = f"{out_prefix}batch-prediction/result/{bp_id}-{file_name}.gz"
            s3.put_object(Bucket=out_bucket, Key=result_key, Body=gzip.compress(out.getvalue().encode("utf-8")))
            manifest[f"s3://{in_bucket}/{key}"] = f"s3://{out_bucket}/{result_key}"
        s3.put_object(
            Bucket=out_bucket,
            Key=f"{out_prefix}batch-prediction/{bp_id}.manifest",
            Body=json.dumps(manifest).encode(),
        )
        prediction["TotalRecordCount"], prediction["InvalidRecordCount"] = total, invalid


# Amazon ML limit: 100 KB per observation (https://docs.aws.amazon.com/machine-learning/latest/dg/system-limits.html).
MAX_OBSERVATION_BYTES = 100 * 1024
_END_OF_LINE = re.compile(r"\r\n|\n|\r")


def observations(data: bytes, *, skip_header: bool = False) -> list[str]:
    """A data file's observations: one per line, every end-of-line ends one, even inside double quotes
    ("Attribute values cannot include end-of-line characters, even if the attribute value is enclosed in
    double quotes": https://docs.aws.amazon.com/machine-learning/latest/dg/understanding-the-data-format-for-amazon-ml.html)."""
    lines = _END_OF_LINE.split(data.decode("utf-8"))
    if lines[-1] == "":
        lines.pop()  # the end-of-line that terminates the last observation
    return lines[1:] if skip_header else lines


def _observation(line: str, names: list[str], numeric: set[str]) -> dict[str, str] | None:
    """The observation's attributes by name, or None when Amazon ML could not use it (wrong number of
    values, an unbalanced quote, a non-numeric NUMERIC value, over 100 KB)."""
    if len(line.encode("utf-8")) > MAX_OBSERVATION_BYTES:
        return None
    try:
        values = next(csv.reader([line], strict=True), [])
    except csv.Error:
        return None
    if len(values) != len(names):
        return None
    record = dict(zip(names, values, strict=True))
    for name in numeric:
        try:
            if record[name] and not math.isfinite(float(record[name])):
                return None
        except ValueError:
            return None
    return record


def _scientific(value: float) -> str:
    """Scores as the service writes them: 7.899012E-1, -1.526385E1 (no exponent padding or plus sign)."""
    mantissa, exponent = f"{value:.6E}".split("E")
    return f"{mantissa}E{int(exponent)}"


def _csv_line(fields: list[str]) -> str:
    quoted = ['"' + f.replace('"', '""') + '"' if any(c in f for c in ',"\r\n') else f for f in fields]
    return ",".join(quoted) + "\n"
