"""A pyinfra connector that speaks to hosts through the system's OpenSSH client (``@openssh/<name>``).

Why not pyinfra's own ``@ssh`` connector: it uses paramiko, which knows no post-quantum key exchange.
A provisioned host offers only post-quantum hybrid key exchanges (ssh-audit warns about every other),
so paramiko could no longer reach a host once the ssh deploy has run. OpenSSH can, and brings what ops
already use: their agent, ``~/.ssh/config`` (ProxyJump, ...), pinned known_hosts.

One multiplexed master connection per host (ControlMaster), so each command costs one round trip.
The ``ssh`` options come from ``drape_fleet.ssh.SshTarget``, rebuilt from the host data the inventory wrote
(``drape_fleet.provision.inventory``): the same pinned host keys, single key and timeouts as every other SSH
use of the project. pyinfra's ``--user`` still works (it sets ``ssh_user``).
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
from collections.abc import Iterator
from io import IOBase
from pathlib import Path
from typing import IO, Any, TypedDict, cast

from gevent.subprocess import PIPE, Popen  # type: ignore[import-untyped]
from pyinfra import logger
from pyinfra.api.command import QuoteString, StringCommand
from pyinfra.api.exceptions import ConnectError
from pyinfra.api.util import get_file_io
from pyinfra.connectors.base import BaseConnector, DataMeta
from pyinfra.connectors.util import (
    CommandOutput,
    execute_command_with_sudo_retry,
    make_unix_command_for_host,
    read_output_buffers,
    write_stdin,
)

from drape_fleet.provision.inventory import ssh_target
from drape_fleet.ssh import SshTarget

CONNECTOR_NAME = "openssh"


class OpenSshData(TypedDict, total=False):
    ssh_hostname: str
    ssh_port: int
    ssh_user: str
    ssh_key: str
    ssh_known_hosts_file: str
    fleet_host: str


class OpenSshConnector(BaseConnector):
    handles_execution = True
    data_cls = OpenSshData
    data_meta: dict[str, DataMeta] = {  # noqa: RUF012 (pyinfra's own attribute)
        "ssh_hostname": DataMeta("address or name to connect to (default: the host's name)"),
        "ssh_port": DataMeta("SSH port"),
        "ssh_user": DataMeta("SSH user"),
        "ssh_key": DataMeta("the one key offered (private key, or the public half of an agent's key)"),
        "ssh_known_hosts_file": DataMeta("known_hosts file that pins the host's key"),
        "fleet_host": DataMeta("the host's name in the fleet"),
    }

    _control_dir: str | None = None

    @staticmethod
    def make_names_data(name: str | None = None) -> Iterator[tuple[str, dict[str, Any], list[str]]]:
        if not name:
            raise ConnectError(f"@{CONNECTOR_NAME} needs a host name: @{CONNECTOR_NAME}/<name>")
        yield name, {}, []

    # -- connection ------------------------------------------------------------------------------

    @property
    def _ssh(self) -> SshTarget:
        return ssh_target(self.data, self.host.name)

    @property
    def _target(self) -> str:
        return self._ssh.hostname

    def _argv(self, *extra: str) -> list[str]:
        control = [("ControlPath", f"{self._control_dir}/cm")] if self._control_dir else []
        return [*self._ssh.ssh_args(control), *extra]

    def connect(self) -> None:
        if shutil.which("ssh") is None:
            raise ConnectError("the OpenSSH client (ssh) is not installed on this machine")
        self._control_dir = tempfile.mkdtemp(prefix="drape-ssh-")
        argv = self._argv("-o", "ControlMaster=yes", "-o", "ControlPersist=yes", "-f", "-N", self._target)
        logger.debug("Connecting with OpenSSH: %s", shlex.join(argv))
        process = Popen(argv, stdin=PIPE, stdout=PIPE, stderr=PIPE)
        _, stderr = process.communicate()
        if process.returncode != 0:
            self._remove_control_dir()
            message = stderr.decode(errors="replace").strip() or f"ssh exited with {process.returncode}"
            raise ConnectError(f"cannot reach {self._target} over SSH: {message}")

    def disconnect(self) -> None:
        if self._control_dir is None:
            return
        process = Popen(self._argv("-O", "exit", self._target), stdin=PIPE, stdout=PIPE, stderr=PIPE)
        process.communicate()
        self._remove_control_dir()

    def _remove_control_dir(self) -> None:
        if self._control_dir is not None:
            shutil.rmtree(self._control_dir, ignore_errors=True)
            self._control_dir = None

    # -- commands ------------------------------------------------------------------------------

    def run_shell_command(
        self,
        command: StringCommand,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Any,
    ) -> tuple[bool, CommandOutput]:
        arguments.pop("_get_pty", False)
        timeout = arguments.pop("_timeout", None)
        stdin = arguments.pop("_stdin", None)
        success_exit_codes = arguments.pop("_success_exit_codes", None)

        def execute() -> tuple[int, CommandOutput]:
            unix_command = make_unix_command_for_host(self.state, self.host, command, **arguments)
            if print_input:
                logger.info("%s>>> %s", self.host.print_prefix, unix_command)
            process = Popen(self._argv("-T", self._target, unix_command.get_raw_value()),
                            stdin=PIPE, stdout=PIPE, stderr=PIPE)
            assert process.stdin is not None and process.stdout is not None and process.stderr is not None
            if stdin:
                write_stdin(stdin, process.stdin)  # type: ignore[no-untyped-call]
            process.stdin.close()
            output = read_output_buffers(process.stdout, process.stderr, timeout=timeout,
                                         print_output=print_output, print_prefix=self.host.print_prefix)
            process.wait()
            process.stdout.close()
            process.stderr.close()
            return process.returncode, output

        return_code, output = execute_command_with_sudo_retry(self.host, cast(Any, arguments), execute)
        ok = return_code in success_exit_codes if success_exit_codes else return_code == 0
        return ok, output

    def _run_bytes(self, command: StringCommand, data: bytes | None, **arguments: Any) -> tuple[int, bytes, str]:
        """Run ``command`` (sudo and all) feeding ``data`` as raw bytes; return raw stdout."""
        for key in ("_get_pty", "_timeout", "_stdin", "_success_exit_codes"):
            arguments.pop(key, None)
        unix_command = make_unix_command_for_host(self.state, self.host, command, **arguments)
        process = Popen(self._argv("-T", self._target, unix_command.get_raw_value()),
                        stdin=PIPE, stdout=PIPE, stderr=PIPE)
        stdout, stderr = process.communicate(input=data or b"")
        return process.returncode, stdout, stderr.decode(errors="replace")

    def put_file(
        self,
        filename_or_io: str | IOBase,
        remote_filename: str,
        remote_temp_filename: str | None = None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Any,
    ) -> bool:
        """Stream the bytes through ``cat`` into a temporary file next to the target, then rename it in place
        (the target never holds half a file)."""
        with get_file_io(cast("str | IO[Any]", filename_or_io)) as file_io:
            data = file_io.read()
        payload = data.encode() if isinstance(data, str) else data
        temp = f"{remote_filename}.drape-upload"
        command = StringCommand("cat", ">", QuoteString(temp), "&&", "mv", "-f", QuoteString(temp),
                                QuoteString(remote_filename))
        code, _, stderr = self._run_bytes(command, payload, **arguments)
        if code != 0:
            logger.error(f"{self.host.print_prefix}upload to {remote_filename} failed: {stderr.strip()}")
            return False
        if print_output:
            logger.info(f"{self.host.print_prefix}file uploaded: {remote_filename}")
        return True

    def get_file(
        self,
        remote_filename: str,
        filename_or_io: str | IOBase,
        remote_temp_filename: str | None = None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Any,
    ) -> bool:
        code, data, stderr = self._run_bytes(StringCommand("cat", QuoteString(remote_filename)), None, **arguments)
        if code != 0:
            logger.error(f"{self.host.print_prefix}download of {remote_filename} failed: {stderr.strip()}")
            return False
        if isinstance(filename_or_io, str):
            Path(filename_or_io).write_bytes(data)
        else:
            with get_file_io(cast("IO[Any]", filename_or_io), "wb") as file_io:
                file_io.write(data)
        return True
