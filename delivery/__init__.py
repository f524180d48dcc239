"""Delivery: tests, sessions, scoring, keys and tokens, and queued long work.

Sits between storage (`irtcat.itembank`) and the HTTP API and command line
(`irtcat.api`): it uses the store's repositories and the engine, and imports
neither SQLAlchemy nor Flask.
"""
