"""Built-in problems (installed as pyrosys.problems); importing this package registers them."""
from pyrosys.problems.problem import InMemoryProblem, Problem
from pyrosys.problems.manifest import LoadClass, LoadColumns, LoadNumpy, LoadTensor, Manifest
from pyrosys.problems.protein import ProteinSequences
from pyrosys.problems.recall import ReverseRecall, SerialRecall
from pyrosys.problems.scikit_learn import BreastCancer, Diabetes, Digits

__all__ = ["Problem", "InMemoryProblem", "Digits", "BreastCancer", "Diabetes", "SerialRecall", "ReverseRecall",
           "ProteinSequences", "Manifest", "LoadColumns", "LoadClass", "LoadNumpy", "LoadTensor"]
