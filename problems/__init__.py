"""Built-in problems (installed as pyrosys.problems); importing this package registers them."""
from pyrosys.problems.problem import InMemoryProblem, Problem
from pyrosys.problems.digits import Digits

__all__ = ["Problem", "InMemoryProblem", "Digits"]
