"""Prefect flows: thin wiring of tasks, one flow per file (ingest, label, train, score, price, revalue, report).

Flows never hold domain logic: each step is a task in ``tasks/`` wrapping one call into ``marketplace``.
"""
