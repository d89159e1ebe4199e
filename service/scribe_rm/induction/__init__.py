"""The library's life cycle on top of the pipeline: induce draft cards from trajectories or a service's
coverage gaps (decompose, cluster, distill, merge), review and accept them, and report what happened."""
