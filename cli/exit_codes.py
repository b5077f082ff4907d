"""Exit statuses of every `raftcoord` command, one meaning each.

Scripts and CI tell outcomes apart by these numbers alone, so each meaning has
exactly one code and every command uses this table:

====  ==================================================================
0     success
1     a check failed (a simulated seed broke an invariant, a request was refused)
2     usage error: a bad option, argument or output path (click's own code)
3     corrupt or unreadable data (a damaged log, an invalid plan file)
130   interrupted (Ctrl-C), after printing what finished
====  ==================================================================
"""

from __future__ import annotations

OK = 0
CHECK_FAILED = 1
USAGE = 2
CORRUPT_DATA = 3
INTERRUPTED = 130

EPILOG = ("Exit status: 0 success, 1 a check failed, 2 usage error, 3 corrupt or unreadable data, "
          "130 interrupted (Ctrl-C).")
