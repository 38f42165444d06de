"""The same loopback servers the tests use, for the benchmarks."""

from tests.servers import MotoS3, Tansu, free_port, wait_for_port

__all__ = ["MotoS3", "Tansu", "free_port", "wait_for_port"]
