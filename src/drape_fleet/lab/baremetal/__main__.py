"""The firmware of the lab's bare-metal stand-ins, as the fake Robot webservice's reset hook starts it:

    python -m drape_fleet.lab.baremetal robot-reset

reads ROBOT_SERVER_NUMBER, ROBOT_BOOTS_RESCUE and ROBOT_RESCUE_AUTHORIZED_KEYS (tests/support/fakes/robot.py),
resets the lab machine that is that Robot server (``$DRAPE_LAB_PREFIX`` names the lab), and stays its
firmware: a reboot inside boots the disk. Its output goes to the machine's power.log.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime

from drape_fleet.lab.baremetal.lifecycle import PID_FILE
from drape_fleet.lab.baremetal.machine import saved_machines
from drape_fleet.lab.baremetal.power import Power, firmware_log
from drape_fleet.lab.engine import engine_client
from drape_fleet.lab.state import lab_state_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drape_fleet.lab.baremetal", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["robot-reset"])
    parser.parse_args(argv)
    settings = lab_state_settings()
    number = int(os.environ["ROBOT_SERVER_NUMBER"])
    machine = next((m for m in saved_machines(settings) if m.robot_server_number == number), None)
    if machine is None:
        print(f"Robot server #{number} is no bare-metal stand-in of the lab {settings.prefix}: nothing to boot",
              file=sys.stderr)
        return 0
    with firmware_log(settings, machine).open("a", buffering=1) as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)

        def log(message: str) -> None:
            print(f"{datetime.now(UTC).isoformat(timespec='seconds')} {message}", flush=True)

        (machine.directory(settings) / PID_FILE).write_text(f"{os.getpid()}\n")
        rescue = os.environ.get("ROBOT_BOOTS_RESCUE") == "1"
        log(f"Robot reset ({os.environ.get('ROBOT_RESET_TYPE', '?')}), rescue system {'on' if rescue else 'off'}")
        power = Power(settings, machine, engine_client(), log)
        generation = power.reset(rescue=rescue, authorized_keys=os.environ.get("ROBOT_RESCUE_AUTHORIZED_KEYS", ""))
        power.supervise(generation)
        log(f"firmware of generation {generation} done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
