"""Random hex for ids (core/ids.py): from the OS's CSPRNG in pooled reads, never the same digits
twice, and never a parent's digits in a forked child."""

from __future__ import annotations

import os
import re

from core import ids


def test_ids_are_hex_of_the_asked_length_and_never_repeat_across_refills() -> None:
    seen = [ids.random_hex(12) for _ in range(3 * ids.POOL_BYTES // 12)]  # three pools' worth
    assert all(re.fullmatch(r"[0-9a-f]{24}", found) for found in seen)
    assert len(set(seen)) == len(seen)
    assert len(ids.random_hex(ids.POOL_BYTES + 1)) == 2 * (ids.POOL_BYTES + 1)  # more than a pool


def test_a_forked_child_does_not_hand_out_its_parents_digits() -> None:
    ids.random_hex(8)  # the pool is filled: what follows in it is the parent's next id
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its next id, to the parent
        os.write(write, ids.random_hex(8).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    childs = os.read(read, 64).decode()
    os.close(read)
    assert childs != ids.random_hex(8)
