"""Codes are labels: ZIP-named and fixed-width code-named numbers are not learned as amounts,
and the CSV reader keeps their leading zeros."""

from __future__ import annotations

import pandas as pd

from synthdata.io.files import read_table
from synthdata.schema.model import ColumnKind, Schema


def test_numbers_named_like_codes_are_categories_or_ids():
    df = pd.DataFrame({"zip": [2116, 94110, 10001] * 10, "postcode": range(10000, 10030),
                       "icd_code": [1234, 2345, 3456] * 10, "weight": [60, 70, 80] * 10,
                       "count": range(30, 60)})
    kinds = {c.name: c.kind for c in Schema.infer(df).columns}
    assert kinds["zip"] == ColumnKind.CATEGORICAL and kinds["postcode"] == ColumnKind.ID
    assert kinds["icd_code"] == ColumnKind.CATEGORICAL
    assert kinds["weight"] == ColumnKind.CATEGORICAL      # few values: as before
    assert kinds["count"] in (ColumnKind.INTEGER, ColumnKind.ID)


def test_csv_reader_keeps_codes_as_text(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("zip,mrn,site_id,dose,n\n02116,00012345,1001,1.5,3\n94110,00012346,1002,2.0,"
                    "4\n,00012347,1003,2.5,05\n")
    df = read_table(path)
    assert df["zip"].tolist() == ["02116", "94110", None]
    assert df["mrn"].tolist() == ["00012345", "00012346", "00012347"]
    assert df["site_id"].tolist() == ["1001", "1002", "1003"]   # fixed-width, id-named
    assert df["dose"].dtype == float
    assert df["n"].tolist() == ["3", "4", "05"]                 # a leading zero: text
