"""`python -m zerogate` is the `zerogate` command (used to start child processes)."""

from zerogate.cli.main import main

main()
