"""Cross-sell's pure rules: co-occurrence counting and the association measures
(:mod:`.cooccurrence`), up-sell by catalog rules (:mod:`.upsell`), A/B assignment
(:mod:`.experiments`). No I/O, no SDK, no settings."""
