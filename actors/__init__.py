"""Ymera's actors. Each reads events from the bus and publishes events; none calls another.

The store writer lives in `store/`; the workflow actors (security, validator, distributor,
executor, assessor, monitor) arrive with the workflow engine.
"""
