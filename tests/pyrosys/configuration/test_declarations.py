"""pyrosys.configuration.declarations: a component's get_params() read from its source, without importing it."""
from __future__ import annotations

import sys

import pytest

from pyrosys.configuration.declarations import declared_params
from pyrosys.factory import component_group, installed_entry_points


@pytest.mark.parametrize("kind", ["model", "problem"])
def test_every_builtin_declaration_read_from_source_is_what_get_params_returns(kind):
    points = installed_entry_points(component_group(kind))
    assert points
    for point in points:
        assert declared_params(point.value) == point.load().get_params(), point.value


def test_a_computed_or_unreadable_declaration_reads_as_unknown(tmp_path, monkeypatch):
    (tmp_path / "lab_declared.py").write_text(
        "SIZE = 3\n\nclass Base:\n    @staticmethod\n    def get_params():\n        return {'a': 1}\n\n"
        "class Literal(Base):\n    @staticmethod\n    def get_params():\n        '''Doc.'''\n"
        "        return {**Base.get_params(), 'b': [2]}\n\n"
        "class Inherited(Base):\n    pass\n\n"
        "class Computed(Base):\n    @staticmethod\n    def get_params():\n        return {'c': SIZE}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert declared_params("lab_declared:Literal") == {"a": 1, "b": [2]}
    assert declared_params("lab_declared:Inherited") == {"a": 1}
    assert declared_params("lab_declared:Computed") is None
    assert declared_params("lab_declared:Absent") is None and declared_params("no_such_lab.models:Net") is None
    assert "lab_declared" not in sys.modules
