"""The common layer of retailfn: domain rules, ports and adapters, runtime, settings."""
