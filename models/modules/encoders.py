"""Encoders: inputs -> features (vectors, feature maps or per-position features)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from pyrosys.models.modules.sequential import LeanSequential


class MLPEncoder(LeanSequential):
    """Flatten, then Linear-ReLU-Dropout layers; `out_features` is the width of the last one."""

    def __init__(self, in_features: int, hidden_sizes: Sequence[int], dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden_sizes:
            layers += [nn.Linear(in_features, int(width)), nn.ReLU(), nn.Dropout(float(dropout))]
            in_features = int(width)
        super().__init__(*layers)
        self.out_features = in_features


class Conv2dEncoder(nn.Sequential):
    """Conv2d-(BatchNorm)-ReLU-MaxPool stages over images [N, C, H, W], then flattened features."""

    def __init__(self, image_shape: Sequence[int], channels: Sequence[int], kernel_size: int = 3,
                 batch_norm: bool = False, pool: bool = True) -> None:
        in_channels = image_shape[0]
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers.append(nn.Conv2d(in_channels, int(out_channels), kernel_size, padding=kernel_size // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(out_channels)))
            layers.append(nn.ReLU())
            if pool:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            in_channels = int(out_channels)
        layers.append(nn.Flatten())
        super().__init__(*layers)
        with torch.no_grad():
            self.out_features = int(self(torch.zeros(1, *image_shape)).shape[1])


class Conv1dEncoder(nn.Module):
    """Conv1d-ReLU stages over sequences [N, T, F] -> per-position features [N, T, C] (length kept).

    With `masks`, padded positions are zeroed after every stage, so padding never leaks into the answer.
    """

    def __init__(self, in_features: int, channels: Sequence[int], kernel_size: int = 5, dropout: float = 0.0) -> None:
        super().__init__()
        stages = []
        for out_channels in channels:
            stages.append(nn.Sequential(nn.Conv1d(in_features, int(out_channels), kernel_size,
                                                  padding=kernel_size // 2), nn.ReLU(), nn.Dropout(float(dropout))))
            in_features = int(out_channels)
        self.stages = nn.ModuleList(stages)
        self.out_features = in_features

    def forward(self, inputs: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        keep = masks.to(inputs.dtype).unsqueeze(1) if masks is not None else None
        features = inputs.transpose(1, 2)
        for stage in self.stages:
            features = stage(features * keep if keep is not None else features)
        if keep is not None:
            features = features * keep
        return features.transpose(1, 2)


class RNNEncoder(nn.Module):
    """An LSTM, GRU or plain RNN over sequences [N, T, F] -> per-position features [N, T, H]."""

    CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

    def __init__(self, in_features: int, hidden_size: int, num_layers: int = 1, cell: str = "lstm",
                 bidirectional: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.rnn = self.CELLS[cell.lower()](in_features, int(hidden_size), num_layers=int(num_layers),
                                            batch_first=True, bidirectional=bool(bidirectional),
                                            dropout=float(dropout) if int(num_layers) > 1 else 0.0)
        self.out_features = int(hidden_size) * (2 if bidirectional else 1)

    def forward(self, inputs: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Per-position features; with padding `masks`, each sequence is read only up to its length."""
        if masks is None:
            return self.rnn(inputs)[0]
        lengths = masks.sum(dim=1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
        features, _ = nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True,
                                                       total_length=inputs.shape[1])
        return features


class PositionalEncoding(nn.Module):
    """Adds Vaswani et al.'s sinusoidal position signal to features [N, T, D]."""

    def __init__(self, dim: int, max_length: int = 4096) -> None:
        super().__init__()
        position = torch.arange(max_length).unsqueeze(1)
        scale = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        table = torch.zeros(max_length, dim)
        table[:, 0::2] = torch.sin(position * scale)
        table[:, 1::2] = torch.cos(position * scale)[:, : dim // 2]
        self.register_buffer("table", table, persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.table[: features.shape[1]]


class TransformerEncoder(nn.Module):
    """Projection to `dim`, positional encoding, then Transformer encoder layers over [N, T, F]."""

    def __init__(self, in_features: int, dim: int, heads: int, layers: int, feedforward: int,
                 dropout: float = 0.1, max_length: int = 4096) -> None:
        super().__init__()
        self.projection = nn.Linear(in_features, int(dim))
        self.positions = PositionalEncoding(int(dim), max_length)
        layer = nn.TransformerEncoderLayer(int(dim), int(heads), int(feedforward), float(dropout), batch_first=True)
        self.layers = nn.TransformerEncoder(layer, int(layers), enable_nested_tensor=False)
        self.out_features = int(dim)

    def forward(self, inputs: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        padding = ~masks.bool() if masks is not None else None
        return self.layers(self.positions(self.projection(inputs)), src_key_padding_mask=padding)


class TokenEmbedding(nn.Embedding):
    """Token ids [N, T] -> vectors [N, T, D]; id 0 is padding."""

    def __init__(self, vocabulary_size: int, dim: int) -> None:
        super().__init__(int(vocabulary_size), int(dim), padding_idx=0)
        self.out_features = int(dim)


def masked_mean(features: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """Mean over positions [N, T, D] -> [N, D], counting only the positions a mask keeps."""
    if masks is None:
        return features.mean(dim=1)
    weights = masks.to(features.dtype).unsqueeze(-1)
    return (features * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def masked_max(features: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """Maximum over positions [N, T, D] -> [N, D], ignoring padded positions."""
    if masks is not None:
        features = features.masked_fill(~masks.bool().unsqueeze(-1), float("-inf"))
    return features.max(dim=1).values


class SequenceInput(nn.Module):
    """The entry of sequence models: token ids [N, T] through an embedding, or float features [N, T, F] as
    they are. Sized from the inputs' data definition (`kind: tokens` with a vocabulary, or `kind: sequence`)."""

    def __init__(self, inputs: Mapping, embedding_dim: int) -> None:
        super().__init__()
        if inputs.get("kind") == "tokens":
            self.embedding: nn.Module = TokenEmbedding(len(inputs["vocabulary"]), embedding_dim)
            self.out_features = int(embedding_dim)
        else:
            self.embedding = nn.Identity()
            self.out_features = int(inputs["shape"][-1])

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.embedding(inputs)
