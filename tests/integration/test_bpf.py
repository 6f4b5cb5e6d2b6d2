"""test_bpf.py - `record --bpf`: running threads' frames copied inside the kernel, in a tick of the
thread's own CPU clock (src/kwalk.c), instead of in a ptrace pause - on every interpreter.

Each test reads mixspy's MIXSPY_STATS line to see how many samples were read in the tick (kwalk)
and asserts on the parsed profile as the ptrace tests do. Where the kernel refuses eBPF (not root,
no BPF ring buffers) the tests are skipped and say why.
"""
import os
import re

import pytest

import harness
from harness import Background, assert_not_stopped, leaf_counts, marker_line, parse_collapsed, run_mixspy

NE = harness.NATIVE_EXT
STATS = re.compile(r"mixspy-stats: pid \d+ pauses (\d+) .* kwalk (\d+) past (\d+)")
NO_BPF = "Can't load the eBPF"


def record_bpf(tmp_path, args, name="out", timeout=30, nice=-10):
    """record --bpf -f raw with MIXSPY_STATS=1 -> (stacks, samples, reads (paused or in the tick),
    reads in the tick and copies that fell short, stderr - with the frames of any sample whose merge
    failed, MIXSPY_DEBUG_MERGE); skips when the kernel refuses eBPF."""
    out = tmp_path / (name + ".txt")
    bg = Background(["record", "--bpf", "-f", "raw", "-o", out] + list(args), priority=nice,
                    env={"MIXSPY_STATS": "1", "MIXSPY_DEBUG_MERGE": "1"})
    rc, _, err = bg.wait(timeout)
    if rc != 0 and NO_BPF in err:
        pytest.skip("--bpf not available here: " + err.strip().splitlines()[-1])
    assert rc == 0, err
    with open(str(out), encoding="utf-8") as f:
        stacks = parse_collapsed(f.read())
    m = STATS.search(err)
    assert m, err
    return stacks, sum(stacks.values()), int(m.group(1)), (int(m.group(2)), int(m.group(3))), err


def check_in_tick(reads, kwalk, err, some=True):
    """Read in the tick, not paused: the copy follows the chain wherever it is, so it falls short
    of a walk only past its limits (more than 400 frame objects, data stack chunks past 16 KB or
    4 deep) - a read that fell short and paused instead would land later, and favour the shapes
    that last. (A thread that does not run within 2 ms of being armed is paused too: under load
    that happens, and says nothing of the copy. A thread found preempted is read where it
    stands, neither paused nor armed.)"""
    done, past = kwalk
    assert done >= 1 or reads < 10 or not some, "no read was made in the tick:\n%s" % err
    assert past <= max(3, 0.05 * (done + past)), "%d of %d copies fell short:\n%s" % (past, done + past, err)


def test_bpf_75_25(interp, start, tmp_path):
    """The 75/25 split and the hot line, read in the tick: heavy() 75% +- 5 of the samples, and
    most samples copied by the eBPF program rather than in a pause."""
    w = start(interp, "busy_75_25.py", ["--seconds", 60, "--inner", 1000])
    harness.prioritize(w.pid, -19)
    stacks, n, reads, kwalk, err = record_bpf(tmp_path, ["--pid", w.pid, "-d", 3, "-r", 400], nice=-19)
    share, total = harness.check_busy_75_25(stacks, n, 500)
    print("--bpf 75/25 %s: heavy %.1f%% of %d, %d of %d reads in the tick" % (interp.id, share, total, kwalk[0], reads))
    check_in_tick(reads, kwalk, err)
    assert_not_stopped(w.pid)


def test_bpf_chain_swings(interp, start, tmp_path):
    """A chain that keeps changing shape and size (a shallow stack, then 250 frames deep, past one
    data stack chunk from 3.11 on): still read in the tick - a read that missed part of it and
    paused instead would land later and favour whichever shape lasts - with both shapes seen,
    each whole (250 down() frames under deep()), at the spinning line."""
    swing = os.path.join(NE, "depth_swing.py")
    spin_line = marker_line(swing, "# SPIN-LINE")
    spin_def = marker_line(swing, "def spin(n):")
    w = start(interp, "depth_swing.py", ["--seconds", 60])
    harness.prioritize(w.pid, -19)
    stacks, n, reads, kwalk, err = record_bpf(tmp_path, ["--pid", w.pid, "-d", 2, "-r", 200], nice=-19)
    check_in_tick(reads, kwalk, err)
    by = leaf_counts(stacks, {"shallow", "deep"})
    assert by["shallow"] >= 0.15 * n and by["deep"] >= 0.15 * n, "%s of %d" % (by, n)
    for st, k in stacks.items():
        names = [f.name for f in st]
        if "deep" in names:
            assert names.count("down") == 251 or names[-1] != "spin", (len(names), names[-3:])
        if names[-1] == "spin":
            assert spin_def <= st[-1].line <= spin_line + 1, st[-1]
    assert_not_stopped(w.pid)


def test_bpf_gil(interp, start, ext_dir, tmp_path):
    """--bpf --gil: who holds the GIL is read from the same copy as the frames - the Python thread
    holds it, the C kernel that released it drops out."""
    w = start(interp, "gil_two_threads.py", ["--ext", ext_dir, "--seconds", 60])
    harness.prioritize(w.pid, -10)
    stacks, n, reads, kwalk, err = record_bpf(tmp_path, ["--pid", w.pid, "-d", 1.5, "--gil", "--threads"])
    by = leaf_counts(stacks, {"py_busy", "c_busy"})
    assert n >= 30, "only %d --gil samples" % n
    assert by["py_busy"] >= 0.85 * n, "py-worker holds the GIL: %s of %d" % (by, n)
    assert by["c_busy"] <= 0.05 * n, "c-worker released the GIL: %s of %d" % (by, n)
    check_in_tick(reads, kwalk, err, some=False)   # under load it may be read off its CPU throughout
    assert_not_stopped(w.pid)


OUTER = ["<module>", "main", "py_outer", "c_entry", "c_middle", "c_kernel"]
CALLBACK = ["<module>", "main", "py_caller", "c_call_back", "py_callback", "c_entry", "c_middle",
            "c_kernel"]


def test_bpf_native_mixed(interp, start, ext_dir, tmp_path):
    """--bpf --native: the registers and the stack above sp come with the copy in the tick, and
    the merged stacks are as exact as from a pause - Python -> C -> C -> C and C -> Python -> C,
    the kernel's hot line, no merge mismatch."""
    w = start(interp, "mixed_native.py", ["--ext", ext_dir, "--seconds", 30])
    harness.prioritize(w.pid, -10)
    stacks, n, reads, kwalk, err = record_bpf(tmp_path, ["--native", "--pid", w.pid, "-d", 2])
    m = re.search(r"Native merge mismatches: (\d+) of (\d+) samples", err)
    assert m and int(m.group(1)) == 0, err
    check_in_tick(reads, kwalk, err)
    seen = {"outer": 0, "callback": 0}
    leaves = []
    for stack, k in stacks.items():
        names = [f.name for f in stack]
        if "c_kernel" not in names:
            continue
        assert names in (OUTER, CALLBACK), names
        seen["outer" if names == OUTER else "callback"] += k
        leaves.append((stack[-1].file, stack[-1].line, k))
    harness.check_kernel_leaves(leaves)
    assert seen["outer"] + seen["callback"] >= 0.8 * n, (seen, n)
    assert min(seen.values()) >= 0.15 * n, (seen, n)
    assert_not_stopped(w.pid)


@pytest.mark.parametrize("flags,message", [
    (["--nonblocking"], "--bpf and --nonblocking can't be used together"),
], ids=["nonblocking"])
def test_bpf_bad_combinations(debian_interp, tmp_path, flags, message):
    rc, _, err = run_mixspy(["record", "--bpf", "-o", tmp_path / "o.svg"] + flags + ["--pid", os.getpid()])
    assert rc == 1 and message in err, (rc, err)
