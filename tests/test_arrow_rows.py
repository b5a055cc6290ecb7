"""The writers' own rows-to-Arrow conversion (``writers.arrow_rows``): the same table as
``pa.Table.from_pylist`` for every writer's schema, on random rows, and no pandas import
in a process that generates a dataset."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spatial_ssrl.writers import canonical, easyr1, trl, verl
from spatial_ssrl.writers.arrow_rows import rows_to_table

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
SCHEMAS = {"canonical": canonical.SCHEMA, "easyr1": easyr1.SCHEMA, "trl": trl.SCHEMA, "verl": verl.SCHEMA}


def values_of(typ: pa.DataType) -> st.SearchStrategy:
    """Python values ``from_pylist`` takes for ``typ`` (and some it refuses: lone
    surrogates in text, floats and bools for int64), nulls included."""
    if pa.types.is_string(typ):
        inner = st.text(max_size=12)  # surrogates included: both sides must refuse them
    elif pa.types.is_binary(typ):
        inner = st.binary(max_size=40)
    elif pa.types.is_int64(typ):
        inner = st.one_of(st.integers(-(2**63), 2**63 - 1), st.booleans(), st.floats(allow_nan=False, width=32))
    elif pa.types.is_list(typ):
        inner = st.lists(values_of(typ.value_type), max_size=4)
    elif pa.types.is_struct(typ):
        inner = st.fixed_dictionaries({}, optional={typ.field(i).name: values_of(typ.field(i).type)
                                                    for i in range(typ.num_fields)})
    else:  # pragma: no cover - a writer schema grew a type this test does not know
        raise AssertionError(f"no strategy for {typ}")
    return st.one_of(st.none(), inner)


def rows_of(schema: pa.Schema) -> st.SearchStrategy:
    row = st.fixed_dictionaries({}, optional={f.name: values_of(f.type) for f in schema})
    return st.lists(row, max_size=6)


def _outcome(fn):
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 (compared by type: the same refusal on both sides)
        return type(exc)


@pytest.mark.parametrize("fmt", sorted(SCHEMAS))
@FUZZ
@given(data=st.data())
def test_rows_to_table_equals_from_pylist(fmt, data):
    schema = SCHEMAS[fmt]
    rows = data.draw(rows_of(schema))
    ours = _outcome(lambda: rows_to_table(rows, schema))
    theirs = _outcome(lambda: pa.Table.from_pylist(rows, schema=schema))
    if isinstance(theirs, pa.Table):
        assert isinstance(ours, pa.Table), f"refused rows Arrow takes: {ours}"
        ours.validate(full=True)
        assert ours.schema == theirs.schema
        assert ours.equals(theirs)
    else:
        assert ours is theirs or (isinstance(ours, type) and issubclass(ours, Exception)), ours


def test_real_rows_with_nulls_equal_from_pylist():
    rows = [
        {"id": "a", "task": "shuffle", "images": [{"bytes": b"\x89PNG" * 100, "path": "x.png"}],
         "problem": "é ⟨image⟩", "options": None, "depth_source": None, "meta": "{}"},
        {"id": "b", "task": "position", "images": [], "options": ["A", None, "C"], "source": None},
        {},
    ]
    table = rows_to_table(rows, canonical.SCHEMA)
    assert table.equals(pa.Table.from_pylist(rows, schema=canonical.SCHEMA))
    assert table.column("images").to_pylist()[0][0]["bytes"] == b"\x89PNG" * 100
    assert table.column("options").to_pylist() == [None, ["A", None, "C"], None]


def test_generating_a_dataset_never_imports_pandas(tmp_path):
    """pyarrow's ``from_pylist`` imported pandas on the first row group a run wrote: half
    a second and ~35 MB in the middle of the run. Both the in-process path and the
    parent of a worker pool must now get through a whole run without it."""
    code = (
        "import sys\n"
        "from spatial_ssrl.cli import main\n"
        "for w in ('1', '2'):\n"
        f"    sys.argv = ['ssrl', 'generate', '--out', {str(tmp_path)!r} + '/w' + w, '-n', '24', '-w', w, '-q']\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "w1" / "manifest.json").is_file() and (tmp_path / "w2" / "manifest.json").is_file()
