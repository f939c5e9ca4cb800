"""The gateway: the policy enforcement point at the edge (see docs and DESIGN.md)."""
