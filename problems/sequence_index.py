"""SequenceIndex: where every record of a FASTA file lies, so that a file larger than memory is read a record at a time.

One streaming pass over the file writes, into an index folder (by default `<file>.pyrosys-index/` beside it),
numpy arrays of each record's byte offset and size, residue count and header line, and the records' labels (one
UTF-8 blob and the end of each label in it). The arrays are memory-mapped when read and a record is read with
`os.pread` and parsed by ProteinSequences' own FASTA parser, so resident memory does not grow with the file.
A CSV/TSV table is indexed alike, a row at a time (its split column too), read with the csv module through a
line-counting reader so that quoted fields holding line ends stay in their row; its layout (the columns read)
stands where a FASTA file's label key does.

`meta.json` holds the file's size and mtime_ns, the label key and the index's format: an index that no longer
matches its file is rebuilt (said once in the log, by the process that rebuilds it). The build runs under an
exclusive `flock` on a lock file beside the index folder (`<folder>.lock`, opened read-write and left there),
so concurrent DDP processes or grid runs build it once; it is written into a temporary folder renamed into place,
and a write that fails (a full disk) removes the temporary folder and is refused as a ConfigError: no partial
index is ever left. A folder that cannot be locked (NFS without lock support, Lustre without -o flock) is refused
as a ConfigError too.
"""
from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import os
import shutil
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pyrosys.errors import ConfigError

VERSION = 2
COLUMNS = ("offsets", "sizes", "lengths", "lines", "label_ends", "splits")
TABLE = "table:"        # the start of a table's layout (its columns) where a FASTA file has its label key
BOM = b"\xef\xbb\xbf"
# the bytes of amino-acid letters (either case); a line holding any other byte is checked by the parser
LETTERS = b"ACDEFGHIKLMNPQRSTVWYXBZUOacdefghiklmnpqrstvwyxbzuo"
INDEX_KEY = "problem.index_folder"
SIGNED = ("version", "size", "mtime_ns", "label_key", "source", "count")   # what a worker checks

log = logging.getLogger(__name__)


def default_folder(path: Path) -> Path:
    """The index folder of a sequence file when none is named: `<file>.pyrosys-index` beside it."""
    return path.with_name(path.name + ".pyrosys-index")


def signature(path: Path, label_key: str) -> dict:
    """What an index must match to be current: the file's size and mtime_ns, the label key, the format."""
    status = path.stat()
    return {"version": VERSION, "size": status.st_size, "mtime_ns": status.st_mtime_ns, "label_key": label_key}


def lock_path(folder: Path) -> Path:
    """The lock file of an index folder: `<folder>.lock` beside it (left there; it holds nothing)."""
    return folder.with_name(folder.name + ".lock")


@contextmanager
def locked(path: Path, folder: Path) -> Iterator[None]:
    """An exclusive flock on the index folder's lock file (opened read-write, as NFS's emulated flock needs) while
    the block runs; a filesystem that cannot lock (Lustre without -o flock) is refused as a ConfigError."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(lock_path(folder), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise lock_refused(path, folder, error) from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError as error:
            raise lock_refused(path, folder, error) from None
        yield
    finally:
        os.close(descriptor)            # releases the lock


def lock_refused(path: Path, folder: Path, error: OSError) -> ConfigError:
    """The refusal of an index folder whose lock file cannot be opened or locked."""
    return ConfigError(f"the index folder {folder} cannot be locked through {lock_path(folder)} "
                       f"({error.strerror or error})", file=str(path), key=INDEX_KEY,
                       hint="Name an index_folder on a local disk this user can write to (NFS without lock "
                            "support, or Lustre mounted without -o flock, cannot lock)")


def write_array(target: Path, values: np.ndarray) -> None:
    """One column of an index (the one place an index's arrays are written)."""
    with target.open("wb") as handle:
        np.save(handle, values)


def utf8(raw: bytes, path: Path, number: int) -> str:
    """A line's text, refused (line and column of the first bad byte) unless it is UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"line {number}, column {error.start + 1}: byte {raw[error.start]:#04x} is not UTF-8 text",
                          file=str(path), key="problem.path",
                          hint="Save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 OLD > NEW)") from None


class Scan:
    """The columns of an index gathered in one pass over a FASTA file (compact arrays, not Python objects)."""

    def __init__(self, path: Path, label_key: str) -> None:
        self.path, self.label_key = path, label_key
        self.columns = {name: array("q") for name in COLUMNS}
        self.labels = bytearray()
        self.start: int | None = None       # the byte offset of the open record's header
        self.residues, self.checked = 0, True

    def header(self, text: str, offset: int, number: int) -> None:
        """A record starts at `offset`: its header line (stripped) read at line `number`."""
        from pyrosys.problems.protein import fasta_header
        _, label, _ = fasta_header(text, len(self.columns["offsets"]), number, self.label_key)
        self.labels += (label or "").encode("utf-8")
        self.columns["offsets"].append(offset)
        self.columns["lines"].append(number)
        self.columns["label_ends"].append(len(self.labels))
        self.columns["splits"].append(-1)
        self.start, self.residues, self.checked = offset, 0, True

    def close(self, end: int) -> None:
        """The open record ends at byte `end`; a record with other bytes than letters is parsed and encoded
        by ProteinSequences' functions, which refuse a bad letter with its line and column."""
        if self.start is None:
            return
        self.columns["sizes"].append(end - self.start)
        if not self.checked:
            from pyrosys.problems.protein import encode
            record = read_record(self.path, self.start, end - self.start, self.columns["lines"][-1],
                                 len(self.columns["offsets"]) - 1, self.label_key)
            self.residues = len(encode(record, self.path, len(record.sequence)))
        self.columns["lengths"].append(self.residues)
        self.start = None


def table_layout(sequence_column: str, label_column: str, split_column: str | None) -> str:
    """What an index of a table is keyed on (where a FASTA file's is its label key): the columns it reads."""
    return TABLE + json.dumps([sequence_column, label_column, split_column])


def table_lines(path: Path, position: list[int]) -> Iterator[str]:
    """A table's lines as text (byte-order mark dropped), `position[0]` kept at the byte offset after the last."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            position[0] += len(raw)
            yield utf8(raw[len(BOM):] if number == 1 and raw.startswith(BOM) else raw, path, number)


def table_row(columns: list[str], fields: list[str]) -> dict:
    """A row's fields by column, as csv.DictReader gives them (missing ones None)."""
    return {**dict.fromkeys(columns), **dict(zip(columns, fields))}


def scan_table(path: Path, layout: str) -> Scan:
    """Every row's offset, size, residue count, line, label and split: one pass of the csv module over the table
    (quoted fields may hold line ends: a row's bytes run from the end of the row before to the end of its last)."""
    from pyrosys.problems.protein import SPLITS, check_columns, encode_array, table_delimiter, table_record
    found, position, (sequence_column, label_column, split_column) = Scan(path, layout), [0], json.loads(
        layout[len(TABLE):])
    reader = csv.reader(table_lines(path, position), delimiter=table_delimiter(path))
    try:
        found.table_columns = next(reader, [])
        check_columns(found.table_columns, path, sequence_column, label_column, split_column)
        start = position[0]
        for fields in reader:
            if fields:
                record = table_record(table_row(found.table_columns, fields), reader.line_num, sequence_column,
                                      label_column, split_column)
                found.labels += (record.label or "").encode("utf-8")
                for name, value in (("offsets", start), ("sizes", position[0] - start), ("lines", reader.line_num),
                                    ("lengths", len(encode_array(record, path, len(record.sequence)))),
                                    ("label_ends", len(found.labels)),
                                    ("splits", SPLITS.index(record.split) if record.split in SPLITS else -1)):
                    found.columns[name].append(value)
            start = position[0]
    except csv.Error as error:
        raise ConfigError(f"line {reader.line_num + 1}: the row that starts here cannot be read ({error})",
                          file=str(path), key="problem.path",
                          hint="Look for an unclosed quote (\") at or before this line: it runs one field on over "
                               "the lines after it") from None
    return found


def scan(path: Path, label_key: str) -> Scan:
    """Every record's offset, size, residue count, line and label: one streaming pass over the file."""
    if label_key.startswith(TABLE):
        return scan_table(path, label_key)
    found = Scan(path, label_key)
    offset = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            start = offset + (len(BOM) if number == 1 and raw.startswith(BOM) else 0)
            line = raw[start - offset:].strip()
            if line.startswith(b">"):
                found.close(start)
                found.header(utf8(line, path, number), start, number)
            elif line and found.start is None:
                from pyrosys.problems.protein import parse_fasta
                parse_fasta([utf8(line, path, number)], path, label_key, first_line=number)   # refuses it
            elif line:
                found.residues += len(line)
                found.checked = found.checked and not line.translate(None, LETTERS)
            offset += len(raw)
    found.close(offset)
    return found


def parse_record(data: bytes, path: Path, line: int, index: int, label_key: str) -> list:
    """The records in `data` (a record's bytes, from line `line`), parsed by ProteinSequences' FASTA parser."""
    from pyrosys.problems.protein import parse_fasta
    text = "\n".join(utf8(raw, path, line + number) for number, raw in enumerate(data.split(b"\n")))
    return list(parse_fasta(io.StringIO(text, newline=None), path, label_key, first_line=line, first_index=index))


def read_record(path: Path, offset: int, size: int, line: int, index: int, label_key: str) -> object:
    """Record `index` of a FASTA file (its bytes at `offset`), parsed by ProteinSequences' FASTA parser."""
    with path.open("rb") as handle:
        data = os.pread(handle.fileno(), size, offset)
    (record,) = parse_record(data, path, line, index, label_key)
    return record


def swap(temporary: Path, folder: Path) -> None:
    """Put the index built in `temporary` in place of `folder`: the old one renamed aside first and removed after,
    so that a reader finds either whole index (for the instant between the two renames, none)."""
    if not folder.exists():
        temporary.rename(folder)
        return
    old = folder.with_name(f"{folder.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    folder.rename(old)
    temporary.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def current(meta: dict, path: Path, label_key: str) -> bool:
    """Whether an index's meta matches `path` as it is now: size, mtime_ns, label key, format and the file itself."""
    expected = {**signature(path, label_key), "source": str(path.resolve())}
    return {key: meta.get(key) for key in expected} == expected


def build(path: Path, folder: Path, label_key: str) -> None:
    """Write the index of `path` into `folder`: built in a temporary folder, renamed into place; on a failed
    write (a full disk) the temporary folder is removed and the failure refused as a ConfigError."""
    temporary = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        found = scan(path, label_key)
        for name, values in found.columns.items():
            write_array(temporary / f"{name}.npy", np.frombuffer(values, dtype=np.int64))
        write_array(temporary / "labels.npy", np.frombuffer(bytes(found.labels), dtype=np.uint8))
        meta = {**signature(path, label_key), "source": str(path.resolve()), "count": len(found.columns["offsets"]),
                "columns": getattr(found, "table_columns", None)}
        (temporary / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        swap(temporary, folder)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise ConfigError(f"the index of the sequence file could not be written into {folder} "
                          f"({error.strerror or error}); nothing of it was left", file=str(path), key=INDEX_KEY,
                          hint="Free space on that disk (or let this user write there), or name a folder "
                               "elsewhere in problem.index_folder (about 40 bytes a sequence plus its label)") from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def mapped(target: Path) -> np.ndarray:
    """An index column memory-mapped (read whole where it is empty: an empty array cannot be mapped)."""
    try:
        return np.load(target, mmap_mode="r")
    except ValueError:
        return np.load(target)


class SequenceIndex:
    """The records of one FASTA file through its index: lengths, lines and labels in memory-mapped arrays,
    a record's text read with os.pread when asked for. Picklable into DataLoader workers (arrays re-mapped)."""

    def __init__(self, path: Path, folder: Path, label_key: str) -> None:
        self.path, self.folder, self.label_key = Path(path), Path(folder), label_key
        self.meta = json.loads((self.folder / "meta.json").read_text())
        self.columns = {name: mapped(self.folder / f"{name}.npy") for name in COLUMNS}
        self.labels = mapped(self.folder / "labels.npy")
        if any(len(values) != self.meta["count"] for values in self.columns.values()):
            raise ValueError(f"the index {self.folder} is incomplete")
        self.descriptor: tuple[int, int] | None = None     # (process id, file descriptor) of the open file

    @classmethod
    def open(cls, path: Path, folder: Path | None, label_key: str) -> SequenceIndex:
        """The index of `path`: built if there is none, rebuilt (said in the log) if its file has changed."""
        folder = Path(folder) if folder else default_folder(path)
        with locked(path, folder):
            try:
                index = cls(path, folder, label_key)
                if current(index.meta, path, label_key):
                    return index
                log.warning("%s: its index %s no longer matches it (the file changed, or other parse settings): "
                            "rebuilding the index", path, folder)
            except (OSError, ValueError, KeyError):
                pass
            build(path, folder, label_key)
            return cls(path, folder, label_key)

    def table_record(self, index: int) -> object:
        """Row `index` of a table (a protein.Record): its bytes read and parsed by the csv module."""
        from pyrosys.problems.protein import table_delimiter, table_record
        data, line = self.read_bytes(index)
        text = "\n".join(utf8(raw, self.path, line) for raw in data.split(b"\n"))
        rows = [fields for fields in csv.reader(io.StringIO(text, newline=""), delimiter=table_delimiter(self.path))
                if fields]
        if len(rows) != 1:
            raise self.changed(f"row {index} at line {line} no longer reads as one row")
        fields = rows[0]
        return table_record(table_row(self.meta["columns"], fields), line, *json.loads(self.label_key[len(TABLE):]))

    def __len__(self) -> int:
        return int(self.meta["count"])

    def __getstate__(self) -> dict:
        return {"path": self.path, "folder": self.folder, "label_key": self.label_key,
                "signature": {key: self.meta.get(key) for key in SIGNED}}

    def __setstate__(self, state: dict) -> None:
        """Map the index again in another process, refused if it is no longer the index that was sent."""
        try:
            self.__init__(state["path"], state["folder"], state["label_key"])
        except (OSError, ValueError, KeyError) as error:
            raise self.replaced(state, f"it cannot be read: {error}") from None
        if {key: self.meta.get(key) for key in SIGNED} != state["signature"]:
            raise self.replaced(state, "it was rebuilt for another version of the file")

    @staticmethod
    def replaced(state: dict, detail: str) -> ConfigError:
        """The refusal of an index that changed between the process that opened it and a worker it was sent to."""
        return ConfigError(f"the index {state['folder']} changed while the run read it ({detail})",
                           file=str(state["path"]), key=INDEX_KEY,
                           hint="Leave the sequence file and its index unchanged while a run reads them (another "
                                "run with other settings rebuilds a shared index_folder); the next run rebuilds it")

    def label(self, index: int) -> str:
        """Record `index`'s label as read from its header ('' where it has none)."""
        ends = self.columns["label_ends"]
        return bytes(self.labels[int(ends[index - 1]) if index else 0:int(ends[index])]).decode("utf-8")

    def all_labels(self) -> list[str]:
        """Every record's label, in file order."""
        text, ends = bytes(self.labels).decode("utf-8"), np.asarray(self.columns["label_ends"])
        if text.isascii():
            return [text[start:end] for start, end in zip(np.concatenate([[0], ends[:-1]]).tolist(), ends.tolist())]
        return [self.label(index) for index in range(len(self))]

    def changed(self, detail: str) -> ConfigError:
        """The refusal of a sequence file that changed since it was indexed (`detail`: how it was seen)."""
        return ConfigError(f"the sequence file changed while it was being read through its index ({detail})",
                           file=str(self.path), key="problem.path",
                           hint="Leave the file unchanged while a run reads it; the next run rebuilds the index")

    def open_file(self) -> int:
        """This process's descriptor of the sequence file, refused if the file changed since it was indexed."""
        if self.descriptor is None or self.descriptor[0] != os.getpid():
            descriptor = os.open(self.path, os.O_RDONLY)
            self.descriptor = (os.getpid(), descriptor)
        status = os.fstat(self.descriptor[1])
        if (status.st_size, status.st_mtime_ns) != (self.meta["size"], self.meta["mtime_ns"]):
            raise self.changed("its size or modification time differs")
        return self.descriptor[1]

    def close(self) -> None:
        """Close this process's descriptor of the sequence file (one inherited from another process is left to
        it); a later read opens it again."""
        descriptor, self.descriptor = getattr(self, "descriptor", None), None
        if descriptor is not None and descriptor[0] == os.getpid():
            os.close(descriptor[1])

    def __del__(self) -> None:
        self.close()

    def read_bytes(self, index: int) -> tuple[bytes, int]:
        """Record `index`'s bytes and line, checked against the index (the file unchanged, the read whole)."""
        offset, size, line = (int(self.columns[name][index]) for name in ("offsets", "sizes", "lines"))
        data = os.pread(self.open_file(), size, offset)
        if len(data) != size:
            raise self.changed(f"record {index} at byte {offset}: {len(data)} of its {size} bytes could be read")
        return data, line

    def record(self, index: int) -> object:
        """Record `index` (a protein.Record), read from the file and parsed."""
        if self.label_key.startswith(TABLE):
            return self.table_record(index)
        data, line = self.read_bytes(index)
        records = parse_record(data, self.path, line, index, self.label_key)
        if len(records) != 1:
            raise self.changed(f"record {index} at line {line} no longer reads as one record")
        return records[0]
