"""Living with a cluster after the first apply: zero-downtime migrations (:mod:`kit.lifecycle.migrate`),
pipeline contract tests (:mod:`kit.lifecycle.contract`) and Dashboards saved objects
(:mod:`kit.lifecycle.dashboards`). Embedding fingerprints live in :mod:`kit.cluster.fingerprint`."""
