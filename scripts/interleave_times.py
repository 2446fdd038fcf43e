#!/usr/bin/env python3
"""Wall time of fresh processes, run alternately: A B A B ... (docs/PERFORMANCE.md).

    scripts/interleave_times.py N "CMD_A ARGS" ["CMD_B ARGS" ...]

Runs each command 5 times untimed (warm page cache), then N rounds of every command in turn, and
prints each command's median and quartiles; with two commands also the median of the per-round
ratio A / B, which a shared, noisy machine disturbs less than two separate medians (both runs of a
round see the same moment's load). Output of the commands is discarded; arguments split on spaces.
"""
import os
import statistics
import sys
import time


def run(cmd, devnull):
    t = time.perf_counter_ns()
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
    pid = os.posix_spawn(cmd[0], cmd, os.environ, file_actions=actions)
    os.waitpid(pid, 0)
    return (time.perf_counter_ns() - t) / 1e6


def quartiles(xs):
    s = sorted(xs)
    return statistics.median(s), s[len(s) // 4], s[3 * len(s) // 4]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    n, cmds = int(sys.argv[1]), [c.split() for c in sys.argv[2:]]
    devnull = os.open(os.devnull, os.O_WRONLY)
    for c in cmds:
        for _ in range(5):
            run(c, devnull)
    times = [[] for _ in cmds]
    for _ in range(n):
        for j, c in enumerate(cmds):
            times[j].append(run(c, devnull))
    for c, ts in zip(cmds, times):
        print("%-80s median %7.2f ms  [q1 %.2f, q3 %.2f]" % ((" ".join(c)[:80],) + quartiles(ts)))
    if len(cmds) == 2:
        ratio = [a / b for a, b in zip(times[0], times[1])]
        print("per-round ratio first / second: median %.3f [q1 %.3f, q3 %.3f]" % quartiles(ratio))


if __name__ == "__main__":
    main()
