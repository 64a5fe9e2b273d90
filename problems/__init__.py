"""Built-in problems (installed as pyrosys.problems); importing this package registers them."""
from pyrosys.factory import Registry

# the kinds this package declares: `problem: {name: ...}` names a Problem, a manifest's column a Loader
PROBLEMS = Registry("problem", base="pyrosys.problems.problem:Problem", packages=("pyrosys.problems",))
LOADERS = Registry("loader", base="pyrosys.problems.manifest:Loader", packages=("pyrosys.problems",))

# the built-in problems register themselves as they are imported
from pyrosys.problems.problem import FileProblem, InMemoryProblem, Problem
from pyrosys.problems.manifest import LoadClass, LoadColumns, LoadNumpy, LoadTensor, Manifest
from pyrosys.problems.protein import ProteinSequences
from pyrosys.problems.benchmark import ProteinBenchmark
from pyrosys.problems.recall import ReverseRecall, SerialRecall
from pyrosys.problems.scikit_learn import BreastCancer, Diabetes, Digits

__all__ = ["PROBLEMS", "LOADERS", "Problem", "InMemoryProblem", "FileProblem", "Digits", "BreastCancer", "Diabetes",
           "SerialRecall", "ReverseRecall",
           "ProteinSequences", "ProteinBenchmark", "Manifest", "LoadColumns", "LoadClass", "LoadNumpy", "LoadTensor"]
