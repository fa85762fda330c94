"""Pipeline configuration and runner."""
