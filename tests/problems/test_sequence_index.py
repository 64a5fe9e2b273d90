"""pyrosys.problems.sequence_index: a FASTA file's records found on disk by offset, read back exactly as the
in-memory parser reads them, rebuilt when the file changes, built once under concurrency, never left half written."""
from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
from pathlib import Path

import pytest

from pyrosys.errors import ConfigError
from pyrosys.problems import sequence_index
from pyrosys.problems.protein import read_fasta
from pyrosys.problems.sequence_index import SequenceIndex, default_folder

# a byte-order mark, CRLF line ends, wrapped sequences, blank lines, a header without a label, lower case
FASTA = (b"\xef\xbb\xbf>P1 label=membrane other=x\r\nMKTLLV\r\nILAG\r\n\r\n>P2 label=soluble\nmkdeer\n"
         b">P3\nXBZUOAC\n\n>  \nWW\n")


def fasta(tmp_path: Path, data: bytes = FASTA) -> Path:
    path = tmp_path / "seqs.fasta"
    path.write_bytes(data)
    return path


def test_every_record_is_read_back_through_the_index_as_the_in_memory_parser_reads_it(tmp_path):
    path = fasta(tmp_path)
    index = SequenceIndex.open(path, None, "label")
    whole = read_fasta(path, "label")
    assert len(index) == len(whole) == 4 and default_folder(path).is_dir()
    for row, expected in enumerate(whole):
        record = index.record(row)
        assert (record.identifier, record.label, record.line, record.parts) == \
            (expected.identifier, expected.label, expected.line, expected.parts)
        assert index.label(row) == (expected.label or "") and int(index.columns["lengths"][row]) == len(
            expected.sequence)
    assert index.all_labels() == ["membrane", "soluble", "", ""]


def test_a_changed_file_rebuilds_its_index_once_and_says_so(tmp_path, caplog):
    path = fasta(tmp_path)
    assert len(SequenceIndex.open(path, None, "label")) == 4
    path.write_bytes(FASTA + b">P5 label=soluble\nMKV\n")
    with caplog.at_level(logging.WARNING, logger=sequence_index.__name__):
        index = SequenceIndex.open(path, None, "label")
        again = SequenceIndex.open(path, None, "label")
    assert len(index) == len(again) == 5 and index.record(4).sequence == "MKV"
    assert [r.getMessage() for r in caplog.records if "no longer matches" in r.getMessage()] == [
        f"{path}: its index {default_folder(path)} no longer matches it (the file changed, or other parse settings): "
        "rebuilding the index"]


def test_a_file_changed_while_a_run_reads_it_is_refused(tmp_path):
    path = fasta(tmp_path)
    index = SequenceIndex.open(path, None, "label")
    path.write_bytes(FASTA.replace(b"MKTLLV", b"MKTLLVA"))
    with pytest.raises(ConfigError, match="the sequence file changed while it was being read"):
        index.record(0)


def test_a_full_disk_while_writing_the_index_leaves_nothing_and_says_what_to_do(tmp_path, monkeypatch):
    """A real full disk needs a small filesystem mounted (root); the failure is injected at the one writer."""
    path, folder = fasta(tmp_path), tmp_path / "elsewhere" / "index"
    written = []

    def full(target: Path, values) -> None:
        if written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(target)
        target.write_bytes(b"partial")

    monkeypatch.setattr(sequence_index, "write_array", full)
    with pytest.raises(ConfigError) as caught:
        SequenceIndex.open(path, folder, "label")
    error = caught.value
    assert error.file == str(path) and error.key == "problem.index_folder" and str(folder) in error.message
    assert "No space left on device" in error.message and "nothing of it was left" in error.message
    assert "Free space" in error.hint and written
    assert [p.name for p in folder.parent.iterdir()] == ["index.lock"]      # the lock file alone


def test_a_bad_letter_is_refused_with_its_line_and_column_and_no_index_is_left(tmp_path):
    path = fasta(tmp_path, b">P1 label=a\nMKTL\nMKJV\n")
    with pytest.raises(ConfigError, match="line 3, column 3: 'J' in P1 is not an amino-acid letter"):
        SequenceIndex.open(path, None, "label")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seqs.fasta", "seqs.fasta.pyrosys-index.lock"]


def test_bytes_that_are_not_utf8_are_refused_with_their_line_and_column(tmp_path):
    path = fasta(tmp_path, b">P1 label=\xe9\nMKTL\n")
    with pytest.raises(ConfigError, match=r"line 1, column 11: byte 0xe9 is not UTF-8 text"):
        SequenceIndex.open(path, None, "label")


def test_concurrent_openers_build_the_index_once(tmp_path, monkeypatch):
    path, builds = fasta(tmp_path), []
    real = sequence_index.scan
    monkeypatch.setattr(sequence_index, "scan", lambda *args: builds.append(1) or real(*args))
    found: list[int] = []
    threads = [threading.Thread(target=lambda: found.append(len(SequenceIndex.open(path, None, "label"))))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [4] * 4 and builds == [1]


def test_an_index_travels_to_worker_processes_by_its_folder(tmp_path):
    import pickle
    index = SequenceIndex.open(fasta(tmp_path), None, "label")
    copy = pickle.loads(pickle.dumps(index))
    assert len(pickle.dumps(index)) < 500 and copy.record(2).sequence == "XBZUOAC"


@pytest.mark.parametrize("change", ["rewrite", "truncate"])
def test_a_file_rewritten_or_truncated_after_it_was_opened_is_refused_on_the_next_read(tmp_path, change):
    path = fasta(tmp_path)
    index = SequenceIndex.open(path, None, "label")
    assert index.record(0).identifier == "P1"
    status = path.stat()
    if change == "rewrite":      # same size and mtime: only the parse shows the change
        path.write_bytes(FASTA.replace(b">P2 label=soluble\nmkdeer\n", b">P2\nMK\n>X\nMKDEERMKDEERMK\n"))
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
        with pytest.raises(ConfigError, match="record 1 at line 5 no longer reads as one record") as caught:
            index.record(1)
    else:
        os.truncate(path, 20)
        with pytest.raises(ConfigError, match="changed while it was being read") as caught:
            index.record(3)
    assert caught.value.file == str(path) and "the next run rebuilds the index" in caught.value.hint


def test_a_table_truncated_after_it_was_opened_is_refused_on_the_next_read(tmp_path):
    path = tmp_path / "seqs.csv"
    path.write_text("sequence,label\nMKTL,a\nMKVV,b\n")
    index = SequenceIndex.open(path, None, sequence_index.table_layout("sequence", "label", None))
    assert index.record(1).sequence == "MKVV"
    os.truncate(path, 20)
    with pytest.raises(ConfigError, match="changed while it was being read"):
        index.record(1)


def open_descriptors(path: Path) -> set[str]:
    """This process's open descriptors of `path`, or of any file under it where it is a folder (other tests'
    descriptors in the same process come and go, and are not counted)."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:         # the descriptor listdir itself held
            continue
        if target == str(path) or target.startswith(f"{path}{os.sep}"):
            found.add(name)
    return found


def test_open_read_close_cycles_leave_no_descriptor_open(tmp_path):
    """close() closes the sequence file; the index's memory-mapped columns go with the index itself."""
    path = fasta(tmp_path)
    SequenceIndex.open(path, None, "label").close()          # built once: the cycles below only read
    assert not open_descriptors(tmp_path)
    for _ in range(20):
        index = SequenceIndex.open(path, None, "label")
        assert index.record(1).sequence == "mkdeer" and len(open_descriptors(path)) == 1
        index.close()
        assert index.descriptor is None and not open_descriptors(path)
    del index
    assert not open_descriptors(tmp_path)         # the file, the index's columns and its lock
    index = SequenceIndex.open(path, None, "label")
    assert index.record(0).identifier == "P1" and len(open_descriptors(path)) == 1
    index.close()
    assert index.record(2).sequence == "XBZUOAC" and len(open_descriptors(path)) == 1    # a read opens it again
    del index                                                 # and dropping the index closes it
    assert not open_descriptors(tmp_path)         # the file, the index's columns and its lock


def test_an_index_folder_that_cannot_be_locked_is_refused_and_nothing_is_left(tmp_path):
    path, folder = fasta(tmp_path), tmp_path / "index"
    sequence_index.lock_path(folder).mkdir()          # a lock file that cannot be opened read-write
    with pytest.raises(ConfigError, match=r"the index folder .*index cannot be locked through .*index.lock") as caught:
        SequenceIndex.open(path, folder, "label")
    assert caught.value.key == "problem.index_folder" and "local disk" in caught.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.lock", "seqs.fasta"]


def test_a_filesystem_that_cannot_flock_is_refused_with_what_to_do(tmp_path, monkeypatch):
    """Lustre without -o flock answers ENOSYS: no local filesystem here does, so the one flock call is replaced."""
    def unsupported(descriptor: int, operation: int) -> None:
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    path = fasta(tmp_path)
    monkeypatch.setattr(sequence_index.fcntl, "flock", unsupported)
    with pytest.raises(ConfigError, match="cannot be locked .*Function not implemented") as caught:
        SequenceIndex.open(path, None, "label")
    assert "Lustre" in caught.value.hint and not default_folder(path).exists()


def test_a_rebuild_puts_the_new_index_in_place_before_the_old_is_removed(tmp_path, monkeypatch):
    """The old folder is renamed aside, the new one renamed into place, then the old removed: what the folder holds
    when the old one is removed is observed at that one call."""
    path = fasta(tmp_path)
    old = SequenceIndex.open(path, None, "label")
    path.write_bytes(FASTA + b">P5\nMKV\n")
    seen, real = [], sequence_index.shutil.rmtree

    def observed(target, *args, **kwargs):
        seen.append((Path(target).name, (default_folder(path) / "meta.json").exists()))
        return real(target, *args, **kwargs)

    monkeypatch.setattr(sequence_index.shutil, "rmtree", observed)
    new = SequenceIndex.open(path, None, "label")
    assert len(new) == 5 and len(old) == 4 and old.label(1) == "soluble"      # the old maps still read
    assert (f"{default_folder(path).name}.old-{os.getpid()}", True) in seen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seqs.fasta", "seqs.fasta.pyrosys-index",
                                                          "seqs.fasta.pyrosys-index.lock"]


def test_an_index_rebuilt_before_a_worker_maps_it_is_refused_there(tmp_path):
    import pickle
    path = fasta(tmp_path)
    sent = pickle.dumps(SequenceIndex.open(path, None, "label"))
    path.write_bytes(FASTA + b">P5\nMKV\n")
    assert len(SequenceIndex.open(path, None, "label")) == 5
    with pytest.raises(ConfigError, match="changed while the run read it .it was rebuilt for another") as caught:
        pickle.loads(sent)
    assert caught.value.key == "problem.index_folder" and "the next run rebuilds it" in caught.value.hint
    shutil.rmtree(default_folder(path))
    with pytest.raises(ConfigError, match="changed while the run read it .it cannot be read"):
        pickle.loads(sent)


def test_an_index_folder_shared_by_another_file_of_the_same_size_and_time_is_rebuilt(tmp_path, caplog):
    first, folder = fasta(tmp_path), tmp_path / "index"
    second = tmp_path / "other.fasta"
    second.write_bytes(FASTA.replace(b"P1", b"Q1"))
    status = first.stat()
    os.utime(second, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert SequenceIndex.open(first, folder, "label").record(0).identifier == "P1"
    with caplog.at_level(logging.WARNING, logger=sequence_index.__name__):
        index = SequenceIndex.open(second, folder, "label")
    assert index.record(0).identifier == "Q1" and index.meta["source"] == str(second.resolve())
    assert any("no longer matches" in r.getMessage() for r in caplog.records)
