"""Prefect tasks: each wraps one call into the ``marketplace`` core and adds retry / cache policy.

Tasks take ids, paths and URIs (never big objects) and open their own database session at the edge.
"""
