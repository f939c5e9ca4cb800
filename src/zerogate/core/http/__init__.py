"""HTTP/1.1 request-head rules for the gateway's data plane — pure, synchronous, no I/O.

`framing.check_request_head` turns what the parser saw (method, target, version, headers)
into one unambiguous `RequestHead` or an `HttpViolation` carrying the status to answer with;
`paths.normalise_path` gives the single path that policy matches and the upstream receives.
The gateway's protocol code parses bytes; every decision about what those bytes mean is here.
"""
