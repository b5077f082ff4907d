"""`python -m cli ...` runs the `raftcoord` command."""

from cli.main import main

main()
