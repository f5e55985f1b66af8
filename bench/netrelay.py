"""A link with a one-way delay, in user space, for kernels without tc netem (this one has
neither netem nor fq): frames between two TAP devices are held `delay` ms each way.

    host ns:  eth0 (TAP, moved in) ─┐                       ┌─ TAP port ─ bridge (root ns)
                                    └── this process: ─────┘
                                        read a frame, hold it `delay` ms, write it out

Both directions keep their order (one delay, a FIFO each way). The frames are Ethernet
frames up to the devices' MTU; run as root: `python bench/netrelay.py TAP_A TAP_B MS`
prints "ready" once both devices exist, and relays until SIGTERM. The hold is real time,
so scheduling jitter of this process adds to it (a few hundred microseconds when the
machine is busy): state it beside numbers measured through it.
"""

from __future__ import annotations

import fcntl
import heapq
import os
import select
import signal
import struct
import sys
import time

TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000
MAX_FRAME = 65536 + 14


def open_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


def relay(a: int, b: int, delay_s: float) -> None:
    """Forever: every frame read on one device is written to the other `delay_s` later."""
    held: list[tuple[float, int, int, bytes]] = []  # (due, sequence, to, frame)
    seq = 0
    other = {a: b, b: a}
    while True:
        wait = max(0.0, held[0][0] - time.monotonic()) if held else None
        ready, _, _ = select.select([a, b], [], [], wait)
        now = time.monotonic()
        for fd in ready:
            while True:
                try:
                    frame = os.read(fd, MAX_FRAME)
                except BlockingIOError:
                    break
                heapq.heappush(held, (now + delay_s, seq, other[fd], frame))
                seq += 1
        while held and held[0][0] <= time.monotonic():
            _, _, to, frame = heapq.heappop(held)
            try:
                os.write(to, frame)
            except OSError:
                pass  # the device is down (a cut link): the frame is lost, as on a wire


def main() -> None:
    name_a, name_b, ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
    a, b = open_tap(name_a), open_tap(name_b)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    relay(a, b, ms / 1000.0)


if __name__ == "__main__":
    main()
