"""Built-in models (installed as pyrosys.models); importing this package registers them."""
from pyrosys.models.model import Model
from pyrosys.models.mlp import MLP
from pyrosys.models.lenet5 import LeNet5
from pyrosys.models.simple_cnn import SimpleCNN
from pyrosys.models.sequence_rnn import SequenceRNN
from pyrosys.models.transformer_classifier import TransformerClassifier
from pyrosys.models.protein_cnn import ProteinCNN
from pyrosys.models.autoencoder import Autoencoder

__all__ = ["Model", "MLP", "LeNet5", "SimpleCNN", "SequenceRNN", "TransformerClassifier", "ProteinCNN",
           "Autoencoder"]
