"""ProteinBenchmark: real labelled protein sets shipped inside the aaanalysis and modlamp wheels, offline.

The files are read out of the installed packages without importing them: aaanalysis pins recent pandas,
packaging and Pillow and imports a heavy scientific stack, modlamp imports matplotlib; PyroSys needs
neither, only their data files (`pip install "pyrosys[benchmarks]"` installs both). The packages' folders
are found with `importlib.util.find_spec`, which does not run their code.

    python -m pyrosys.problems.benchmark SEQ_SOLUBLE out.csv --seed 0    # or out.fasta: a split column / key
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from pyrosys.configuration.constraints import Integer, OneOf
from pyrosys.errors import ConfigError
from pyrosys.factory import register
from pyrosys.problems.problem import FRACTIONS, InMemoryProblem, read_rows, read_text
from pyrosys.problems.protein import BATCHING, SPLITS, ProteinSequences, Record
from pyrosys.problems.scikit_learn import split_indices

EXTRA = 'pip install "pyrosys[benchmarks]"'


class BenchmarkSet(NamedTuple):
    """Where a set lives in its package, and what it asks."""

    package: str
    file: str             # relative to the package's folder
    task: str
    source: str           # who published it (aaanalysis's Overview.tsv; modlamp's load_* docstrings)


AAANALYSIS, MODLAMP = "aaanalysis/_data/benchmarks", "modlamp/data"
SETS: dict[str, BenchmarkSet] = {
    "SEQ_SOLUBLE": BenchmarkSet("aaanalysis", "SEQ_SOLUBLE.tsv", "classification", "SOLpro, Magnan et al., 2009"),
    "SEQ_CAPSID": BenchmarkSet("aaanalysis", "SEQ_CAPSID.tsv", "classification", "VIRALpro, Galiez et al., 2016"),
    "SEQ_TAIL": BenchmarkSet("aaanalysis", "SEQ_TAIL.tsv", "classification", "VIRALpro, Galiez et al., 2016"),
    "SEQ_DISULFIDE": BenchmarkSet("aaanalysis", "SEQ_DISULFIDE.tsv", "classification", "Dipro, Cheng et al., 2006"),
    "AMPvsUniProt": BenchmarkSet("modlamp", "AMPvsUniProt.csv", "classification", "modlamp, Müller et al., 2017"),
    "AMPvsTM": BenchmarkSet("modlamp", "AMPvsTMset.csv", "classification", "Schneider et al., 2016"),
    "ACPvsRandom": BenchmarkSet("modlamp", "ACP_CancPPD_vs_Random.csv", "classification", "CancerPPD; modlamp"),
    "AA_CASPASE3": BenchmarkSet("aaanalysis", "AA_CASPASE3.tsv", "residue_classification",
                                "PROSPERous, Song et al., 2018"),
    "AA_FURIN": BenchmarkSet("aaanalysis", "AA_FURIN.tsv", "residue_classification", "PROSPERous, Song et al., 2018"),
    "AA_MMP2": BenchmarkSet("aaanalysis", "AA_MMP2.tsv", "residue_classification", "PROSPERous, Song et al., 2018"),
    "AA_SA": BenchmarkSet("aaanalysis", "AA_SA.tsv", "residue_classification", "PROSPERous, Song et al., 2018"),
    "AA_RNABIND": BenchmarkSet("aaanalysis", "AA_RNABIND.tsv", "residue_classification",
                               "GMKSVM-RU, Yang et al., 2021"),
}


def set_file(name: str) -> Path:
    """The data file of a set inside its installed package, refused when the package is not installed."""
    chosen = SETS[name]
    try:
        spec = importlib.util.find_spec(chosen.package)        # finds the folder; runs none of the package's code
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    inside = AAANALYSIS.partition("/")[2] if chosen.package == "aaanalysis" else MODLAMP.partition("/")[2]
    for folder in folders:
        path = Path(folder, inside, chosen.file)
        if path.is_file():
            return path
    where = f"its package {chosen.package} is not installed" if not folders else \
        f"its package {chosen.package} ({folders[0]}) holds no {inside}/{chosen.file}"
    raise ConfigError(f"the benchmark set {name} cannot be read: {where}", key="problem.set",
                      hint=f"Install the benchmark data: {EXTRA} (aaanalysis==1.1.0, modlamp==4.3.3)")


def read_aaanalysis(path: Path) -> list[Record]:
    """Records of an aaanalysis benchmark table (columns entry, gene, sequence, label; tab-separated)."""
    columns, rows = read_rows(path, key="problem.set", delimiter="\t")
    if not {"entry", "sequence", "label"} <= set(columns):
        raise ConfigError(f"the table has columns {', '.join(columns)}, not entry, sequence and label",
                          file=str(path), key="problem.set", hint=f"Reinstall the benchmark data: {EXTRA}")
    # SEQ_DISULFIDE marks a chain break with '!' in 10 sequences: read as X, the unknown residue
    return [Record(row["entry"] or f"row {number}", (row["label"] or "").strip(), None, number,
                   [((row["sequence"] or "").strip().replace("!", "X"), number)], "sequence")
            for number, row in rows]


def read_modlamp(path: Path) -> list[Record]:
    """Records of a modlamp data file: a first line `count,features,name0,name1`, then `sequence,label` rows
    (as modlamp.datasets.load_AMPvsTM and its siblings read them: split at the comma, each side stripped)."""
    records = []
    for number, line in enumerate(io.StringIO(read_text(path, key="problem.set")), start=1):
        if number == 1 or not line.strip():
            continue
        sequence, comma, label = line.strip().partition(",")
        if not comma:
            raise ConfigError(f"line {number}: no 'sequence,label' pair", file=str(path), key="problem.set",
                              hint=f"Reinstall the benchmark data: {EXTRA}")
        records.append(Record(f"{path.stem}_{number - 1}", label.strip(), None, number, [(sequence.strip(), number)],
                              "sequence"))
    return records


def read_set(name: str) -> tuple[list[Record], Path]:
    """A set's records (labels as their files write them) and the file they were read from."""
    path = set_file(name)
    records = read_aaanalysis(path) if SETS[name].package == "aaanalysis" else read_modlamp(path)
    for record in records:
        if not record.sequence or not record.label:
            raise ConfigError(f"line {record.line}: {record.identifier} has no sequence or no label", file=str(path),
                              key="problem.set", hint=f"Reinstall the benchmark data: {EXTRA}")
    return records, path


@register("problem")
class ProteinBenchmark(ProteinSequences):
    """A published protein benchmark set read from its installed wheel, split 70/10/20 by the seed."""

    path_params = ()          # the set names its file

    @staticmethod
    def get_params() -> dict:
        return {**InMemoryProblem.get_params(),
                "set": "SEQ_SOLUBLE",          # sequence sets SEQ_* and *vs*; residue sets AA_*
                "fractions": [0.7, 0.1, 0.2],  # train, val, test: one seeded permutation of the set
                "max_length": 1024,            # longer sequences (and their residue labels) are truncated
                "batching": None}              # as ProteinSequences's: null, or {by: length, max_tokens: N}

    @staticmethod
    def constraints() -> dict:
        return {**InMemoryProblem.constraints(), "fractions": FRACTIONS, "max_length": Integer(low=1),
                "batching": BATCHING,
                "set": OneOf("SEQ_SOLUBLE", "SEQ_CAPSID", "SEQ_TAIL", "SEQ_DISULFIDE", "AMPvsUniProt", "AMPvsTM",
                             "ACPvsRandom", "AA_CASPASE3", "AA_FURIN", "AA_MMP2", "AA_SA", "AA_RNABIND")}

    def __init__(self, params: Mapping, phases: Mapping[str, Mapping] | None = None) -> None:
        chosen = SETS[params["set"]]
        # what ProteinSequences reads from its parameters, fixed by the set (none of it is a parameter here)
        fixed = {"path": str(set_file(params["set"])), "task": chosen.task, "sequence_column": "sequence",
                 "label_column": "label", "split_column": None, "standardize": False,
                 "classes": None}
        super().__init__({**params, **fixed}, phases)

    def labels_key(self) -> str:
        return "problem.set"

    def splits_key(self) -> str:
        return "problem.fractions"

    def read(self) -> list[Record]:
        return read_set(self.params["set"])[0]


def export(name: str, out: Path, seed: int, fractions: list[float]) -> int:
    """Write a set with a seeded split column (CSV: id,sequence,label,split; FASTA: `>id label=.. split=..`),
    the split ProteinBenchmark draws from the same seed; returns the number of records."""
    records, _ = read_set(name)
    split = {int(index): part for part, indices in zip(SPLITS, split_indices(len(records), fractions, seed))
             for index in indices}
    if out.suffix.lower() in (".fasta", ".fa", ".faa", ".fas"):
        text = "".join(f">{r.identifier} label={r.label} split={split[i]}\n{r.sequence}\n"
                       for i, r in enumerate(records))
    else:
        text = "id,sequence,label,split\n" + "".join(f'{r.identifier},{r.sequence},"{r.label}",{split[i]}\n'
                                                     for i, r in enumerate(records))
    out.write_text(text, encoding="utf-8")
    return len(records)


def main(argv: list[str] | None = None) -> int:
    """`python -m pyrosys.problems.benchmark SET OUT.csv|OUT.fasta --seed 0`: export a set with its split."""
    parser = argparse.ArgumentParser(prog="python -m pyrosys.problems.benchmark", description=main.__doc__)
    parser.add_argument("set", help=f"one of {', '.join(SETS)}")
    parser.add_argument("out", type=Path, help="a .csv or .fasta file to write")
    parser.add_argument("--seed", type=int, default=0, help="the split's seed (ProteinBenchmark's problem.seed)")
    args = parser.parse_args(argv)
    try:
        if args.set not in SETS:
            raise ConfigError(f"there is no benchmark set {args.set!r}", key="set",
                              hint="Known, nearest first: " + ", ".join(nearest_sets(args.set)))
        count = export(args.set, args.out, args.seed, ProteinBenchmark.get_params()["fractions"])
    except ConfigError as error:
        print(error.paragraph(), file=sys.stderr)
        return 2
    print(f"{args.out}: {count} records of {args.set}, split 70/10/20 by seed {args.seed}")
    return 0


def nearest_sets(name: str) -> list[str]:
    """Every set name, the nearest to `name` first."""
    from difflib import SequenceMatcher

    return sorted(SETS, key=lambda known: -SequenceMatcher(None, name.lower(), known.lower()).ratio())


if __name__ == "__main__":
    sys.exit(main())
