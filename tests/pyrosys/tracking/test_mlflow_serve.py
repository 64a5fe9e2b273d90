"""A trained run's logged model served by a real `mlflow models serve` on 127.0.0.1, asked over REST."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from pyrosys.models.model import Model
from pyrosys.workers import trainer

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
TINY = ["training.terminal_conditions.epoch_limit=1", "training.trainer.enable_progress_bar=false",
        "training.trainer.limit_train_batches=5", "logging.tensorboard=null", "model.hidden_sizes=[16]"]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.mark.integration
def test_mlflow_models_serve_answers_what_model_load_predicts(tmp_path, local_server):
    assert trainer.main(["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(tmp_path), "--set", *TINY]) == 0
    (status_file,) = tmp_path.glob("Digits/MLP/*/status.json")
    recorded = json.loads(status_file.read_text())["mlflow"]
    client = MlflowClient(tracking_uri=recorded["tracking_uri"])
    (output,) = client.get_run(recorded["run_id"]).outputs.model_outputs
    rows = np.random.default_rng(1).random((7, 64), dtype=np.float32)
    expected = Model.load(status_file.parent / "models" / "best").predict(torch.from_numpy(rows).reshape(7, 1, 8, 8))

    port = local_server.free_port()
    # MLflow starts `uvicorn` by name: the one of this environment
    environment = {**os.environ, "MLFLOW_TRACKING_URI": recorded["tracking_uri"],
                   "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m",
                               f"models:/{output.model_id}", "--env-manager", "local", "-p", str(port),
                               "-h", "127.0.0.1"], env=environment, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        local_server.wait_until_answering(f"http://127.0.0.1:{port}/ping", server, seconds=240)
        url = f"http://127.0.0.1:{port}/invocations"
        split = post(url, {"dataframe_split": {"columns": [f"pixel_{i}" for i in range(64)], "data": rows.tolist()}})
        tensor = post(url, {"inputs": rows.tolist()})
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    for answer in (split, tensor):
        np.testing.assert_allclose(np.asarray(answer["predictions"]), expected.numpy(), rtol=1e-5, atol=1e-5)
