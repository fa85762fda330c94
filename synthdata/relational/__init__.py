"""Linked tables: the multi-table schema, the relational synthesizer, linked-table evaluation."""
