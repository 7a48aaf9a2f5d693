#!/usr/bin/env python3
"""Free TCP ports for the servers the checks, the bench and make run start.

A port merely free a moment ago (bind to port 0, close, hand the number to a
server) can be taken before the server binds it: by any outgoing connection
on the machine, whose local port the kernel takes from the same ephemeral
range, or by another check doing the same. So a port is picked at random
*below* the ephemeral range (net.ipv4.ip_local_port_range), where the kernel
never assigns ports on its own, checked bindable, and never handed out twice
by one process. When the range leaves no room below it, the kernel picks.

    python3 scripts/ports.py [HOST]      prints one port
    from ports import free_port          (scripts/ on sys.path)
"""
import random
import socket
import sys

FLOOR = 10000  # below: ports too often taken by well-known services
_given = set()


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(host="127.0.0.1"):
    low = ephemeral_low()
    if low - FLOOR >= 1000:
        for _ in range(200):
            port = random.randrange(FLOOR, low)
            if port in _given:
                continue
            try:
                with socket.socket() as s:
                    s.bind((host, port))
            except OSError:
                continue
            _given.add(port)
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    print(free_port(*sys.argv[1:2]))
