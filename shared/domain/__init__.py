"""Pure business rules: typed values in, typed decisions out. No I/O, no environment, no SDKs."""
