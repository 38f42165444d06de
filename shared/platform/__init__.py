"""The platform every function runs on: settings, JSON logs and metrics, problem documents, auth,
idempotency, dedup claims, publishing, HTTP helpers and route declarations, and the adapters of the
process built from settings. Knows no capability; imports the ports, the kernel and the contracts.
"""
