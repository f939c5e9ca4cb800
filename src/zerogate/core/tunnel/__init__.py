"""What travels on a connector tunnel besides the mux frames: grants, open requests, allow-lists.

Where it sits: the gateway opens a mux stream to a connector and writes an open request
carrying a grant it signed (`grants.py`, `opening.py`); the connector checks the grant and its
own allow-list (`allowlist.py`) before it dials, and answers with an open reply.
"""
