"""PLMClassifier on a tiny random ESM written by the tests (offline): frozen runs with the embedding cache, lean
checkpoints, self-contained bundles reloaded in a fresh process, fine-tuning (last layers, full, LoRA), the
Adapter, windows over long sequences, and the refusals of bad pretrained folders and caches."""
from __future__ import annotations

import csv
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from pyrosys.callbacks.checkpoint import read_checkpoint
from pyrosys.models import Model, PLMClassifier
from pyrosys.models.adapter import adapt
from pyrosys.models.embedding_cache import EmbeddingCache, sequence_key
from pyrosys.models.modules.pretrained import window_starts
from pyrosys.problems.protein import VOCABULARY
from pyrosys.workers import predictor, tester, trainer

os.environ["HF_HUB_OFFLINE"] = "1"

CONFIG = """\
problem: {{name: ProteinSequences, path: {data}, batch_size: 8, task: {task}}}
model: {{name: PLMClassifier, pretrained: {esm}{model}}}
training:
  seed: 1
  optimizer: {{name: Adam, lr: 0.01}}
  terminal_conditions: {{epoch_limit: {epochs}}}
  trainer: {{enable_progress_bar: false}}
logging: {{mlflow: null, tensorboard: null}}
"""


def train(folder: Path, esm: Path, model: str = "", task: str = "classification", epochs: int = 2,
          name: str = "run", data: Path | None = None, extra: list[str] | None = None) -> int:
    """pyrosys-trainer on a small protein CSV with PLMClassifier (`model`: more of its YAML mapping)."""
    data = data or folder / f"{task}.csv"
    if not data.is_file():
        write_proteins(data, task=task)
    config = folder / f"{name}.yaml"
    config.write_text(CONFIG.format(data=data, esm=esm, model=model, task=task, epochs=epochs))
    return trainer.main(["--c", str(config), "--outdir", str(folder / "runs"), "--run-name", name, *(extra or [])])


def write_proteins(path: Path, count: int = 40, seed: int = 0, task: str = "classification") -> Path:
    """A CSV of random proteins 10-50 long: class 1 where K appears more than once (classification), the
    K+R share (regression), or 1 at each K and R (residue_classification)."""
    rng = random.Random(seed)
    lines = ["id,sequence,label"]
    for index in range(count):
        sequence = "".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(rng.randint(10, 50)))
        if task == "classification":
            label = str(int(sequence.count("K") > 1))
        elif task == "regression":
            label = f"{(sequence.count('K') + sequence.count('R')) / len(sequence):.4f}"
        elif task == "multilabel":
            label = ";".join(term for term, letter in (("GO:1", "K"), ("GO:2", "R"), ("GO:3", "W"))
                             if letter in sequence) or "GO:4"
        else:
            label = "".join("1" if letter in "KR" else "0" for letter in sequence)
        lines.append(f"p{index},{sequence},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def definitions(task: str = "classification") -> dict:
    targets = {"classification": {"task": "classification", "num_classes": 2, "classes": ["0", "1"]},
               "regression": {"task": "regression", "shape": []},
               "residue_classification": {"task": "residue_classification", "num_classes": 2, "classes": ["0", "1"]},
               "residue_regression": {"task": "residue_regression", "shape": [60], "per_position": True},
               "multilabel": {"task": "multilabel", "terms": ["GO:1", "GO:2", "GO:3"]}}[task]
    return {"inputs": {"kind": "tokens", "shape": [60], "dtype": "int64", "vocabulary": VOCABULARY},
            "masks": {"shape": [60], "dtype": "bool"}, "targets": targets}


def tokens(*sequences: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, sequences))
    ids = torch.tensor([[VOCABULARY.index(a) for a in s] + [0] * (width - len(s)) for s in sequences])
    return ids, ids != 0


def test_frozen_encoder_trains_tests_predicts_from_fasta_with_lean_checkpoints(tmp_path, esm_folder, capsys):
    assert train(tmp_path, esm_folder, ", embeddings: {cache: %s}" % (tmp_path / "cache")) == 0
    run = tmp_path / "runs" / "run"
    err = capsys.readouterr().err
    assert "embedding cache: 36 sequences embedded" in err and "read in overlapping windows" in err
    checkpoint = read_checkpoint(run / "models" / "best.ckpt")
    assert not [k for k in checkpoint["state_dict"] if k.startswith("models.encoder.model.")]
    frozen = checkpoint["pyrosys"]["frozen"]
    bundle = run / "models" / "best"
    encoder_bytes = sum(v.numel() * v.element_size() for k, v in Model.load(bundle).state_dict().items()
                        if k.startswith("models.encoder.model."))
    assert frozen["tensors"] > 20 and (run / "models" / "best.ckpt").stat().st_size < encoder_bytes / 2
    # the tester rebuilds the frozen weights from the pretrained folder (same SHA-256) and reads the cache
    assert tester.main(["--m", str(run / "models" / "best.ckpt")]) == 0
    losses = [yaml.safe_load(path.read_text())["loss"]
              for path in run.glob("testing_*/testing_set_agg_statistics.yaml")]
    assert len(losses) == 2 and losses[0] == pytest.approx(losses[1])     # the trainer's test and the tester's
    (tmp_path / "new.fasta").write_text(">q1\n" + "MKRL" * 15 + "\n>q2\nakK\n")
    output = tmp_path / "predictions.csv"
    assert predictor.main(["--m", str(bundle), "--input", str(tmp_path / "new.fasta"), "--output", str(output)]) == 0
    with open(output, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [r["id"] for r in rows] == ["q1", "q2"] and abs(float(rows[0]["p_0"]) + float(rows[0]["p_1"]) - 1) < 1e-5


def test_bundle_reloads_in_a_fresh_offline_process_without_the_pretrained_folder(tmp_path, plm_files):
    esm = plm_files.write_esm(tmp_path / "esm")
    assert train(tmp_path, esm, ", pooling: cls, head: {hidden: [16], dropout: 0.0}", epochs=1) == 0
    bundle = tmp_path / "runs" / "run" / "models" / "best"
    assert {"config.json", "vocab.txt", "pyrosys-encoder.json"} <= {p.name for p in (bundle / "encoder").iterdir()}
    ids, masks = tokens("MKTAYIAKQRQISFVKSHFSRQ" * 3, "ACDK")
    expected = Model.load(bundle).predict(ids, masks=masks)
    shutil.rmtree(esm)                                   # the bundle alone must do
    script = ("import sys, torch; from pyrosys.models import Model; ids, masks = torch.load(sys.argv[2]); "
              "torch.save(Model.load(sys.argv[1]).predict(ids, masks=masks), sys.argv[3])")
    torch.save((ids, masks), tmp_path / "inputs.pt")
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "no-cache")}
    subprocess.run([sys.executable, "-c", script, str(bundle), str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")],
                   check=True, env=environment, cwd=tmp_path, timeout=120)
    assert torch.equal(torch.load(tmp_path / "out.pt"), expected)


def test_embedding_cache_hits_misses_and_refuses_other_weights(tmp_path, esm_folder, plm_files, capsys):
    cache = tmp_path / "cache"
    assert train(tmp_path, esm_folder, f", embeddings: {{cache: {cache}}}", name="first") == 0
    assert train(tmp_path, esm_folder, f", embeddings: {{cache: {cache}}}", name="second") == 0
    assert train(tmp_path, esm_folder, "", name="uncached") == 0
    err = capsys.readouterr().err
    assert err.count("sequences embedded") == 2            # the first run's train+val, then its test split
    values = {name: (tmp_path / "runs" / name / "validation_statistics.csv").read_text() for name in
              ("first", "second", "uncached")}
    assert values["first"] == values["second"]
    first, uncached = (list(csv.DictReader(values[n].splitlines())) for n in ("first", "uncached"))
    assert [float(r["loss"]) for r in first] == pytest.approx([float(r["loss"]) for r in uncached], abs=1e-5)
    other = plm_files.write_esm(tmp_path / "other", seed=5)
    assert train(tmp_path, other, f", embeddings: {{cache: {cache}}}", name="other") == 2
    err = capsys.readouterr().err
    assert "belongs to other encoder weights" in err and f"rm -r {cache}" in err
    assert not (tmp_path / "runs" / "other").exists()


def test_a_shard_of_other_weights_is_never_served(tmp_path):
    mine = EmbeddingCache(tmp_path, "a" * 64, "layer-1_mean", "mine")
    with mine.turn():
        mine.put("k1", torch.ones(4))
    foreign = EmbeddingCache(tmp_path, "b" * 64, "layer-1_mean", "theirs")
    foreign.put("k2", torch.zeros(4))
    foreign.flush()                                       # a shard stamped with other weights in the same folder
    reader = EmbeddingCache(tmp_path, "a" * 64, "layer-1_mean", "mine")
    reader.refresh()
    assert torch.equal(reader.get("k1"), torch.ones(4)) and reader.get("k2") is None
    assert sequence_key(torch.tensor([1, 2])) != sequence_key(torch.tensor([2, 1]))


def test_windows_average_long_sequences_and_short_ones_match_the_encoder(esm_folder):
    from transformers import AutoModel
    assert window_starts(20, 32) == [0] and window_starts(70, 32) == [0, 16, 32, 38]
    model = PLMClassifier.create({"pretrained": str(esm_folder)}, definitions())
    encoder = model.models["encoder"]
    reference = AutoModel.from_pretrained(esm_folder).eval()
    short, masks = tokens("MKTAYIAKQR")
    residues, first = encoder(short, masks)
    framed = torch.tensor([[0] + encoder.token_map[short[0]].tolist() + [2]])
    direct = reference(input_ids=framed).last_hidden_state
    assert torch.allclose(residues[0], direct[0, 1:-1], atol=1e-5) and torch.allclose(first[0], direct[0, 0], atol=1e-5)
    long, masks = tokens("MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVV"[:70])
    residues, _ = encoder(long, masks)
    pieces = [reference(input_ids=torch.tensor([[0] + encoder.token_map[long[0, s:s + 32]].tolist() + [2]]))
              .last_hidden_state[0, 1:-1] for s in (0, 16, 32, 38)]
    assert torch.allclose(residues[0, 0], pieces[0][0], atol=1e-5)
    assert torch.allclose(residues[0, 20], (pieces[0][20] + pieces[1][4]) / 2, atol=1e-5)
    assert torch.allclose(residues[0, 69], pieces[3][31], atol=1e-5)


def test_every_task_gets_its_head(esm_folder):
    ids, masks = tokens("MKTAYIAKQR", "ACDE")
    shapes = {task: tuple(PLMClassifier.create({"pretrained": str(esm_folder), "pooling": pooling},
                                               definitions(task)).predict(ids, masks=masks).shape)
              for task, pooling in (("classification", "attention"), ("regression", "mean"),
                                    ("residue_classification", "mean"), ("residue_regression", "mean"),
                                    ("multilabel", "cls"))}
    assert shapes == {"classification": (2, 2), "regression": (2, 1), "residue_classification": (2, 10, 2),
                      "residue_regression": (2, 10), "multilabel": (2, 3)}


def test_last_k_lora_and_full_fine_tuning_train_what_they_say(tmp_path, esm_folder):
    def trainable(**params) -> list[str]:
        model = PLMClassifier.create({"pretrained": str(esm_folder), **params}, definitions())
        return [name for name, parameter in model.models.named_parameters() if parameter.requires_grad]
    assert all(name.startswith("head.") for name in trainable())
    last = [name for name in trainable(freeze="last_k", last_k=1) if name.startswith("encoder.")]
    assert last and all("layer.1." in name or "emb_layer_norm_after" in name for name in last)
    assert len(trainable(freeze="none")) > len(trainable(freeze="last_k", last_k=1)) > len(trainable())
    model = PLMClassifier.create({"pretrained": str(esm_folder), "finetune": {"method": "lora", "r": 2}},
                                 definitions())
    names = [n for n, p in model.models["encoder"].named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    # a LoRA run trains, checkpoints only its adapters and the head, and its bundle predicts the same
    assert train(tmp_path, esm_folder, ", finetune: {method: lora, r: 2, alpha: 4}", epochs=1) == 0
    run = tmp_path / "runs" / "run" / "models"
    state = read_checkpoint(run / "best.ckpt")["state_dict"]
    assert any("lora_A" in k for k in state) and not any("base_layer" in k for k in state)
    ids, masks = tokens("MKTAYIAKQR", "ACDE")
    from_checkpoint = Model.from_checkpoint(read_checkpoint(run / "best.ckpt"), "best.ckpt")
    assert torch.allclose(Model.load(run / "best").predict(ids, masks=masks), from_checkpoint.predict(ids, masks=masks))


def test_a_fine_tuned_encoder_moves_into_a_model_for_another_task(tmp_path, esm_folder):
    assert train(tmp_path, esm_folder, ", freeze: none, gradient_checkpointing: true", epochs=1,
                 extra=["--set", "training.trainer.precision=bf16-mixed"]) == 0
    source = Model.load(tmp_path / "runs" / "run" / "models" / "best")
    target = PLMClassifier.create({"pretrained": str(esm_folder)}, definitions("multilabel"))
    ids, masks = tokens("MKTAYIAKQRQISFVKSHFSRQ", "ACDE")
    assert not torch.allclose(target.models["encoder"](ids, masks)[0], source.models["encoder"](ids, masks)[0])
    report = adapt(target, source, modules=["encoder"])
    assert report.matched and not report.shape_mismatched
    assert torch.equal(target.models["encoder"](ids, masks)[0], source.models["encoder"](ids, masks)[0])


def test_a_lean_checkpoint_resumes_and_refuses_changed_pretrained_weights(tmp_path, plm_files, capsys):
    esm = plm_files.write_esm(tmp_path / "esm")
    assert train(tmp_path, esm, "", epochs=1) == 0
    run = tmp_path / "runs" / "run"
    (tmp_path / "more.yaml").write_text("training: {terminal_conditions: {epoch_limit: 2}}\n")
    assert trainer.main(["--resume", str(run), "--c", str(tmp_path / "more.yaml")]) == 0
    assert len((run / "validation_statistics.csv").read_text().splitlines()) == 3
    plm_files.write_esm(esm, seed=9)                     # the folder now holds other weights
    capsys.readouterr()
    assert tester.main(["--m", str(run / "models" / "best.ckpt")]) == 2
    assert "leaves out the frozen weights" in capsys.readouterr().err


@pytest.mark.parametrize("case, esm, model, words", [
    ("missing", "{tmp}/nowhere", "", "is not a folder of a pretrained model"),
    ("hub", "facebook/esm2_t6_8M_UR50D", "", "HF_HUB_OFFLINE"),
    ("empty", "{tmp}/empty", "", "it has no config.json"),
    ("no weights", "{tmp}/noweights", "", "no weights"),
    ("foreign", "{tmp}/foreign", "", "config.json is not a model configuration transformers knows"),
    ("tokenizer", "{tmp}/bigtok", "", "the tokenizer does not match the encoder"),
    ("last_k", "{esm}", ", freeze: last_k, last_k: 5", "last_k is 5, but the encoder has 2 layers"),
    ("lora", "{esm}", ", freeze: none, finetune: {method: lora}", "LoRA adapts a frozen encoder"),
    ("cache", "{esm}", ", freeze: none, embeddings: {cache: c}", "only a frozen encoder's embeddings"),
    ("layer", "{esm}", ", layer: 7", "layer 7 is not a layer of this encoder"),
])
def test_bad_pretrained_settings_exit_2_before_anything_is_written(tmp_path, esm_folder, plm_files, capsys, case,
                                                                   esm, model, words):
    (tmp_path / "empty").mkdir()
    (tmp_path / "noweights").mkdir()
    shutil.copy(esm_folder / "config.json", tmp_path / "noweights")
    (tmp_path / "foreign").mkdir()             # a folder of something else: a config transformers does not know
    (tmp_path / "foreign" / "config.json").write_text('{"model_type": "protein_soup"}')
    (tmp_path / "foreign" / "model.safetensors").write_bytes(b"")
    if case == "tokenizer":       # a tokenizer of 43 tokens before an encoder of 33 embeddings
        plm_files.write_esm(tmp_path / "bigtok", tokens=[*plm_files.tokens, *(f"<extra_{i}>" for i in range(10))],
                            vocab_size=33)
    status = train(tmp_path, esm.format(tmp=tmp_path, esm=esm_folder), model, name=case.replace(" ", "_"))
    err = capsys.readouterr().err
    assert status == 2 and words in err and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()


def test_letters_the_tokenizer_lacks_are_read_as_unknown_counted_and_reported(tmp_path, plm_files, capsys):
    esm = plm_files.write_esm(tmp_path / "esm", tokens=[t for t in plm_files.tokens if t not in ("W", "Y")],
                              vocab_size=33)
    assert train(tmp_path, esm, "", epochs=1) == 0
    err = capsys.readouterr().err
    assert "letters the tokenizer of" in err and "(W, Y)" in err and "read as its unknown token" in err
