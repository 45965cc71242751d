"""The serial debug console: a line console on a UART, a USB gadget port, any pty, or stdio.

    edge-runtime run --config robot.toml --console /dev/ttyGS0
    edge-runtime run --sim --console stdio
    picocom -b 115200 /dev/ttyUSB0          (or: edge-runtime console /dev/ttyUSB0)

Threads and the control loop
----------------------------
The console runs in its own thread: it reads the device, edits the line
(echo, backspace/DEL, CR/LF/CRLF, Ctrl-C, Ctrl-U, arrow keys ignored) and
writes replies. It never touches the runner. A command that needs the runtime
is put on a request queue; `ConsoleHook.on_step` (in the loop thread) takes
at most one request per step without blocking, runs it between two steps (so
it sees and changes a consistent state) and hands the reply text back. The
console thread waits for one reply at a time, so however fast commands arrive
the loop does at most one small piece of console work per step; `stream on`
costs the loop one formatted line per period. Output from the loop goes into
a bounded queue (oldest stream lines are dropped if the device does not
drain), so a stuck terminal or a full UART buffer can never block the loop.
If the loop does not answer within a few seconds (hung), the console says so
and stays usable.

While a dead robot waits for its revive button no steps run; the runtime
then calls `ConsoleHook.on_wait` between its polls, which serves requests the
same way, so the console keeps answering (and can revive it).

Read-only unless `[console] writable = true`: looking (help, status, senses,
learn, lr, overrides, log, stream) is always allowed; changing the runtime
(learn on|off, lr MIN MAX, overrides clear, save, rollback, motors stop|go,
log LEVEL, revive) needs writes.

`learn`, `lr` and `motors` are run-time overrides (runtime.Overrides): saved
with the checkpoints and re-applied after a restart, never written into the
config. The body capabilities decide what `motors` and `revive` do
(edge_runtime.body.MotorControl, Revivable); a body without motor control
says so.

Modules, one job each: `line` (line editing), `device` (raw serial devices
and ptys), `server` (the console thread and the commands it answers itself),
`loop` (ConsoleHook: the commands that need the runtime, served from the
loop), `client` (the laptop side), `bench` (`edge-runtime bench console`).
"""
from .client import ConsoleClient, client_commands, terminal
from .device import make_raw, open_device
from .line import LineEditor
from .loop import ConsoleHook
from .server import HELP, CommandError, Console

__all__ = ["Console", "ConsoleHook", "ConsoleClient", "CommandError", "HELP", "LineEditor", "client_commands",
           "make_raw", "open_device", "terminal"]
