"""pyrosys.configuration.declarations: a component's get_params() and constraints(), and the names of the losses
and metrics, read from source without importing it."""
from __future__ import annotations

import sys

import pytest

from pyrosys.configuration.constraints import Integer, ListOf, declared_constraints
from pyrosys.configuration.declarations import declared_names, declared_params, read_constraints
from pyrosys.factory import component_group, installed_entry_points

LAB = '''\
from pyrosys.configuration.constraints import Integer, ListOf
SIZE = 3
TOP = 2**8 - 1
SIZES = ListOf(Integer(low=1, high=TOP))
MOVED = 1
MOVED = 2

class Base:
    @staticmethod
    def get_params():
        return {'a': 1}

    @staticmethod
    def constraints():
        return {'a': Integer(low=-SIZE)}

class Literal(Base):
    @staticmethod
    def get_params():
        """Doc."""
        return {**Base.get_params(), 'b': [2], 'c': SIZE}

    @staticmethod
    def constraints():
        return {**Base.constraints(), 'b': SIZES}

class Inherited(Base):
    pass

class Computed(Base):
    @staticmethod
    def get_params():
        return {'c': len('abc')}

    @staticmethod
    def constraints():
        return {'c': Integer(low=len('a'))}

class Reassigned(Base):
    @staticmethod
    def get_params():
        return {'c': MOVED}

    @staticmethod
    def constraints():
        return {'c': dict(low=1)}
'''


@pytest.mark.parametrize("kind", ["model", "problem"])
def test_every_builtin_declaration_read_from_source_is_what_get_params_returns(kind):
    points = installed_entry_points(component_group(kind))
    assert points
    for point in points:
        assert declared_params(point.value) == point.load().get_params(), point.value


@pytest.mark.parametrize("kind", ["model", "problem"])
def test_every_builtin_constraints_read_from_source_are_what_constraints_returns(kind):
    declaring = [point for point in installed_entry_points(component_group(kind))
                 if declared_constraints(point.load())]
    assert declaring
    for point in declaring:
        assert read_constraints(point.value) == declared_constraints(point.load()), point.value


def test_the_loss_and_metric_names_read_from_source_are_the_tables_keys():
    from pyrosys.objectives import LOSSES, METRICS

    assert declared_names("pyrosys.objectives", "LOSSES") == list(LOSSES)
    assert declared_names("pyrosys.objectives", "METRICS") == list(METRICS)


def test_a_computed_or_unreadable_declaration_reads_as_unknown(tmp_path, monkeypatch):
    (tmp_path / "lab_declared.py").write_text(LAB)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert declared_params("lab_declared:Literal") == {"a": 1, "b": [2], "c": 3}
    assert read_constraints("lab_declared:Literal") == {"a": Integer(low=-3), "b": ListOf(Integer(low=1, high=255))}
    assert read_constraints("lab_declared:Literal") != {"a": Integer(low=-3), "b": ListOf(Integer(low=1))}
    assert declared_params("lab_declared:Inherited") == {"a": 1}
    assert read_constraints("lab_declared:Inherited") == {"a": Integer(low=-3)}
    for unknown in ("Computed", "Reassigned"):
        assert declared_params(f"lab_declared:{unknown}") is None
        assert read_constraints(f"lab_declared:{unknown}") is None
    assert declared_params("lab_declared:Absent") is None and declared_params("no_such_lab.models:Net") is None
    assert "lab_declared" not in sys.modules
