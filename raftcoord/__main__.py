"""`python -m raftcoord ...` runs the `raftcoord` command, like the installed script."""

from cli.main import main

if __name__ == "__main__":
    main(prog_name="raftcoord")
