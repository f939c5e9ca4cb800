"""The control plane: inventory, identity, CA, policy, audit; REST API and web UI."""
