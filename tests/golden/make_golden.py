"""Write the golden files that pin the coordinator's log and snapshot formats.

Run from the repository root::

    .venv/bin/python tests/golden/make_golden.py

It replays `scenario.COMMANDS` on a fresh `CoordinatorState(scenario.CONFIG)` and
writes, with the encoders of the checked-out code:

* ``log_format<N>.cbor``: a CBOR array with one ``[command bytes, result bytes]``
  pair per command, as `coordinator.codec` encodes log entries and results (``N`` is
  `coordinator.codec.FORMAT_VERSION`);
* ``snapshot_format<N>.cbor``: `CoordinatorState.snapshot` of the final state
  (``N`` is `coordinator.state.SNAPSHOT_FORMAT`).

Existing files are never overwritten: a golden file records bytes that an earlier
release wrote and that every later release must still read. When a format changes,
run this again to add the new format's files next to the old ones.

History: ``log_format1.cbor`` (commands tagged by class name) and
``snapshot_format3.cbor`` were written by the code of commit 92f5dda;
``log_format2.cbor`` (commands tagged by wire tag) by the release that introduced
format 2.
``snapshot_format2.cbor`` was derived from that format 3 snapshot by removing the
two keys format 3 added (``sessions``, ``session_clock``) and setting ``format`` to
2, which is byte for byte what the format 2 writer produced for that state.
"""

from __future__ import annotations

import pathlib
import sys

import cbor2

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from coordinator import codec  # noqa: E402
from coordinator.state import SNAPSHOT_FORMAT, CoordinatorState  # noqa: E402
from scenario import COMMANDS, CONFIG  # noqa: E402


def main() -> int:
    state = CoordinatorState(CONFIG)
    entries = [[codec.encode_command(command), codec.encode_result(state.apply(command))]
               for command in COMMANDS]
    files = {
        f"log_format{codec.FORMAT_VERSION}.cbor": cbor2.dumps(entries, canonical=True),
        f"snapshot_format{SNAPSHOT_FORMAT}.cbor": state.snapshot(),
    }
    if SNAPSHOT_FORMAT == 3:
        wire = cbor2.loads(state.snapshot())
        del wire["sessions"], wire["session_clock"]
        wire["format"] = 2
        files["snapshot_format2.cbor"] = cbor2.dumps(wire, canonical=True)
    for name, data in files.items():
        path = HERE / name
        if path.exists():
            print(f"kept    {name} (exists)")
            continue
        path.write_bytes(data)
        print(f"wrote   {name} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
