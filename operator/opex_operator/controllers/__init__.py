"""Per-kind reconcilers: what one pass over an object does, without Kopf.

A controller turns the observed object into actions through the domain modules (``runbooks/``,
``terraform/``, ``aws/``, ``notify/``) and records the outcome through the pass's Recorder.
``handlers/`` only registers them with Kopf.
"""
