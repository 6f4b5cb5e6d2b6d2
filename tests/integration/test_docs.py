"""test_docs.py - the documentation and the shell integration match the binary.

  - every flag that `mixspy COMMAND --help` shows is documented in docs/usage.md and in the man
    page docs/mixspy.1, and every command is too
  - the man page renders without groff warnings and `make install` installs it
  - --version and per-command --help (py-spy's about lines where the command exists in py-spy)
  - the completion scripts work in real shells: bash (complete -p, and COMPREPLY after calling
    the function), zsh (the #compdef file through compinit, then a real Tab in a zsh on a pty),
    fish (complete -C)
  - the README starts with the two set-up commands, and its links and image exist
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DOCS = os.path.join(harness.REPO, "docs")
USAGE = os.path.join(DOCS, "usage.md")
MANPAGE = os.path.join(DOCS, "mixspy.1")
README = os.path.join(harness.REPO, "README.md")

COMMANDS = ["record", "top", "dump", "merge", "completions"]
PYSPY_ABOUT = {
    "record": "Records stack trace information to a flamegraph, speedscope or raw file",
    "top": "Displays a top like view of functions consuming CPU",
    "dump": "Dumps stack traces for a target program to stdout",
}


def mixspy(*args):
    rc, out, err = harness.run_mixspy(list(args), timeout=30)
    return rc, out, err


def help_flags(cmd):
    """[(short or None, long)] from the Options section of `mixspy CMD --help`."""
    rc, out, err = mixspy(cmd, "--help")
    assert rc == 0, err
    flags = []
    for line in out.splitlines():
        m = re.match(r"^\s+(?:-(\w), )?--([a-z][a-z-]*)", line)
        if m:
            flags.append((m.group(1), m.group(2)))
    return flags


def all_flags():
    seen = {}
    for cmd in COMMANDS:
        for short, lng in help_flags(cmd):
            seen.setdefault(lng, (short, set()))[1].add(cmd)
    return seen


def man_text():
    """The man page source with roff's escaped hyphens made plain."""
    with open(MANPAGE) as f:
        return f.read().replace("\\-", "-")


def read(path):
    with open(path) as f:
        return f.read()


def test_every_flag_is_documented():
    flags = all_flags()
    assert len(flags) >= 25, sorted(flags)   # the parse found the flag table
    usage, man = read(USAGE), man_text()
    missing = []
    for lng, (short, cmds) in sorted(flags.items()):
        # usage.md: a table row whose first cell names the flag (and its short form)
        rows = [l for l in usage.splitlines()
                if l.startswith("| `") and re.search(r"`--%s[` =]" % re.escape(lng), l.split("|")[1])]
        if not rows:
            missing.append("usage.md: --%s (%s)" % (lng, ", ".join(sorted(cmds))))
        elif short and not any("`-%s`" % short in r for r in rows):
            missing.append("usage.md: -%s next to --%s" % (short, lng))
        # man page: a .TP entry for the flag
        if not re.search(r"^\.(B|BR) .*--%s(?![\w-])" % re.escape(lng), man, re.M):
            missing.append("mixspy.1: --%s" % lng)
        elif short and not re.search(r"^\.BR -%s \", \" --%s(?![\w-])" % (short, re.escape(lng)), man, re.M):
            missing.append("mixspy.1: -%s, --%s" % (short, lng))
    assert not missing, "undocumented:\n  " + "\n  ".join(missing)


def test_every_command_is_documented():
    usage, man = read(USAGE), man_text()
    for cmd in COMMANDS:
        assert "## `mixspy %s`" % cmd in usage, cmd
        assert re.search(r"^\.B %s\b" % cmd, man, re.M), cmd
    assert "--version" in usage and "--version" in man


def test_usage_calls_out_pyspy_differences():
    usage = read(USAGE)
    assert usage.count("py-spy difference") >= 6
    for word in ("--core", "exit status", "stderr", "merge mismatch", "elvish"):
        assert word in usage, word


@pytest.mark.skipif(not shutil.which("groff"), reason="groff is not installed")
def test_manpage_renders_cleanly():
    r = subprocess.run(["groff", "-man", "-ww", "-z", MANPAGE], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    assert r.returncode == 0 and not r.stderr, r.stderr
    r = subprocess.run(["groff", "-man", "-Tutf8", MANPAGE], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    text = re.sub(r".\x08", "", r.stdout)
    for section in ("NAME", "SYNOPSIS", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "EXAMPLES"):
        assert re.search(r"^%s$" % section, text, re.M), section
    rc, out, _ = mixspy("--version")
    version = out.split()[1]
    assert '"mixspy %s"' % version in read(MANPAGE), "man page .TH carries another version"


def test_make_install_installs_manpage(tmp_path):
    dest = tmp_path / "stage"
    # -o mixspy: install the binary as built; don't rebuild it (other work may be in progress).
    if not os.access(os.path.join(harness.REPO, "mixspy"), os.X_OK):
        pytest.fail("./mixspy not built (run `make` first)", pytrace=False)
    r = subprocess.run(["make", "-s", "-o", "mixspy", "install", "PREFIX=/usr", "DESTDIR=%s" % dest],
                       cwd=harness.REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=600)
    assert r.returncode == 0, r.stdout
    man = dest / "usr" / "share" / "man" / "man1" / "mixspy.1"
    assert man.is_file() and man.read_bytes() == open(MANPAGE, "rb").read()
    assert os.access(str(dest / "usr" / "bin" / "mixspy"), os.X_OK)


def test_version_and_help():
    rc, out, err = mixspy("--version")
    assert rc == 0 and re.match(r"^mixspy \d+\.\d+\.\d+\n$", out), out
    assert mixspy("-V")[1] == out
    rc, out, err = mixspy()
    assert rc == 0 and "Usage: mixspy <COMMAND>" in out
    for cmd in COMMANDS:
        rc, out, err = mixspy(cmd, "--help")
        assert rc == 0 and out.splitlines()[0], (cmd, err)
        if cmd in PYSPY_ABOUT:
            assert out.splitlines()[0] == PYSPY_ABOUT[cmd]
        assert mixspy("help", cmd)[1] == out
        assert "Usage: mixspy %s" % cmd in out


# --------------------------------------------------------------------------------------------
# Completions in real shells

def completion_script(shell, tmp_path):
    rc, out, err = mixspy("completions", shell)
    assert rc == 0 and out, err
    path = tmp_path / ("mixspy.%s" % shell)
    path.write_text(out)
    return str(path)


def test_completions_bad_shell():
    rc, out, err = mixspy("completions", "tcsh")
    assert rc == 2 and "possible values: bash, zsh, fish" in err


def test_bash_completion(tmp_path):
    script = completion_script("bash", tmp_path)
    prog = r'''
source "$1"
complete -p mixspy
comp() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _mixspy;
         echo "${COMPREPLY[*]}"; }
comp mixspy re
comp mixspy record --up
comp mixspy record --
comp mixspy dump --
comp mixspy completions ""
'''
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", prog, "bash", script],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "complete -o default -F _mixspy mixspy"
    assert lines[1] == "record"
    assert lines[2] == "--upload"
    assert set(lines[3].split()) == {"--" + f for _, f in help_flags("record")}
    assert set(lines[4].split()) == {"--" + f for _, f in help_flags("dump")}
    assert lines[5].split() == ["bash", "zsh", "fish"]


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh is not installed (apt-get install zsh)")
def test_zsh_completion(tmp_path):
    fdir = tmp_path / "zfunc"
    fdir.mkdir()
    (fdir / "_mixspy").write_text(open(completion_script("zsh", tmp_path)).read())
    r = subprocess.run(["zsh", "-n", str(fdir / "_mixspy")], stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert r.returncode == 0, r.stderr
    setup = ("fpath=(%s $fpath); autoload -U compinit; compinit -u -d %s"
             % (fdir, tmp_path / "zcompdump"))
    r = subprocess.run(["zsh", "-f", "-c", setup + "; print -r -- $_comps[mixspy]"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert r.stdout.strip() == "_mixspy", (r.stdout, r.stderr)
    # A real Tab in an interactive zsh on a pseudo-terminal (zsh/zpty).
    driver = r'''
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z 'PS1="> "; %s'
zpty -w -n z $'mixspy record --uplo\t'
out=""
for i in {1..60}; do
  if zpty -r -t z chunk; then out+=$chunk; else sleep 0.1; fi
  [[ $out == *"--upload "* ]] && break
done
zpty -d z
print -r -- "$out"
''' % setup
    r = subprocess.run(["zsh", "-f", "-c", driver], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    assert "mixspy record --upload" in re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]|[\x00-\x08]", "", r.stdout), \
        r.stdout[-500:]


@pytest.mark.skipif(not shutil.which("fish"), reason="fish is not installed (apt-get install fish)")
def test_fish_completion(tmp_path):
    script = completion_script("fish", tmp_path)

    def complete(line):
        r = subprocess.run(["fish", "--no-config", "-c", "source %s; complete -C'%s'" % (script, line)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                           env=dict(os.environ, HOME=str(tmp_path)))
        assert r.returncode == 0, r.stderr
        return [l.split("\t") for l in r.stdout.splitlines()]

    assert ["dump", "Dumps stack traces for a target program to stdout"] in complete("mixspy d")
    got = complete("mixspy record --up")
    assert got and got[0][0] == "--upload" and "Pyroscope" in got[0][1], got
    assert sorted(c[0] for c in complete("mixspy completions ")) == ["bash", "fish", "zsh"]
    top = {c[0] for c in complete("mixspy top --")}
    assert top == {"--" + f for _, f in help_flags("top")}, top


# --------------------------------------------------------------------------------------------
# README

def test_readme_setup_commands_first_and_links_exist():
    text = read(README)
    blocks = re.findall(r"```\w*\n(.*?)```", text, re.S)
    first = [l.split("#")[0].strip() for l in blocks[0].strip().splitlines()]
    assert first == ["make demo", "make test"], first
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if "://" in target:
            continue
        assert os.path.exists(os.path.join(harness.REPO, target)), target
    assert "docs/demo.png" in text
    png = open(os.path.join(DOCS, "demo.png"), "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000


def test_docs_links_resolve():
    for name in ("usage.md", "native.md", "architecture.md"):
        text = read(os.path.join(DOCS, name))
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            assert os.path.exists(os.path.join(DOCS, target)), (name, target)
