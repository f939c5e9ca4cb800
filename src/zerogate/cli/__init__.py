"""The `zerogate` command: sub-commands call into the servers and the API, nothing more."""
