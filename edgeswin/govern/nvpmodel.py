"""The Jetson power mode (nvpmodel): which modes the device has, which one is active, and a
request for another one. The only module that runs `nvpmodel`.

Mode ids and names are per module (Orin Nano: 15W, 7W, MAXN_SUPER; AGX Orin: MAXN, 50W, ...),
so they are read from the device's configuration (`/etc/nvpmodel.conf`, lines
`< POWER_MODEL ID=<id> NAME=<name> >`), never hard-coded. `nvpmodel -q` prints
`NV Power Mode: <name>` and then the id. Setting a mode needs root: either a configured command
(`[nvpmodel, -m, "{id}"]` when the daemon is root, as in a privileged container) or, under the
shipped systemd unit (which cannot gain privileges), a request file that the root helper unit
`edgeswin-power-mode.path` watches; it accepts digits only and runs `nvpmodel -m <id>`.
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MODE_LINE = re.compile(r"<\s*POWER_MODEL\s+ID\s*=\s*(\d+)\s+NAME\s*=\s*([^\s>]+)", re.I)
QUERY_LINE = re.compile(r"NV Power Mode:\s*(\S+)")
QUERY_TIMEOUT_S = 5.0  # -q only reports the mode; the loop waits for it
SET_TIMEOUT_S = 15.0  # -m changes clocks and cores; below the service's 30 s watchdog


@dataclass(frozen=True)
class Mode:
    id: int
    name: str


def read_modes(conf: str | Path) -> list[Mode]:
    """Every POWER_MODEL in the configuration, in file order; [] when it cannot be read."""
    try:
        text = Path(conf).read_text(errors="replace")
    except OSError:
        return []
    return [Mode(int(m.group(1)), m.group(2)) for m in MODE_LINE.finditer(text)]


def query(command: str) -> Mode | None:
    """The active mode from `nvpmodel -q`; None when nvpmodel is absent or says nothing."""
    try:
        run = subprocess.run([command, "-q"], capture_output=True, text=True,
                             timeout=QUERY_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in run.stdout.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if (m := QUERY_LINE.search(line)) and i + 1 < len(lines) and lines[i + 1].isdigit():
            return Mode(int(lines[i + 1]), m.group(1))
    return None


class PowerModes:
    """The modes the power_mode lever steps through, resolved to ids, and how to set one."""

    def __init__(self, conf: str | Path, nvpmodel: str, wanted: list[str],
                 command: list[str], request_file: Path):
        self.nvpmodel = nvpmodel
        self.command = command
        self.request_file = request_file
        # The mode to come back to, kept on disk while the lever is down, so a daemon that
        # stops or dies there is not stuck in the lower mode after its restart.
        self.record = request_file.with_name("power-mode.start")
        self.modes = read_modes(conf)
        by_name = {m.name.upper(): m for m in self.modes}
        missing = [name for name in wanted if name.upper() not in by_name]
        if wanted and missing:
            known = ", ".join(m.name for m in self.modes) or "none (unreadable or absent)"
            log.warning("power_modes %s not in %s (modes: %s): the power_mode lever is off",
                        missing, conf, known)
            self.steps: list[Mode] = []
        else:
            self.steps = [by_name[name.upper()] for name in wanted]
        self.start: Mode | None = None  # the mode before the lever moved, restored at level 0

    def remember_start(self) -> None:
        if self.start is not None:
            try:
                self.record.write_text(f"{self.start.id}\n")
            except OSError as exc:
                log.warning("could not keep the starting power mode in %s: %s", self.record, exc)

    def forget_start(self) -> None:
        self.record.unlink(missing_ok=True)

    def left_over(self) -> Mode | None:
        """The mode an earlier run left the lever's start in (it stopped with the lever down),
        if the configuration has it."""
        try:
            text = self.record.read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None
        return next((m for m in self.modes if text.isdigit() and m.id == int(text)), None)

    def current(self) -> Mode | None:
        """The active mode; None without asking on a device with no nvpmodel configuration
        (not a Jetson), so other machines never spawn a process for it."""
        return query(self.nvpmodel) if self.modes else None

    def target(self, level: int) -> Mode | None:
        """The mode for a lever level: 0 is the mode the daemon started in."""
        return self.start if level == 0 else self.steps[level - 1]

    def set(self, mode: Mode) -> str | None:
        """Ask for a mode; an error message, or None when asked (the request file is applied
        by the helper unit shortly after)."""
        if self.command:
            argv = [a.replace("{id}", str(mode.id)) for a in self.command]
            try:
                run = subprocess.run(argv, capture_output=True, text=True,
                                     timeout=SET_TIMEOUT_S, stdin=subprocess.DEVNULL)
            except (OSError, subprocess.SubprocessError) as exc:
                return f"{argv[0]}: {exc}"
            said = (run.stdout + run.stderr).strip()
            if run.returncode != 0 or "NVPM ERROR" in said:
                return f"{' '.join(argv)} exited {run.returncode}: {said[-300:]}"
            return None
        try:
            self.request_file.write_text(f"{mode.id}\n")
        except OSError as exc:
            return f"could not write {self.request_file}: {exc}"
        return None
