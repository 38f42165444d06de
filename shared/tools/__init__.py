"""What operators run, on their machine or in CI: the ``retailfn`` CLI (:mod:`shared.tools.cli`,
the one entry point), deploy, infra generation, packaging, validation and the demo. No function
and no image imports it (``retailfn package`` leaves it out).
"""
