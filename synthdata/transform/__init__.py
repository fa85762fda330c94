"""Reversible column transformers and the table transformer."""

from synthdata.transform.columns import Activation, Span, SpanRole
from synthdata.transform.table import TableTransformer

__all__ = ["Activation", "Span", "SpanRole", "TableTransformer"]
