"""Schema: column kinds, inference, YAML load/save, validation."""

from synthdata.schema.model import Column, ColumnKind, PiiRole, Schema, load_yaml

__all__ = ["Column", "ColumnKind", "PiiRole", "Schema", "load_yaml"]
