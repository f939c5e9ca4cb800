"""Tunnels: the mux over mutual TLS between gateways and connectors (and, later, agents).

Where it sits: below the servers that use it (`gateway`, `connector`), above `core.mux`,
which holds the protocol itself. `link.py` runs a mux session on one TLS connection and
presents its streams as asyncio transports.
"""
