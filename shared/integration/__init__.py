"""The ports and their adapters: the event bus (embedded log, Kafka) and object storage (local
folder, IBM COS). They take their configuration as arguments and know no settings; the factories
that read settings are in :mod:`shared.platform.adapters`.
"""
