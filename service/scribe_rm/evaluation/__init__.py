"""Offline evaluations of the pipeline: routing accuracy on held-out sets, the judge's consistency (repeat and
cross-instance agreement), and BFCL gold steps against perturbed copies."""
