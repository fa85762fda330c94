"""Medical records: linked tables, Safe Harbor de-identification, survival helpers."""
