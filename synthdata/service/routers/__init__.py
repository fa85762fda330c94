"""The service's routes, one module per resource: health, datasets, jobs, tokens."""
