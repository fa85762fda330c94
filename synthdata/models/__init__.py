"""Generators and their registry."""

from synthdata.models.base import BaseGenerator, load_generator
from synthdata.models.registry import available_generators, make_generator, register

__all__ = ["BaseGenerator", "available_generators", "load_generator", "make_generator", "register"]
