"""Validation: a great-expectations suite built from the schema (extra ``validate``)."""

from synthdata.validate.suite import (
                                      ValidationResult,
                                      build_suite,
                                      save_suite,
                                      suite_to_json,
                                      validate_frame,
)

__all__ = ["ValidationResult", "build_suite", "save_suite", "suite_to_json", "validate_frame"]
