"""Damaged, foreign and hostile files PyroSys reads back: checkpoints, model bundles and the predictor's
inputs. Each is refused with exit status 2 and one paragraph naming the file and the key (or the row),
with no traceback and nothing written; a path read from a file stays inside that file's folder; a class
a file names is checked against the known models before any import (a module that would run code at
import time is never imported); a bundle's weights are checked against their SHA-256, a checkpoint's
bytes against their CRC-32s; no prediction comes from NaN."""
from __future__ import annotations

import hashlib
import importlib
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from pyrosys.callbacks.checkpoint import read_checkpoint
from pyrosys.errors import ConfigError
from pyrosys.factory import TRUSTED_MODULES, check_class_path
from pyrosys.models.model import CHECKSUM_KEY, Model
from pyrosys.workers import predictor, tester, trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SHORT = ["--set", "training.terminal_conditions.episode_limit=2", "model.hidden_sizes=[16]", "logging.mlflow=null",
         "logging.tensorboard=null", "training.trainer.enable_progress_bar=false"]
# imported, this module leaves a marker file beside itself: the proof that a file made PyroSys run its code
UNTRUSTED_MODULE = """\
from pathlib import Path
Path(__file__).with_name("imported").write_text("import-time code ran")
from pyrosys.models.mlp import MLP


class Net(MLP):
    pass
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Bundles and a checkpoint of the current code: a Digits MLP (images) and a BreastCancer MLP (vectors)."""
    root = tmp_path_factory.mktemp("trained")
    for name, config in (("digits", "digits/mlp.yaml"), ("tabular", "tabular/breast_cancer.yaml")):
        assert trainer.main(["--c", str(CONFIGS / config), "--outdir", str(root), "--run-name", name, *SHORT]) == 0
    from sklearn.datasets import load_breast_cancer, load_digits

    np.save(root / "images.npy", load_digits().images[:5])
    data = load_breast_cancer()
    lines = [",".join(["id", *data.feature_names])] + [",".join([f"p{i}", *map(str, row)])
                                                       for i, row in enumerate(data.data[:4])]
    (root / "patients.csv").write_text("\n".join(lines) + "\n")
    return {"digits": root / "digits" / "models", "tabular": root / "tabular" / "models", "root": root}


def copy_inputs(trained: dict[str, Path], tmp: Path) -> None:
    """Fresh copies to damage: bundle/, other/ (a second bundle), tab/, model.ckpt, images.npy, patients.csv."""
    shutil.copytree(trained["digits"] / "best", tmp / "bundle")
    shutil.copytree(trained["digits"] / "best", tmp / "other")
    shutil.copytree(trained["tabular"] / "best", tmp / "tab")
    shutil.copyfile(trained["digits"] / "best.ckpt", tmp / "model.ckpt")
    shutil.copyfile(trained["root"] / "images.npy", tmp / "images.npy")
    shutil.copyfile(trained["root"] / "patients.csv", tmp / "patients.csv")


def module_name(tmp: Path) -> str:
    """A module name of this test's own, so that no earlier import of it counts."""
    return "untrusted_lab_" + hashlib.sha256(str(tmp).encode()).hexdigest()[:10]


def plant_module(tmp: Path) -> str:
    """Write the untrusted module into the test's folder (on sys.path); the class path it offers."""
    name = module_name(tmp)
    (tmp / f"{name}.py").write_text(UNTRUSTED_MODULE)
    importlib.invalidate_caches()
    return f"{name}.Net"


DROP = object()     # as a value: delete the key


def set_at(tree: dict, dotted: str, value: Any) -> None:
    """Set (or DROP) the value at a dotted path of a nested mapping."""
    *parents, last = dotted.split(".")
    for key in parents:
        tree = tree[key]
    if value is DROP:
        del tree[last]
    else:
        tree[last] = value


def in_bundle(dotted: str, value: Any, bundle: str = "bundle") -> Callable[[Path], None]:
    """A damage: set (or DROP) a key of bundle/model.yaml; a callable value is called with the test's folder."""
    def damage(tmp: Path) -> None:
        path = tmp / bundle / "model.yaml"
        description = yaml.safe_load(path.read_text())
        set_at(description, dotted, value(tmp) if callable(value) else value)
        path.write_text(yaml.safe_dump(description))
    return damage


def in_checkpoint(dotted: str, value: Any) -> Callable[[Path], None]:
    """A damage: set (or DROP) a key of model.ckpt, saved again by torch (valid zip records, CRC-32s)."""
    def damage(tmp: Path) -> None:
        checkpoint = torch.load(tmp / "model.ckpt", map_location="cpu", weights_only=True)
        set_at(checkpoint, dotted, value(tmp) if callable(value) else value)
        torch.save(checkpoint, tmp / "model.ckpt")
    return damage


def flip_bytes(path: Path, start: int, count: int = 64) -> None:
    """Invert `count` bytes of a file from `start` on."""
    data = bytearray(path.read_bytes())
    for index in range(start, start + count):
        data[index] ^= 0xFF
    path.write_bytes(bytes(data))


def flip_weight_bytes(tmp: Path) -> None:
    """64 flipped bytes inside the first weight tensor of bundle/weights.safetensors."""
    path = tmp / "bundle" / "weights.safetensors"
    header = int.from_bytes(path.read_bytes()[:8], "little")
    flip_bytes(path, 8 + header + 16)


def flip_checkpoint_tensor(tmp: Path) -> None:
    """64 flipped bytes inside a tensor record of model.ckpt (torch loads it without a word)."""
    import zipfile

    path = tmp / "model.ckpt"
    with zipfile.ZipFile(path) as archive:
        record = max((r for r in archive.infolist() if "/data/" in r.filename), key=lambda r: r.file_size)
    local = path.read_bytes()[record.header_offset:record.header_offset + 30]
    start = record.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
    flip_bytes(path, start + 64)


def write(name: str, content: Any) -> Callable[[Path], None]:
    """A damage: write a file (an array as NPY, bytes, or text) into the test's folder."""
    def damage(tmp: Path) -> None:
        if isinstance(content, np.ndarray):
            with open(tmp / name, "wb") as stream:
                np.save(stream, content)
        elif isinstance(content, bytes):
            (tmp / name).write_bytes(content)
        else:
            (tmp / name).write_text(content)
    return damage


def link_weights_out(tmp: Path) -> None:
    """bundle/weights.safetensors becomes a link to another bundle's weights."""
    (tmp / "bundle" / "weights.safetensors").unlink()
    (tmp / "bundle" / "weights.safetensors").symlink_to(tmp / "other" / "weights.safetensors")


def table_edit(row: int, text: str) -> Callable[[Path], None]:
    """Replace line `row` (1 = the header) of patients.csv."""
    def damage(tmp: Path) -> None:
        lines = (tmp / "patients.csv").read_text().splitlines()
        lines[row - 1] = text(lines[row - 1]) if callable(text) else text
        (tmp / "patients.csv").write_text("\n".join(lines) + "\n")
    return damage


def keep_header(tmp: Path) -> None:
    """patients.csv keeps its header and no row."""
    (tmp / "patients.csv").write_text((tmp / "patients.csv").read_text().splitlines()[0] + "\n")


def tensor_a_number(tmp: Path) -> None:
    """One weight of model.ckpt becomes a plain number."""
    checkpoint = torch.load(tmp / "model.ckpt", map_location="cpu", weights_only=True)
    checkpoint["state_dict"]["models.head.1.bias"] = 3
    torch.save(checkpoint, tmp / "model.ckpt")


def nan_weights(tmp: Path) -> None:
    """A bundle of finite shape and valid checksum whose weights are NaN: it answers NaN to finite inputs."""
    model = Model.load(tmp / "bundle")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float("nan"))
    shutil.rmtree(tmp / "bundle")
    model.save(tmp / "bundle")


IMAGES = np.random.default_rng(0).random((4, 8, 8)) * 16
PREDICT = "--m {tmp}/bundle --input {tmp}/images.npy --output {tmp}/out.csv"
PREDICT_CKPT = "--m {tmp}/model.ckpt --input {tmp}/images.npy --output {tmp}/out.csv"
TEST = "--m {tmp}/model.ckpt --outdir {tmp}/out"
PREDICT_TABLE = "--m {tmp}/tab --input {tmp}/patients.csv --output {tmp}/out.csv"
OUTPUT = "--m {tmp}/bundle --input {tmp}/images.npy --output "

# name: (damage, worker, argv, fragments the paragraph must hold); {tmp} is the test's folder
CORPUS = {
    # A. paths read from a file stay inside its folder
    "bundle_weights_in_a_sibling_bundle": (in_bundle("weights", "../other/weights.safetensors"), "predictor", PREDICT,
                                           ["bundle/model.yaml", "'weights'", "outside the bundle folder"]),
    "bundle_weights_etc_passwd": (in_bundle("weights", "../../../../../../../../etc/passwd"), "predictor", PREDICT,
                                  ["bundle/model.yaml", "'weights'", "outside the bundle folder"]),
    "bundle_weights_absolute": (in_bundle("weights", lambda tmp: str(tmp / "other" / "weights.safetensors")),
                                "predictor", PREDICT, ["bundle/model.yaml", "'weights'", "outside the bundle folder"]),
    "bundle_weights_link_out": (link_weights_out, "predictor", PREDICT, ["bundle/model.yaml", "outside the bundle"]),
    "bundle_weights_not_a_name": (in_bundle("weights", ["weights.safetensors"]), "predictor", PREDICT,
                                  ["bundle/model.yaml", "'weights'"]),
    # A. classes a file names: known models only, checked before any import
    "bundle_class_untrusted_module": (in_bundle("class", plant_module), "predictor", PREDICT,
                                      ["bundle/model.yaml", "'class'", "without importing", TRUSTED_MODULES]),
    "bundle_class_this_nothing": (in_bundle("class", "this.Nothing"), "predictor", PREDICT,
                                  ["bundle/model.yaml", "'class'", "this.Nothing", TRUSTED_MODULES]),
    "bundle_class_not_a_string": (in_bundle("class", 7), "predictor", PREDICT, ["bundle/model.yaml", "'class'"]),
    "checkpoint_class_untrusted_module": (in_checkpoint("pyrosys.model.class", plant_module), "tester", TEST,
                                          ["model.ckpt", "'pyrosys.model.class'", TRUSTED_MODULES]),
    "checkpoint_class_this_nothing": (in_checkpoint("pyrosys.model.class", "this.Nothing"), "predictor", PREDICT_CKPT,
                                      ["model.ckpt", "'pyrosys.model.class'", "this.Nothing"]),
    "checkpoint_class_library_module": (in_checkpoint("pyrosys.model.class", "pickle.Pickler"), "tester", TEST,
                                     ["model.ckpt", "'pyrosys.model.class'", "pickle.Pickler"]),
    # B. model descriptions missing or of the wrong type
    "checkpoint_without_model": (in_checkpoint("pyrosys.model", DROP), "tester", TEST,
                                 ["model.ckpt", "'pyrosys.model'", "missing"]),
    "checkpoint_model_a_string": (in_checkpoint("pyrosys.model", "MLP"), "predictor", PREDICT_CKPT,
                                  ["model.ckpt", "'pyrosys.model'", "not a mapping"]),
    "checkpoint_without_class": (in_checkpoint("pyrosys.model.class", DROP), "tester", TEST,
                                 ["model.ckpt", "'pyrosys.model.class'", "lacks"]),
    "checkpoint_params_a_string": (in_checkpoint("pyrosys.model.params", "hidden"), "tester", TEST,
                                   ["model.ckpt", "'pyrosys.model.params'", "mapping"]),
    "checkpoint_data_definitions_a_list": (in_checkpoint("pyrosys.model.data_definitions", [1, 2]), "tester", TEST,
                                           ["model.ckpt", "'pyrosys.model.data_definitions'", "mapping"]),
    "checkpoint_inputs_a_string": (in_checkpoint("pyrosys.model.data_definitions.inputs", "image"), "predictor",
                                   PREDICT_CKPT, ["model.ckpt", "'pyrosys.model.data_definitions.inputs'"]),
    "checkpoint_shape_a_string": (in_checkpoint("pyrosys.model.data_definitions.inputs.shape", "8x8"), "predictor",
                                  PREDICT_CKPT, ["model.ckpt", "'pyrosys.model.params'", "cannot build"]),
    "checkpoint_hidden_sizes_a_string": (in_checkpoint("pyrosys.model.params.hidden_sizes", "big"), "tester", TEST,
                                         ["model.ckpt", "'pyrosys.model.params.hidden_sizes'", "'big'"]),
    "checkpoint_unknown_param": (in_checkpoint("pyrosys.model.params.depth", 3), "tester", TEST,
                                 ["model.ckpt", "'pyrosys.model.params.depth'"]),
    "checkpoint_state_dict_a_string": (in_checkpoint("state_dict", "weights"), "tester", TEST,
                                       ["model.ckpt", "'state_dict'"]),
    "checkpoint_tensor_a_number": (tensor_a_number, "predictor", PREDICT_CKPT,
                                   ["model.ckpt", "'state_dict'"]),
    "bundle_without_class": (in_bundle("class", DROP), "predictor", PREDICT, ["bundle/model.yaml", "'class'", "lacks"]),
    "bundle_params_a_string": (in_bundle("params", "hidden"), "predictor", PREDICT, ["bundle/model.yaml", "'params'"]),
    "bundle_data_definitions_a_list": (in_bundle("data_definitions", [1]), "predictor", PREDICT,
                                       ["bundle/model.yaml", "'data_definitions'"]),
    "bundle_targets_a_number": (in_bundle("data_definitions.targets", 10), "predictor", PREDICT,
                                ["bundle/model.yaml", "'data_definitions.targets'"]),
    "bundle_num_classes_negative": (in_bundle("data_definitions.targets.num_classes", -3), "predictor", PREDICT,
                                    ["bundle/model.yaml", "'params'", "cannot build"]),
    "bundle_model_yaml_a_list": (write("bundle/model.yaml", "- class\n- params\n"), "predictor", PREDICT,
                                 ["bundle/model.yaml", "not a mapping"]),
    # B. damaged bytes
    "checkpoint_random_bytes": (write("model.ckpt", np.random.default_rng(1).bytes(4000)), "tester", TEST,
                                ["model.ckpt", "corrupt"]),
    "checkpoint_flipped_tensor_bytes": (flip_checkpoint_tensor, "predictor", PREDICT_CKPT,
                                        ["model.ckpt", "corrupt", "CRC"]),
    "bundle_flipped_weight_bytes": (flip_weight_bytes, "predictor", PREDICT,
                                    ["bundle/model.yaml", f"'{CHECKSUM_KEY}'", "damaged"]),
    "bundle_checksum_not_a_digest": (in_bundle(CHECKSUM_KEY, 12), "predictor", PREDICT,
                                     ["bundle/model.yaml", f"'{CHECKSUM_KEY}'"]),
    "bundle_weights_missing": (lambda tmp: (tmp / "bundle" / "weights.safetensors").unlink(), "predictor", PREDICT,
                               ["weights.safetensors", "cannot be read"]),
    "bundle_nan_weights": (nan_weights, "predictor", PREDICT, ["bundle", "'--m'", "NaN or infinite outputs"]),
    # B. the predictor's inputs
    "npy_0d": (write("x.npy", np.array(3.0)), "predictor", "--m {tmp}/bundle --input {tmp}/x.npy",
               ["x.npy", "'--input'", "single number"]),
    "npy_empty": (write("x.npy", np.zeros((0, 8, 8))), "predictor", "--m {tmp}/bundle --input {tmp}/x.npy",
                  ["x.npy", "'--input'", "no samples"]),
    "npy_zero_bytes": (write("x.npy", b""), "predictor", "--m {tmp}/bundle --input {tmp}/x.npy",
                       ["x.npy", "'--input'", "cannot be read"]),
    "npy_nan": (write("x.npy", np.where(np.arange(4)[:, None, None] == 2, np.nan, IMAGES)), "predictor",
                "--m {tmp}/bundle --input {tmp}/x.npy", ["x.npy", "'--input'", "index 2", "NaN"]),
    "npy_inf": (write("x.npy", np.where(np.arange(4)[:, None, None] == 1, -np.inf, IMAGES)), "predictor",
                "--m {tmp}/model.ckpt --input {tmp}/x.npy", ["x.npy", "index 1", "infinite"]),
    "npy_too_large_for_float32": (write("x.npy", IMAGES * 1e300), "predictor", "--m {tmp}/bundle --input {tmp}/x.npy",
                                  ["x.npy", "index 0"]),
    "npy_strings": (write("x.npy", np.array([["a", "b"]])), "predictor", "--m {tmp}/bundle --input {tmp}/x.npy",
                    ["x.npy", "not real numbers"]),
    "csv_row_shorter_than_header": (table_edit(3, lambda line: line.rsplit(",", 1)[0]), "predictor", PREDICT_TABLE,
                                    ["patients.csv, line 3", "'--input'", "lacks a value"]),
    "csv_empty_value": (table_edit(2, lambda line: line.rsplit(",", 1)[0] + ","), "predictor", PREDICT_TABLE,
                        ["patients.csv, line 2", "lacks a value"]),
    "csv_row_longer_than_header": (table_edit(4, lambda line: line + ",1.0"), "predictor", PREDICT_TABLE,
                                   ["patients.csv, line 4", "values, the header"]),
    "csv_nan": (table_edit(5, lambda line: line.rsplit(",", 1)[0] + ",nan"), "predictor", PREDICT_TABLE,
                ["patients.csv, line 5", "'nan'", "not a finite"]),
    "csv_inf": (table_edit(2, lambda line: line.rsplit(",", 1)[0] + ",-inf"), "predictor", PREDICT_TABLE,
                ["patients.csv, line 2", "'-inf'"]),
    "csv_not_a_number": (table_edit(3, lambda line: line.rsplit(",", 1)[0] + ",high"), "predictor", PREDICT_TABLE,
                         ["patients.csv, line 3", "'high'", "not a number"]),
    "csv_header_only": (keep_header, "predictor", PREDICT_TABLE, ["patients.csv", "no rows"]),
    # B. where the predictions go
    "output_a_folder": (lambda tmp: (tmp / "outdir").mkdir(), "predictor", OUTPUT + "{tmp}/outdir",
                        ["'--output'", "folder"]),
    "output_with_a_slash": (None, "predictor", OUTPUT + "{tmp}/new/", ["'--output'", "folder"]),
    "output_under_a_file": (None, "predictor", OUTPUT + "{tmp}/images.npy/p.csv", ["'--output'", "cannot be written"]),
    "output_is_the_input": (None, "predictor", OUTPUT + "{tmp}/images.npy", ["'--output'", "--input"]),
    "output_is_the_model": (None, "predictor", PREDICT_CKPT.replace("out.csv", "model.ckpt"),
                            ["'--output'", "--m"]),
}
if Path("/proc/self").is_dir():     # a place no one may create a file in, root included
    CORPUS["output_unwritable"] = (None, "predictor", OUTPUT + "/proc/p.csv", ["'--output'", "cannot be written"])
WORKERS = {"predictor": predictor.main, "tester": tester.main}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_damaged_file_exits_2_naming_file_and_key_with_nothing_written(case, trained, tmp_path, capsys, monkeypatch):
    damage, worker, argv, fragments = CORPUS[case]
    copy_inputs(trained, tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    if damage is not None:
        damage(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    status = WORKERS[worker](argv.format(tmp=tmp_path).split())
    error = capsys.readouterr().err.strip()
    assert status == 2, error
    assert error.startswith("Configuration error") and "\n" not in error and "Traceback" not in error, error
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    assert sorted(tmp_path.rglob("*")) == before                    # nothing written, no module imported
    assert module_name(tmp_path) not in sys.modules


def test_a_model_in_a_module_the_user_trusts_loads(trained, tmp_path, monkeypatch, capsys):
    copy_inputs(trained, tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    in_bundle("class", plant_module)(tmp_path)
    monkeypatch.setenv(TRUSTED_MODULES, f"other_lab, {module_name(tmp_path)}")
    assert predictor.main(["--m", str(tmp_path / "bundle"), "--input", str(tmp_path / "images.npy")]) == 0
    assert (tmp_path / "imported").exists() and type(Model.load(tmp_path / "bundle")).__name__ == "Net"
    assert capsys.readouterr().out.startswith("id,prediction")


def test_known_class_paths_are_checked_without_importing():
    check_class_path("pyrosys.models.mlp.MLP", "model", file="f", key="class")
    check_class_path("torch.optim.Adam", "optimizer", file="f", key="k")            # a library namespace's name
    with pytest.raises(ConfigError, match="pyrosys.models.mlp.MLP"):               # the nearest known path
        check_class_path("pyrosys.models.mlp.MLPP", "model", file="f", key="class")
    with pytest.raises(ConfigError, match=TRUSTED_MODULES):
        check_class_path("xml.dom.minidom.Node", "model", file="f", key="class")
    name = "pyrosys_never_imported_module"
    with pytest.raises(ConfigError):
        check_class_path(f"{name}.Net", "model", file="f", key="class")
    assert name not in sys.modules


def test_bundles_record_and_check_the_sha256_of_their_weights(trained, tmp_path):
    copy_inputs(trained, tmp_path)
    description = yaml.safe_load((tmp_path / "bundle" / "model.yaml").read_text())
    assert description[CHECKSUM_KEY] == hashlib.sha256((tmp_path / "bundle" / "weights.safetensors")
                                                        .read_bytes()).hexdigest()
    model = Model.load(tmp_path / "bundle")
    inputs = torch.rand(3, 1, 8, 8)
    del description[CHECKSUM_KEY]                       # a bundle written before the checksum: loads, unchecked
    (tmp_path / "bundle" / "model.yaml").write_text(yaml.safe_dump(description))
    assert torch.equal(Model.load(tmp_path / "bundle").predict(inputs), model.predict(inputs))


@pytest.mark.parametrize("seed", range(40))
def test_random_bytes_are_a_corrupt_checkpoint_whatever_the_unpickler_raises(tmp_path, seed):
    path = tmp_path / "random.ckpt"
    path.write_bytes(np.random.default_rng(seed).bytes(50 + 97 * seed))
    with pytest.raises(ConfigError, match="corrupt") as caught:
        read_checkpoint(path)
    assert caught.value.file == str(path)


def test_a_damaged_bundle_as_the_adapter_s_source_is_refused_unimported(trained, tmp_path, capsys, monkeypatch):
    copy_inputs(trained, tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    in_bundle("class", plant_module)(tmp_path)
    flip_checkpoint_tensor(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    for source, fragment in (("bundle", "'class'"), ("model.ckpt", "corrupt")):
        status = trainer.main(["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(tmp_path / "experiments"),
                               *SHORT, f"model.load={{from: {tmp_path / source}}}"])
        error = capsys.readouterr().err
        assert status == 2 and fragment in error and source in error and "Traceback" not in error, error
    assert sorted(tmp_path.rglob("*")) == before and module_name(tmp_path) not in sys.modules


def test_a_checkpoint_written_without_crc32s_still_loads(trained, tmp_path):
    checkpoint = read_checkpoint(trained["digits"] / "best.ckpt")
    torch.serialization.set_crc32_options(False)
    try:
        torch.save(checkpoint, tmp_path / "plain.ckpt")
    finally:
        torch.serialization.set_crc32_options(True)
    assert Model.from_checkpoint(read_checkpoint(tmp_path / "plain.ckpt"), "plain.ckpt").training is False


def test_the_predictor_still_predicts_from_intact_files(trained, tmp_path):
    copy_inputs(trained, tmp_path)
    for model, inputs in (("bundle", "images.npy"), ("model.ckpt", "images.npy"), ("tab", "patients.csv")):
        output = tmp_path / "new" / f"{model}.csv"
        assert predictor.main(["--m", str(tmp_path / model), "--input", str(tmp_path / inputs),
                               "--output", str(output)]) == 0
        assert len(output.read_text().splitlines()) == (6 if inputs == "images.npy" else 5)
