"""Check an installimage config file with the same rules the reinstall applies:

    python -m drape_fleet.installimage CONFIG [--boot-mode bios|uefi] [--lsblk LSBLK_JSON] [--arch x86_64]

Without --lsblk only the rules that need no hardware run. Exit status 0 when there is no error, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drape_fleet.installimage.machine import Machine, parse_lsblk
from drape_fleet.installimage.validate import check_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drape_fleet.installimage", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--boot-mode", choices=("bios", "uefi"), default="bios")
    parser.add_argument("--lsblk", type=Path, help="output of lsblk -J -b -d -o NAME,PATH,SIZE,TYPE,TRAN,RM,MODEL")
    parser.add_argument("--arch", default="x86_64")
    args = parser.parse_args(argv)
    machine = None
    if args.lsblk is not None:
        machine = Machine(args.boot_mode, parse_lsblk(args.lsblk.read_text()), arch=args.arch)
    problems = check_config(args.config.read_text(), machine)
    for problem in problems:
        print(f"{problem.severity}: {problem.render()}")
    errors = [p for p in problems if p.severity == "error"]
    print(f"{args.config}: {len(errors)} error(s), {len(problems) - len(errors)} warning(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
