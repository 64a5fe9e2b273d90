"""Built-in models (installed as pyrosys.models); importing this package registers them."""
from pyrosys.factory import Registry

# the kind this package declares: `model: {name: ...}` names a subclass of Model
MODELS = Registry("model", base="pyrosys.models.model:Model", packages=("pyrosys.models",))

# the built-in models register themselves as they are imported
from pyrosys.models.model import Model
from pyrosys.models.mlp import MLP
from pyrosys.models.lenet5 import LeNet5
from pyrosys.models.simple_cnn import SimpleCNN
from pyrosys.models.sequence_rnn import SequenceRNN
from pyrosys.models.transformer_classifier import TransformerClassifier
from pyrosys.models.protein_cnn import ProteinCNN
from pyrosys.models.plm_classifier import PLMClassifier
from pyrosys.models.autoencoder import Autoencoder

__all__ = ["MODELS", "Model", "MLP", "LeNet5", "SimpleCNN", "SequenceRNN", "TransformerClassifier", "ProteinCNN",
           "PLMClassifier", "Autoencoder"]
