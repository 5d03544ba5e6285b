"""Legacy Amazon Machine Learning, emulated (moto answers 404 "Not yet implemented" for it).

DataSources and BatchPredictions go PENDING -> INPROGRESS -> COMPLETED over Get* calls; IDs are the
idempotency keys (same ID with other parameters: IdempotentParameterMismatchException). A finished
prediction writes ``<OutputUri>batch-prediction/<id>.manifest`` and gzip CSV results in
``batch-prediction/result/``, in input order, rowId first, a blank line for a record it cannot score.

Models (by ID): contains ``multiclass`` -> MULTICLASS (classes low, medium, high); ``regression`` ->
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
from typing import Any

import boto3

from batchline_local.emulators.base import EmulatedError, ServiceEmulator

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
CLOSED_MESSAGE = "AmazonML is no longer available to new customers. Please consider using Amazon SageMaker."


def _model_type(model_id: str) -> str:
    return "MULTICLASS" if "multiclass" in model_id else "REGRESSION" if "regression" in model_id else "BINARY"


class AmazonMLEmulator(ServiceEmulator):
    service = "machinelearning"

    def __init__(self, polls_until_done: int = 2) -> None:
        self.polls_until_done = polls_until_done
        self.data_sources: dict[str, dict[str, Any]] = {}
        self.predictions: dict[str, dict[str, Any]] = {}
        self.create_calls = 0

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
        return {
            "DataSourceId": DataSourceId,
            "Status": source["Status"],
            "DataLocationS3": source["DataSpec"]["DataLocationS3"],
        }

    def create_batch_prediction(self, **params: Any) -> dict[str, Any]:
        self._check_open(params["MLModelId"])
        if params["BatchPredictionDataSourceId"] not in self.data_sources:
            raise EmulatedError("ResourceNotFoundException", f"no data source {params['BatchPredictionDataSourceId']}")
        self._remember(self.predictions, params["BatchPredictionId"], params)
        return {"BatchPredictionId": params["BatchPredictionId"]}

    def get_batch_prediction(self, BatchPredictionId: str) -> dict[str, Any]:
        prediction = self._advance(self.predictions, BatchPredictionId)
        answer = {key: prediction[key] for key in ("BatchPredictionId", "MLModelId", "OutputUri", "Status")}
        for key in ("Message", "TotalRecordCount", "InvalidRecordCount"):
            if key in prediction:
                answer[key] = prediction[key]
        return answer

    # --- behaviour -------------------------------------------------------------------------------

    @staticmethod
    def _check_open(model_id: str) -> None:
        if "closed" in model_id:
            raise EmulatedError("AccessDeniedException", CLOSED_MESSAGE, 403)

    def _remember(self, table: dict[str, dict[str, Any]], entity_id: str, params: dict[str, Any]) -> None:
        existing = table.get(entity_id)
        if existing is not None:
            if existing["params"] != params:
                raise EmulatedError("IdempotentParameterMismatchException", f"{entity_id} exists with other parameters")
            return
        self.create_calls += 1
        table[entity_id] = {
            **params,
            "params": params,
            "Status": "PENDING",
            "polls_left": self.polls_until_done,
        }

    def _advance(self, table: dict[str, dict[str, Any]], entity_id: str) -> dict[str, Any]:
        entity = table.get(entity_id)
        if entity is None:
            raise EmulatedError("ResourceNotFoundException", f"{entity_id} does not exist")
        if entity["Status"] in ("PENDING", "INPROGRESS"):
            entity["polls_left"] -= 1
            if entity["polls_left"] > 0:
                entity["Status"] = "INPROGRESS"
            elif table is self.predictions and "failing" in entity["MLModelId"]:
                entity["Status"], entity["Message"] = "FAILED", "emulated: the ML model is not usable"
            else:
                if table is self.predictions:
                    self._predict(entity)
                entity["Status"] = "COMPLETED"
        return entity

    def _predict(self, prediction: dict[str, Any]) -> None:
        s3 = boto3.client("s3")
        source = self.data_sources[prediction["BatchPredictionDataSourceId"]]
        schema = json.loads(source["DataSpec"]["DataSchema"])
        names = [attribute["attributeName"] for attribute in schema["attributes"]]
        numeric = {a["attributeName"] for a in schema["attributes"] if a["attributeType"] == "NUMERIC"}
        in_bucket, in_prefix = source["DataSpec"]["DataLocationS3"][5:].split("/", 1)
        out_bucket, out_prefix = prediction["OutputUri"][5:].split("/", 1)
        bp_id, model_type = prediction["BatchPredictionId"], _model_type(prediction["MLModelId"])
        manifest, total, invalid = {}, 0, 0
        for item in s3.list_objects_v2(Bucket=in_bucket, Prefix=in_prefix).get("Contents", []):
            text = s3.get_object(Bucket=in_bucket, Key=item["Key"])["Body"].read().decode()
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            header = [schema["rowId"]] + (
                ["bestAnswer", "score"]
                if model_type == "BINARY"
                else CLASSES
                if model_type == "MULTICLASS"
                else ["score"]
            )
            writer.writerow(header)
            for values in csv.reader(io.StringIO(text)):
                total += 1
                record = dict(zip(names, values, strict=False))
                try:
                    signal = sum(float(record[name] or 0) for name in numeric) / 100
                except ValueError:
                    out.write("\n")  # a record Amazon ML cannot score: a blank line
                    invalid += 1
                    continue
                signal += int(hashlib.sha256(record.get("plan", "").encode()).hexdigest()[:2], 16) / 256
                score = 1 / (1 + math.exp(-(signal - 1)))
                if model_type == "BINARY":
                    writer.writerow([record[schema["rowId"]], int(score > 0.5), f"{score:.6E}"])
                elif model_type == "MULTICLASS":
                    weights = [max(1e-6, 1 - abs(score - centre)) for centre in (0.2, 0.5, 0.8)]
                    writer.writerow([record[schema["rowId"]], *(f"{w / sum(weights):.6E}" for w in weights)])
                else:
                    writer.writerow([record[schema["rowId"]], f"{score * 100:.6E}"])
            file_name = item["Key"].rsplit("/", 1)[-1]
            result_key = f"{out_prefix}batch-prediction/result/{bp_id}-{file_name}.gz"
            s3.put_object(Bucket=out_bucket, Key=result_key, Body=gzip.compress(out.getvalue().encode()))
            manifest[f"s3://{in_bucket}/{item['Key']}"] = f"s3://{out_bucket}/{result_key}"
        s3.put_object(
            Bucket=out_bucket,
            Key=f"{out_prefix}batch-prediction/{bp_id}.manifest",
            Body=json.dumps(manifest).encode(),
        )
        prediction["TotalRecordCount"], prediction["InvalidRecordCount"] = total, invalid
