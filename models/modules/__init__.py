"""Reusable blocks, sorted by role: encoders turn inputs into features, decoders turn features back
into inputs or sequences, heads turn features into the answer of a task."""
from pyrosys.models.modules.decoders import MLPDecoder, PositionwiseDecoder
from pyrosys.models.modules.encoders import (Conv1dEncoder, Conv2dEncoder, MLPEncoder, PositionalEncoding,
                                             RNNEncoder, SequenceInput, TokenEmbedding, TransformerEncoder,
                                             masked_max, masked_mean)
from pyrosys.models.modules.heads import (ClassificationHead, RegressionHead, ResidueRegressionHead, head_for,
                                          output_size)

__all__ = ["MLPEncoder", "Conv2dEncoder", "Conv1dEncoder", "RNNEncoder", "TransformerEncoder",
           "PositionalEncoding", "TokenEmbedding", "SequenceInput", "masked_mean", "masked_max",
           "MLPDecoder", "PositionwiseDecoder",
           "ClassificationHead", "RegressionHead", "ResidueRegressionHead", "head_for", "output_size"]
