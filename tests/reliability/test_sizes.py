"""Sizes: every input too large to hold is refused at once, exit status 2 with one paragraph naming the file and
the key, no traceback and nothing written. YAML past its bounds (bytes, nesting, alias expansion, values), a
device or a pipe given as a file, a grid of too many runs: each answers well within a second, before any of it
is materialised. The time bounds below are hang guards, not benchmarks."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from pyrosys.configuration.loading import (YAML_MAX_ALIAS_VALUES, YAML_MAX_BYTES, YAML_MAX_CONFIGURATION_VALUES,
                                           YAML_MAX_DEPTH, dump_yaml, load_configuration, load_yaml)
from pyrosys.errors import ConfigError
from pyrosys.execution import grid_plan
from pyrosys.execution.grid_plan import MAX_RUNS, RUNS_CEILING, expand
from pyrosys.workers import grid_trainer, predictor, trainer

BASE = "problem: {name: Digits}\nmodel: {name: MLP, hidden_sizes: [16]}\ntraining: {seed: 5}\n"   # never trained
GRID = "grid_tasks: [{default_configs: exp.yaml}]\n"
HANG_GUARD_S = 10


def nested(depth: int) -> str:
    """A list nested `depth` levels deep, in flow style."""
    return "[" * depth + "1" + "]" * depth


def laughs(levels: int, width: int = 9) -> str:
    """A 'billion laughs' alias bomb: each level lists the one before `width` times."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * width)}]" for k in range(1, levels)]
    return "\n".join(lines) + "\n"


def oversized(path: Path) -> None:
    """A sparse file one byte over the limit, whose start is a valid configuration."""
    path.write_text(BASE)
    os.truncate(path, YAML_MAX_BYTES + 1)


def fifo(path: Path) -> None:
    os.mkfifo(path)


HUGE_SWEEP = GRID + "grid_search:\n" + "".join(f"  k{i}: {list(range(100))}\n" for i in range(4))     # 100**4 runs
JUST_OVER = GRID + ("grid_search: {training.seed: [1, 2]}\n"                                   # MAX_RUNS + 2 runs
                    f"grid_settings: {{experiment_repetitions: {MAX_RUNS // 2 + 1}}}\n")
TOO_MANY_VALUES = BASE.replace("[16]", "[" + ", ".join(["16"] * YAML_MAX_CONFIGURATION_VALUES) + "]")
GRID_IN = "--c {tmp}/grid.yaml --outdir {tmp}/out"

# name: (files, worker, argv, fragments the message must hold); {tmp} is the test's folder. A file's content
# is its text, or a function that makes it.
CORPUS = {
    # YAML past its bounds
    "deep_list": ({"exp.yaml": BASE + f"deep: {nested(5000)}\n"}, "trainer", "--c {tmp}/exp.yaml",
                  ["exp.yaml", "line 4", f"more than {YAML_MAX_DEPTH} levels"]),
    "deep_mapping": ({"exp.yaml": BASE + "deep: " + "{a: " * 300 + "1" + "}" * 300 + "\n"}, "trainer",
                     "--c {tmp}/exp.yaml", ["exp.yaml", "levels deep"]),
    "deep_through_aliases": ({"exp.yaml": BASE + f"a: &a {nested(20)}\nb: {nested(20).replace('1', '*a', 1)}\n"},
                             "trainer", "--c {tmp}/exp.yaml", ["exp.yaml", "levels deep"]),
    "billion_laughs": ({"exp.yaml": BASE + laughs(9)}, "trainer", "--c {tmp}/exp.yaml",
                       ["exp.yaml", "aliases", f"{YAML_MAX_ALIAS_VALUES:,} values"]),
    "mapping_bomb": ({"exp.yaml": BASE + "m0: &m0 {a: lol, b: lol, c: lol, d: lol}\n" + "".join(
        f"m{k}: &m{k} {{a: *m{k - 1}, b: *m{k - 1}, c: *m{k - 1}, d: *m{k - 1}}}\n" for k in range(1, 12))},
                     "trainer", "--c {tmp}/exp.yaml", ["exp.yaml", "aliases"]),
    "recursive_alias": ({"exp.yaml": BASE + "loop: &loop [1, *loop]\n"}, "trainer", "--c {tmp}/exp.yaml",
                        ["exp.yaml", "refers to the list or mapping that holds it"]),
    "too_many_values": ({"exp.yaml": TOO_MANY_VALUES}, "trainer", "--c {tmp}/exp.yaml",
                        ["exp.yaml", f"{YAML_MAX_CONFIGURATION_VALUES:,} values"]),
    "oversized_file": ({"exp.yaml": oversized}, "trainer", "--c {tmp}/exp.yaml", ["exp.yaml", "10 MB"]),
    "oversized_default_configs": ({"exp.yaml": "default_configs: big.yaml\n" + BASE, "big.yaml": oversized},
                                  "trainer", "--c {tmp}/exp.yaml", ["big.yaml", "10 MB"]),
    "deep_set_value": ({"exp.yaml": BASE}, "trainer", f"--c {{tmp}}/exp.yaml --set model.hidden_sizes={nested(200)}",
                       ["the command line", "model.hidden_sizes", "levels deep"]),
    "deep_set_key": ({"exp.yaml": BASE}, "trainer", "--c {tmp}/exp.yaml --set " + ".".join(["a"] * 200) + "=1",
                     ["the command line", "a.a.a", "levels deep"]),
    # devices and pipes, refused unread
    "dev_zero": ({}, "trainer", "--c /dev/zero", ["/dev/zero", "not a regular file"]),
    "fifo": ({"pipe.yaml": fifo}, "trainer", "--c {tmp}/pipe.yaml", ["pipe.yaml", "not a regular file"]),
    "fifo_in_default_configs": ({"exp.yaml": "default_configs: pipe.yaml\n" + BASE, "pipe.yaml": fifo}, "trainer",
                                "--c {tmp}/exp.yaml", ["exp.yaml", "default_configs", "pipe.yaml", "not a regular"]),
    "grid_dev_zero": ({}, "grid", "--c /dev/zero --outdir {tmp}/out", ["/dev/zero", "not a regular file"]),
    "grid_fifo": ({"pipe.yaml": fifo}, "grid", "--c {tmp}/pipe.yaml --outdir {tmp}/out",
                  ["pipe.yaml", "not a regular file"]),
    "grid_task_fifo": ({"grid.yaml": "grid_tasks: [{default_configs: pipe.yaml}]\n", "pipe.yaml": fifo}, "grid",
                       GRID_IN, ["grid.yaml", "grid_tasks[0].default_configs", "not a regular file"]),
    "predictor_config_dev_zero": ({}, "predictor", "--c /dev/zero", ["/dev/zero", "not a regular file"]),
    # other YAML files: grid files, grid plans, bundles
    "grid_alias_bomb": ({"grid.yaml": laughs(9) + GRID + "grid_search: {training.seed: *l8}\n", "exp.yaml": BASE},
                        "grid", GRID_IN, ["grid.yaml", "aliases"]),
    "grid_plan_alias_bomb": ({"old/grid.yaml": laughs(9) + "source: x\nruns: *l8\n"}, "grid", "--resume {tmp}/old",
                             ["grid.yaml", "aliases"]),
    "bundle_alias_bomb": ({"bundle/model.yaml": "class: x\n" + laughs(9), "in.csv": "a\n1\n"}, "predictor",
                          "--m {tmp}/bundle --input {tmp}/in.csv", ["model.yaml", "aliases"]),
    # grids of too many runs, counted before any is built
    "grid_huge_sweep": ({"grid.yaml": HUGE_SWEEP, "exp.yaml": BASE}, "grid", GRID_IN,
                        ["grid.yaml", "'grid_search'", "100,000,000 runs", f"{RUNS_CEILING:,}"]),
    "grid_huge_sweep_even_with_yes": ({"grid.yaml": HUGE_SWEEP, "exp.yaml": BASE}, "grid", GRID_IN + " --yes",
                                      ["grid.yaml", "100,000,000 runs"]),
    "grid_huge_repetitions": ({"grid.yaml": GRID + "grid_settings: {experiment_repetitions: 100000000}\n",
                               "exp.yaml": BASE}, "grid", GRID_IN,
                              ["grid.yaml", "grid_settings.experiment_repetitions", "100,000,000 runs"]),
    "grid_over_the_limit": ({"grid.yaml": JUST_OVER, "exp.yaml": BASE}, "grid", GRID_IN,
                            ["grid.yaml", f"{MAX_RUNS + 2:,} runs", f"than the {MAX_RUNS:,}", "--yes", "max_runs"]),
    "grid_over_its_max_runs": ({"grid.yaml": GRID + "grid_settings: {experiment_repetitions: 3, max_runs: 2}\n",
                                "exp.yaml": BASE}, "grid", GRID_IN, ["grid.yaml", "3 runs", "more than the 2 allowed"]),
    "grid_max_runs_over_the_ceiling": ({"grid.yaml": GRID + f"grid_settings: {{max_runs: {RUNS_CEILING + 1}}}\n",
                                        "exp.yaml": BASE}, "grid", GRID_IN,
                                       ["grid.yaml", "grid_settings.max_runs", f"{RUNS_CEILING:,}"]),
}
WORKERS = {"trainer": trainer.main, "grid": grid_trainer.main, "predictor": predictor.main}


@pytest.fixture(scope="module", autouse=True)
def imported():
    """Torch and Lightning imported once beforehand, so that the time a refusal takes is its own."""
    import pyrosys.workers.pipeline.build  # noqa: F401


@pytest.fixture(autouse=True)
def hang_guard():
    """A test that hangs (a pipe read, a bomb expanded) fails after a minute instead of holding the suite."""
    def stop(signum, frame):
        raise TimeoutError("the input was not refused within a minute")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def make(folder: Path, files: dict) -> None:
    """Each file in `folder`: its text, or what its function makes of its path."""
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        content(folder / name) if callable(content) else (folder / name).write_text(content)


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_an_input_too_large_is_refused_at_once_naming_file_and_key(case, tmp_path, capsys, monkeypatch):
    files, worker, argv, fragments = CORPUS[case]
    make(tmp_path, files)
    before = sorted(tmp_path.rglob("*"))
    monkeypatch.chdir(tmp_path)
    extra = ["--outdir", str(tmp_path / "experiments")] if worker == "trainer" else []
    started = time.monotonic()
    status = WORKERS[worker](argv.format(tmp=tmp_path).split() + extra)
    seconds = time.monotonic() - started
    error = capsys.readouterr().err.strip()
    assert status == 2, error
    assert error.startswith("Configuration error") and "\n" not in error and "Traceback" not in error
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    assert sorted(tmp_path.rglob("*")) == before                    # nothing written: no experiment, no grid folder
    assert seconds < HANG_GUARD_S, seconds


def grid_file(folder: Path, settings: str) -> Path:
    (folder / "exp.yaml").write_text(BASE)
    path = folder / "grid.yaml"
    path.write_text(GRID + settings)
    return path


def test_max_runs_raises_the_limit_and_the_plan_has_every_run(tmp_path):
    path = grid_file(tmp_path, f"grid_settings: {{experiment_repetitions: {MAX_RUNS + 1}, max_runs: {MAX_RUNS + 1}}}\n")
    plan = expand(path, seed=0)
    assert len(plan.runs) == MAX_RUNS + 1
    assert [run.seed for run in plan.runs[:2]] == [5, 6] and plan.runs[-1].repetition == MAX_RUNS


def test_yes_allows_a_grid_over_the_limit(tmp_path):
    path = grid_file(tmp_path, JUST_OVER.removeprefix(GRID))
    with pytest.raises(ConfigError, match="--yes"):
        expand(path)
    assert len(expand(path, allow_large=True).runs) == MAX_RUNS + 2


def test_no_permission_lifts_the_ceiling(tmp_path):
    path = grid_file(tmp_path, f"grid_settings: {{experiment_repetitions: {RUNS_CEILING + 1}}}\n")
    started = time.monotonic()
    with pytest.raises(ConfigError, match="one plan can hold") as refused:
        expand(path, allow_large=True)
    assert refused.value.key == "grid_settings.experiment_repetitions"
    assert time.monotonic() - started < HANG_GUARD_S


def test_a_folder_of_more_configs_than_allowed_needs_yes(tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.yaml").write_text(BASE)
    monkeypatch.setattr(grid_plan, "MAX_RUNS", 2)
    with pytest.raises(ConfigError, match="3 runs") as refused:
        expand(tmp_path)
    assert refused.value.key == "--c"
    assert len(expand(tmp_path, allow_large=True).runs) == 3


def test_an_alias_bomb_within_the_limit_loads_and_answers_fast(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(BASE + laughs(4, width=7))                       # aliases add 3,255 values, near the limit
    data = load_yaml(path)
    assert len(data["l3"]) == 7 and data["l3"][0][0][0] == data["l0"]
    started = time.monotonic()
    assert trainer.main(["--c", str(path), "--outdir", str(tmp_path / "experiments")]) == 2
    assert "unknown key 'l0'" in capsys.readouterr().err            # refused for its keys, not its size
    assert time.monotonic() - started < HANG_GUARD_S


def test_the_alias_limit_counts_the_values_aliases_add(tmp_path):
    def aliases(count: int) -> str:                                  # each *a adds a's 101 values
        return f"a: &a [{', '.join(['x'] * 100)}]\nb: [{', '.join(['*a'] * count)}]\n"

    count = YAML_MAX_ALIAS_VALUES // 101
    path = tmp_path / "aliases.yaml"
    path.write_text(aliases(count))
    assert len(load_yaml(path)["b"]) == count
    path.write_text(aliases(count + 1))
    with pytest.raises(ConfigError, match="aliases"):
        load_yaml(path)


def test_the_deepest_configuration_allowed_resolves(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(BASE + f"deep: {nested(YAML_MAX_DEPTH - 1)}\n")    # the file's mapping is the first level
    assert load_configuration([path]).tree["deep"] is not None       # OmegaConf's recursion holds at the limit
    path.write_text(BASE + f"deep: {nested(YAML_MAX_DEPTH)}\n")
    with pytest.raises(ConfigError, match="levels deep"):
        load_configuration([path])


def test_yaml_pyrosys_writes_holds_no_aliases():
    shared = [1, 2, 3]
    text = dump_yaml({"inputs": {"mean": shared}, "targets": {"mean": shared}})
    assert "&" not in text and "*" not in text
