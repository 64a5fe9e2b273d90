"""EmbeddingCache: each sequence's features from a frozen encoder, computed once and kept on disk for every run.

A cache folder belongs to one encoder's weights (cache.json holds their SHA-256; another encoder's run is
refused). Under it, one folder per representation (`layer-1_mean`, `layer-1_residues`, ...) holds shards:
safetensors files of {sequence hash: features}, each written whole under a temporary name and renamed, and
each stamped with the weights' SHA-256 (a shard of other weights is never served). Runs that fill the
cache at once take turns through a lock on the folder, so a grid computes each embedding once.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from pyrosys.atomic import atomic_path, write_text_atomic
from pyrosys.errors import ConfigError

MANIFEST = "cache.json"
LOCK = ".lock"
log = logging.getLogger("pyrosys.models")


def sequence_key(tokens: torch.Tensor) -> str:
    """The cache key of one sequence: the SHA-256 of its encoder token ids (padding left out)."""
    return hashlib.sha256(tokens.detach().cpu().to(torch.int32).numpy().tobytes()).hexdigest()


class EmbeddingCache:
    """Features of sequences by (weights, layer, representation, sequence), in shards under one folder."""

    def __init__(self, folder: str | Path, weights_sha256: str, representation: str, source: str,
                 key: str = "model.embeddings.cache") -> None:
        self.folder, self.weights, self.source, self.key = Path(folder), weights_sha256, source, key
        self.part = self.folder / representation
        self.index: dict[str, Path] = {}          # sequence key -> shard holding it
        self.handles: dict[Path, object] = {}
        self.pending: dict[str, torch.Tensor] = {}

    def check(self) -> None:
        """Refuse a folder that holds another encoder's embeddings, or is no cache; reads, writes nothing."""
        manifest = self.folder / MANIFEST
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError("the embedding cache is a file, not a folder", file=str(self.folder), key=self.key)
        if not manifest.is_file():
            if self.folder.is_dir() and any(p.name != LOCK for p in self.folder.iterdir()):
                raise ConfigError("this folder is not an embedding cache (it holds other files and no "
                                  f"{MANIFEST})", file=str(self.folder), key=self.key,
                                  hint="Name an empty or new folder for the cache")
            return
        try:
            owner = json.loads(manifest.read_text()).get("weights_sha256")
        except (OSError, ValueError, AttributeError):
            owner = None
        if owner != self.weights:
            raise ConfigError(f"this embedding cache belongs to other encoder weights (SHA-256 {str(owner)[:12]}..., "
                              f"not {self.weights[:12]}... of {self.source}); its embeddings would be wrong here",
                              file=str(self.folder), key=self.key,
                              hint=f"Clear it (rm -r {self.folder}) or name another folder for this encoder")

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Exclusive use of the folder while filling it (other runs wait, then find what this one computed)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = self.folder / MANIFEST
        with open(self.folder / LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.check()
                if not manifest.is_file():
                    write_text_atomic(manifest, json.dumps({"weights_sha256": self.weights, "encoder": self.source},
                                                           indent=1) + "\n")
                self.part.mkdir(exist_ok=True)
                self.refresh()
                yield
                self.flush()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def refresh(self) -> None:
        """Index the shards written since the last look (by any run); skip those of other weights or damaged."""
        if not self.part.is_dir():
            return
        for shard in sorted(self.part.glob("*.safetensors")):
            if shard in self.handles:
                continue
            try:
                handle = safe_open(str(shard), framework="pt")
                stamp = (handle.metadata() or {}).get("weights_sha256")
            except (SafetensorError, OSError) as error:
                log.warning("embedding cache: the shard %s is damaged and was skipped (%s)", shard, error)
                continue
            if stamp != self.weights:
                log.warning("embedding cache: the shard %s holds other weights' embeddings and is never served", shard)
                continue
            self.handles[shard] = handle
            self.index.update({name: shard for name in handle.keys()})

    def get(self, name: str) -> torch.Tensor | None:
        """The features of one sequence key, or None."""
        if name in self.pending:
            return self.pending[name]
        shard = self.index.get(name)
        return None if shard is None else self.handles[shard].get_tensor(name)

    def put(self, name: str, features: torch.Tensor) -> None:
        """Keep one sequence's features; written with the next flush."""
        self.pending[name] = features.detach().cpu().contiguous()

    def flush(self) -> None:
        """Write the pending features as one new shard (whole, or not at all)."""
        if not self.pending:
            return
        if not (self.folder / MANIFEST).is_file():      # a new cache: made, and checked, in the folder's turn
            with self.turn():
                return
        shard = self.part / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.safetensors"
        with atomic_path(shard) as temporary:
            save_file(self.pending, str(temporary), metadata={"weights_sha256": self.weights, "encoder": self.source})
        self.pending = {}
        self.refresh()

    def fill(self, batches: Iterable[tuple[list[str], Callable[[list[int]], list[torch.Tensor]]]]) -> int:
        """Compute what the cache lacks, batch by batch, in the folder's turn: each batch is (its keys, a
        function giving the features of the rows asked for). Returns how many were computed."""
        computed = 0
        with self.turn():
            for names, compute in batches:
                rows = [i for i, name in enumerate(names) if self.get(name) is None and name not in names[:i]]
                if rows:
                    for row, features in zip(rows, compute(rows)):
                        self.put(names[row], features)
                    computed += len(rows)
                if len(self.pending) >= 4096:
                    self.flush()
        return computed
