"""Builds the worker's image without a Docker engine: `python -m deploy.image.build`."""
