"""The common layer of retailfn, one package per capability (inventory, crosssell), the kernel of
pure helpers, the platform functions run on, the ports and adapters (integration), the runtime and
the tools; docs/ARCHITECTURE.md draws the map and what each may import."""
