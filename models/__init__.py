"""Built-in models (installed as pyrosys.models); importing this package registers them."""
from pyrosys.models.model import Model
from pyrosys.models.mlp import MLP
from pyrosys.models.lenet5 import LeNet5

__all__ = ["Model", "MLP", "LeNet5"]
