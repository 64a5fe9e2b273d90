"""Manifest with in_memory: false: per-sample files read with their batch, as the in-memory path reads them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pyrosys.errors import ConfigError
from pyrosys.problems.manifest import Manifest

TABLE = "id,split,label,size,image\n" + "".join(
    f"s{i},{['train', 'val', 'test'][i % 3]},{'yes' if i % 2 else 'no'},{i * 2},img{i}.npy\n" for i in range(12))
LOADERS = {"inputs": {"name": "LoadNumpy", "column": "image"}, "targets": {"name": "LoadClass", "column": "label"},
           "sizes": {"name": "LoadColumns", "columns": ["size"]}}


def problem(path, in_memory: bool, **params) -> Manifest:
    """A Manifest of the images of `path`, in memory or on disk."""
    return Manifest.create({"path": str(path), "loaders": LOADERS, "batch_size": 2, "seed": 3,
                            "in_memory": in_memory, **params})


@pytest.fixture
def images(write, tmp_path):
    """A manifest of 12 .npy images of shape [1, 2, 3], image i filled from i."""
    for i in range(12):
        np.save(tmp_path / f"img{i}.npy", (np.arange(6, dtype=np.float32).reshape(1, 2, 3) + 10 * i))
    return write("m.csv", TABLE)


def batches(loader) -> list[dict]:
    """A loader's batches as plain lists."""
    return [{name: values.tolist() for name, values in batch.items()} for batch in loader]


def test_on_disk_gives_the_in_memory_definitions_and_batches(images):
    memory, disk = problem(images, True), problem(images, False)
    assert disk.data_definitions == memory.data_definitions
    assert disk.data_definitions["inputs"] == {"kind": "image", "shape": [1, 2, 3], "dtype": "float32"}
    for phase in ("val", "test"):
        memory.phases[phase]["split"] = disk.phases[phase]["split"] = phase
        assert batches(disk.loader(phase)) == batches(memory.loader(phase))
    on_disk = [row for batch in batches(disk.loader("train")) for row in zip(*batch.values())]
    in_memory = [row for batch in batches(memory.loader("train")) for row in zip(*batch.values())]
    assert sorted(map(str, on_disk)) == sorted(map(str, in_memory)) and len(on_disk) == 4
    assert batches(disk.loader("train")) == batches(problem(images, False).loader("train"))   # seeded


def test_worker_processes_read_the_same_batches(images):
    assert batches(problem(images, False, num_workers=1).loader("val")) == \
        batches(problem(images, False).loader("val"))


@pytest.mark.parametrize("workers", [0, 1])
def test_files_are_not_read_before_their_batch(images, tmp_path, workers):
    disk = problem(images, False, num_workers=workers)        # a worker's ConfigError comes back as raised
    disk.phases["val"]["split"] = "val"
    disk.setup()
    (tmp_path / "img3.npy").write_bytes(b"not an array")       # row s3, line 5: the train split
    assert len(batches(disk.loader("val"))) == 2
    with pytest.raises(ConfigError, match=r"line 5, column 'image': img3.npy cannot be read") as caught:
        batches(disk.loader("train"))
    assert caught.value.file == str(images)


def test_a_missing_file_is_refused_up_front_naming_row_and_file(images, tmp_path):
    (tmp_path / "img7.npy").unlink()
    with pytest.raises(ConfigError, match="line 9, column 'image': the file 'img7.npy' does not exist"):
        problem(images, False).setup()


def test_a_file_of_another_shape_is_refused_when_read(images, tmp_path):
    np.save(tmp_path / "img4.npy", np.zeros((1, 3, 3), dtype=np.float32))      # line 6, the val split
    disk = problem(images, False)
    disk.phases["val"]["split"] = "val"
    with pytest.raises(ConfigError, match=r"line 6: img4.npy has shape \[1, 3, 3\], the first file \[1, 2, 3\]"):
        batches(disk.loader("val"))


def test_resume_mid_epoch_goes_on_with_the_same_batches(images):
    whole = problem(images, False).loader("train")
    first, expected = batches(whole), batches(whole)          # the second epoch's order is another
    assert first != expected
    resumed = problem(images, False).loader("train")
    resumed.load_state_dict(whole.state_dict())
    done = 1
    resumed.processed = lambda: done
    assert batches(resumed) == expected[done:]
    assert torch.is_tensor(next(iter(problem(images, False).loader("val")))["inputs"])


@pytest.fixture
def vectors(write, tmp_path):
    """A manifest of 24 .npy vectors of 3 values, and the YAML of a short MLP run on it (in_memory to fill in)."""
    rows = "".join(f"s{i},{['train', 'val', 'test'][i % 3]},{'yes' if i % 2 else 'no'},v{i}.npy\n" for i in range(24))
    write("v.csv", "id,split,label,vector\n" + rows)
    for i in range(24):
        np.save(tmp_path / f"v{i}.npy", np.array([i % 2, i / 24, 1 - i / 24], dtype=np.float32))
    return """
        problem: {{name: Manifest, path: v.csv, in_memory: {in_memory}, shuffle: false, batch_size: 4,
                   loaders: {{inputs: {{name: LoadNumpy, column: vector}},
                              targets: {{name: LoadClass, column: label}}}}}}
        model: {{name: MLP, hidden_sizes: [8]}}
        training: {{seed: 5, terminal_conditions: {{epoch_limit: 2}}}}
        logging: {{mlflow: null, tensorboard: null}}
        """


def test_a_trainer_run_gives_the_same_statistics_on_disk_and_in_memory(vectors, write, tmp_path,
                                                                  trained_statistics):
    def train(in_memory: bool) -> list[dict]:
        config = write(f"exp_{in_memory}.yaml", vectors.format(in_memory=in_memory))
        return trained_statistics(config, tmp_path / f"out_{in_memory}")

    memory, disk = train(True), train(False)
    assert len(memory) >= 3 and memory == disk


def test_a_corrupt_file_ends_a_trainer_run_with_exit_2_naming_it(vectors, write, tmp_path, cli):
    (tmp_path / "v4.npy").write_bytes(b"\x93NUMPY broken")
    config = write("exp.yaml", vectors.format(in_memory=False))
    result = cli("pyrosys-trainer", "--c", config, "--outdir", tmp_path / "out", *cli.FAST, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "line 6, column 'vector': v4.npy cannot be read" in result.stderr
