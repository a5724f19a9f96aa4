"""Fine-tune, deploy and query an object detector: a script written for the managed platform's
SDK (its "Introduction to JumpStart - Object Detection" notebook flow). Only the block of
imports differs from the managed-platform version; everything below it is unchanged apart
from the values the test passes in through environment variables (bucket, image, model).

The test runs it as a separate process: ``python tests/sdk/platform_script.py``; its last
output line is a JSON summary.
"""

import json
import os

# --- imports. The managed-platform version reads:
#   import sagemaker
#   from sagemaker import get_execution_role, hyperparameters, image_uris, model_uris
#   from sagemaker import script_uris
#   from sagemaker.estimator import Estimator
#   from sagemaker.utils import name_from_base
import boxtune.sdk as sagemaker
from boxtune.sdk import get_execution_role, hyperparameters, image_uris, model_uris, script_uris
from boxtune.sdk.estimator import Estimator
from boxtune.sdk.utils import name_from_base

# --- end of imports

aws_role = get_execution_role()
sess = sagemaker.Session()

train_model_id, train_model_version, train_scope = (
    os.environ["MODEL_ID"],
    "*",
    "training",
)
training_instance_type = "ml.p3.2xlarge"

# Retrieve the docker image
train_image_uri = image_uris.retrieve(
    region=None,
    framework=None,
    model_id=train_model_id,
    model_version=train_model_version,
    image_scope=train_scope,
    instance_type=training_instance_type,
)
# Retrieve the training script
train_source_uri = script_uris.retrieve(
    model_id=train_model_id, model_version=train_model_version, script_scope=train_scope
)
# Retrieve the pre-trained model tarball to further fine-tune
train_model_uri = model_uris.retrieve(
    model_id=train_model_id, model_version=train_model_version, model_scope=train_scope
)

training_data_bucket = os.environ["TRAINING_DATA_BUCKET"]
training_data_prefix = "training-datasets/shapes"
training_dataset_s3_path = f"s3://{training_data_bucket}/{training_data_prefix}"

output_bucket = sess.default_bucket()
output_prefix = "jumpstart-example-od-training"
s3_output_location = f"s3://{output_bucket}/{output_prefix}/output"

# Retrieve the default hyper-parameters for fine-tuning the model
hyperparameters = hyperparameters.retrieve_default(
    model_id=train_model_id, model_version=train_model_version
)
# [Optional] Override default hyperparameters with custom values
hyperparameters["epochs"] = "1"
hyperparameters["batch_size"] = "4"
hyperparameters["image_size"] = os.environ.get("IMAGE_SIZE", hyperparameters["image_size"])
print(hyperparameters)

training_job_name = name_from_base(f"jumpstart-example-{train_model_id}-transfer-learning")

# Create SageMaker Estimator instance
od_estimator = Estimator(
    role=aws_role,
    image_uri=train_image_uri,
    source_dir=train_source_uri,
    model_uri=train_model_uri,
    entry_point="transfer_learning.py",
    instance_count=1,
    instance_type=training_instance_type,
    max_run=360000,
    hyperparameters=hyperparameters,
    output_path=s3_output_location,
    base_job_name=training_job_name,
)

# Launch a SageMaker Training job by passing s3 path of the training data
od_estimator.fit({"training": training_dataset_s3_path}, logs=True)

inference_instance_type = "ml.p2.xlarge"

# Retrieve the inference docker container uri
deploy_image_uri = image_uris.retrieve(
    region=None,
    framework=None,
    image_scope="inference",
    model_id=train_model_id,
    model_version=train_model_version,
    instance_type=inference_instance_type,
)
# Retrieve the inference script uri
deploy_source_uri = script_uris.retrieve(
    model_id=train_model_id, model_version=train_model_version, script_scope="inference"
)

endpoint_name = name_from_base(f"jumpstart-example-FT-{train_model_id}-")

# Use the estimator from the previous step to deploy to a SageMaker endpoint
finetuned_predictor = od_estimator.deploy(
    initial_instance_count=1,
    instance_type=inference_instance_type,
    entry_point="inference.py",
    image_uri=deploy_image_uri,
    source_dir=deploy_source_uri,
    endpoint_name=endpoint_name,
)


def query(model_predictor, image_file_name):
    with open(image_file_name, "rb") as file:
        input_img_rb = file.read()

    query_response = model_predictor.predict(
        input_img_rb,
        {
            "ContentType": "application/x-image",
            "Accept": "application/json;verbose;n_predictions=5",
        },
    )
    return query_response


def parse_response(query_response):
    model_predictions = json.loads(query_response)
    normalized_boxes, classes, scores, labels = (
        model_predictions["normalized_boxes"],
        model_predictions["classes"],
        model_predictions["scores"],
        model_predictions["labels"],
    )
    # Substitute the classes index with the classes name
    class_names = [labels[int(idx)] for idx in classes]
    return normalized_boxes, class_names, scores


query_response = query(finetuned_predictor, os.environ["IMAGE_PATH"])
normalized_boxes, classes_names, confidences = parse_response(query_response)

model_data = od_estimator.model_data

# Delete the SageMaker endpoint and the attached resources
finetuned_predictor.delete_model()
finetuned_predictor.delete_endpoint()

print(
    json.dumps(
        {
            "job_name": od_estimator.latest_training_job.name,
            "endpoint_name": endpoint_name,
            "model_data": model_data,
            "normalized_boxes": normalized_boxes,
            "class_names": classes_names,
            "confidences": confidences,
        }
    )
)
