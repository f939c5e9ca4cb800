"""The connector: dials out to the gateways and bridges the streams they open to private targets.

Where it sits: `zerogate connector` runs it inside a private network. `identity.py` enrolls and
renews its certificate, `run.py` keeps its tunnels and reports its health, `bridge.py` checks
and serves each stream. It listens on nothing.
"""
