"""The Dockerfile builds what Cargo.toml declares, without a Docker engine.

Run:

    .venv/bin/python -m pytest -q tests/support/test_dockerfile.py

The build stages are emulated: each stage is a directory, COPY copies from the build context
(filtered by .dockerignore, modification times kept as Docker keeps them) or from an earlier
stage's directory, and RUN runs its shell command in the stage's working directory, with every
`cargo build ...` replaced by `cargo fetch --offline --locked --target <host>` — which, like
`cargo build` and unlike `cargo metadata`, refuses a manifest whose targets have no file ("can't
find `health` bench at `benches/health.rs`"), so this proves the stage has a file for every
target without compiling anything (it needs the cargo registry populated: `make test` builds
first). The runtime stage is checked as written (it has no shell): non-root user, the
entrypoint is the built binary, TLS roots present when the binary reads the platform's.

Each check is also run against a deliberately bad Dockerfile, to show it can fail.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DOCKERFILE = ROOT / "Dockerfile"

# Base images known to carry the Debian ca-certificates bundle at /etc/ssl/certs.
# (The official rust images install ca-certificates to fetch rustup; buildpack-deps has it.)
CERT_BASES = re.compile(
    r"(?:gcr\.io/distroless/(?:static|base|base-nossl|cc)-debian1[1-3]"
    r"|(?:docker\.io/)?(?:library/)?(?:rust|buildpack-deps))(?:[:@].*)?")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Crates that make the binary read the platform's trust store (webpki-roots is compiled in).
NATIVE_ROOTS = {"rustls-native-certs", "rustls-platform-verifier", "openssl-probe", "native-tls"}
# Images without a shell: a RUN there cannot work.
SHELLLESS = re.compile(r"(?:gcr\.io/distroless/|scratch$)")


# -- Dockerfile parsing --------------------------------------------------------------------------

@dataclasses.dataclass
class Instruction:
    keyword: str
    args: str
    line: int

    def flags_and_rest(self) -> tuple[dict[str, str], str]:
        flags, rest = {}, self.args
        while m := re.match(r"--([a-z-]+)(?:=(\S*))?\s+", rest):
            flags[m.group(1)] = m.group(2) or ""
            rest = rest[m.end():]
        return flags, rest

    def words(self) -> list[str]:
        """Exec form (JSON array) or whitespace-separated words."""
        _, rest = self.flags_and_rest()
        if rest.lstrip().startswith("["):
            return json.loads(rest)
        return shlex.split(rest)


@dataclasses.dataclass
class Stage:
    index: int
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> list[Stage]:
    lines = text.splitlines()
    escape = "\\"
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    in_directives = True
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if in_directives and (m := re.fullmatch(r"#\s*(\w+)\s*=\s*(\S+)", stripped)):
            if m.group(1).lower() == "escape":
                escape = m.group(2)
            continue
        in_directives = False
        if stripped.startswith("#") or (not stripped and buf == ""):
            continue  # comments, also inside a continued instruction
        if not buf:
            start = number
        if line.rstrip().endswith(escape):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        logical.append((start, buf.strip()))
        buf = ""
    if buf.strip():
        logical.append((start, buf.strip()))
    stages: list[Stage] = []
    for number, text_line in logical:
        keyword, _, args = text_line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            flags = Instruction(keyword, args.strip(), number).flags_and_rest()[1].split()
            name = flags[2] if len(flags) == 3 and flags[1].lower() == "as" else None
            stages.append(Stage(len(stages), flags[0], name, []))
        elif not stages:
            if keyword != "ARG":
                raise ValueError(f"line {number}: {keyword} before FROM")
        else:
            stages[-1].instructions.append(Instruction(keyword, args.strip(), number))
    return stages


def stage_named(stages: list[Stage], ref: str) -> Stage | None:
    for s in stages:
        if s.name == ref or str(s.index) == ref:
            return s
    return None


# -- the build context ---------------------------------------------------------------------------

class Context:
    """A build context directory as the Docker client sends it: without what .dockerignore
    excludes (moby's rules: patterns are cleaned, `**` spans directories, a pattern excluding a
    directory excludes what is in it, the last matching pattern wins, `!` re-includes)."""

    def __init__(self, root: Path):
        self.root = root
        ignore = root / ".dockerignore"
        self.patterns: list[tuple[bool, re.Pattern[str]]] = []
        if ignore.exists():
            for raw in ignore.read_text().splitlines():
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                negate = line.startswith("!")
                pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
                self.patterns.append((negate, re.compile(self._regex(pattern))))

    @staticmethod
    def _regex(pattern: str) -> str:
        out, i = [], 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out.append(r"(?:.*/)?")
                i += 3
            elif pattern.startswith("**", i):
                out.append(r".*")
                i += 2
            elif pattern[i] == "*":
                out.append(r"[^/]*")
                i += 1
            elif pattern[i] == "?":
                out.append(r"[^/]")
                i += 1
            else:
                out.append(re.escape(pattern[i]))
                i += 1
        return "".join(out)

    def excluded(self, rel: str) -> bool:
        parts = rel.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        result = False
        for negate, regex in self.patterns:
            if any(regex.fullmatch(p) for p in prefixes):
                result = not negate
        return result

    def files(self, rel: str = ".") -> list[str]:
        """The included files at or under `rel`, relative to the context."""
        base = (self.root / rel)
        if base.is_file():
            rel_path = base.relative_to(self.root).as_posix()
            return [] if self.excluded(rel_path) else [rel_path]
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            d = Path(dirpath)
            keep = []
            for name in dirnames:
                r = (d / name).relative_to(self.root).as_posix()
                # A directory is pruned only when nothing under it can be re-included.
                if not self.excluded(r) or any(neg for neg, _ in self.patterns):
                    keep.append(name)
            dirnames[:] = keep
            for name in filenames:
                r = (d / name).relative_to(self.root).as_posix()
                if not self.excluded(r):
                    found.append(r)
        return sorted(found)


# -- emulation -----------------------------------------------------------------------------------

@functools.cache
def host_triple() -> str:
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    return re.search(r"^host: (\S+)$", out, re.M).group(1)


CARGO_BUILD = re.compile(r"\bcargo\s+build\b[^&|;\n]*")
ABSOLUTE = re.compile(r"(?:^|[\s=\"'(:])(/(?!dev/null\b)[A-Za-z0-9_.][^\s\"';&|)]*)")


@dataclasses.dataclass
class CargoRun:
    """One `cargo build` of the Dockerfile, as its working directory was when it ran."""
    instruction: Instruction
    args: list[str]                        # what followed `cargo build`
    started: float                         # time.time() when it ran
    files: dict[str, tuple[str, float]]    # relative path -> (sha256, mtime)


# Stands in for `cargo build` inside the emulated RUN: records the working directory's files
# (content hash, modification time) and the arguments, then checks the manifest the way
# `cargo build` does without compiling: `cargo fetch --offline --locked --target <host>` refuses
# a target without its file ("can't find `health` bench at `benches/health.rs`"), a stale lock
# file and a dependency missing from the registry. (`cargo metadata` is no such check: it leaves
# a declared bench or test without a file out of its answer and succeeds.)
CARGO_STANDIN = """\
import hashlib, json, os, subprocess, sys, time
record, host, *args = sys.argv[1:]
started = time.time()
files = {}
for dirpath, _, names in os.walk("."):
    for name in names:
        path = os.path.join(dirpath, name)
        with open(path, "rb") as f:
            files[os.path.relpath(path, ".")] = [hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime]
with open(record, "w") as f:
    json.dump({"args": args, "started": started, "files": files}, f)
time.sleep(0.02)  # a later touch is measurably newer
manifest = [a for i, a in enumerate(args) if i and args[i - 1] == "--manifest-path"]
sys.exit(subprocess.run(["cargo", "fetch", "--offline", "--locked", "--target", host,
                         *(["--manifest-path", manifest[0]] if manifest else [])]).returncode)
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class BuildError(AssertionError):
    pass


class Emulator:
    def __init__(self, dockerfile: str, context: Path, scratch: Path):
        self.stages = parse(dockerfile)
        self.context = Context(context)
        self.scratch = scratch
        self.dirs: dict[int, Path] = {}
        self.workdirs: dict[int, str] = {}
        self.cargo_runs: list[CargoRun] = []
        self.standin = scratch / "cargo_build_standin.py"
        scratch.mkdir(parents=True, exist_ok=True)
        self.standin.write_text(CARGO_STANDIN)

    def fs(self, stage: Stage, path: str) -> Path:
        return self.dirs[stage.index] / path.lstrip("/")

    def resolve(self, stage: Stage, path: str) -> str:
        return os.path.normpath(path if path.startswith("/") else f"{self.workdirs[stage.index]}/{path}")

    def run_stage(self, stage: Stage) -> None:
        if stage.index in self.dirs:
            return
        parent = stage_named(self.stages[:stage.index], stage.base)
        root = self.scratch / f"stage{stage.index}"
        if parent is not None:
            self.run_stage(parent)
            shutil.copytree(self.dirs[parent.index], root, symlinks=True)
            self.workdirs[stage.index] = self.workdirs[parent.index]
        else:
            root.mkdir(parents=True)  # an image: its tools are the host's (sh, cargo, grep, sed)
            self.workdirs[stage.index] = "/"
        self.dirs[stage.index] = root
        for ins in stage.instructions:
            handler = getattr(self, f"do_{ins.keyword.lower()}", None)
            if handler is None:
                if ins.keyword in ("ADD", "ONBUILD", "SHELL"):
                    raise BuildError(f"line {ins.line}: {ins.keyword} is not emulated")
                continue  # metadata only: USER, ENV, EXPOSE, VOLUME, ENTRYPOINT, CMD, LABEL...
            handler(stage, ins)

    def do_workdir(self, stage: Stage, ins: Instruction) -> None:
        self.workdirs[stage.index] = self.resolve(stage, ins.args)
        self.fs(stage, self.workdirs[stage.index]).mkdir(parents=True, exist_ok=True)

    def do_copy(self, stage: Stage, ins: Instruction) -> None:
        flags, _ = ins.flags_and_rest()
        words = ins.words()
        sources, dest = words[:-1], self.resolve(stage, words[-1]) + ("/" if words[-1].endswith("/") else "")
        into_dir = dest.endswith("/") or len(sources) > 1
        pairs: list[tuple[Path, str]] = []  # (host file, path in the stage)
        for src in sources:
            if "from" in flags:
                other = stage_named(self.stages[:stage.index], flags["from"])
                if other is None:
                    raise BuildError(f"line {ins.line}: COPY --from={flags['from']}: not an earlier stage")
                self.run_stage(other)
                host = self.fs(other, src)
                if not host.exists():
                    raise BuildError(f"line {ins.line}: COPY --from={flags['from']} {src}: not in that stage")
                files = ([host] if host.is_file() else sorted(p for p in host.rglob("*")))
                base = host if host.is_dir() else host.parent
            else:
                rel = os.path.normpath(src)
                listed = self.context.files(rel) if (self.context.root / rel).exists() else []
                if not listed:
                    raise BuildError(f"line {ins.line}: COPY {src}: not in the build context (or .dockerignore'd)")
                files = [self.context.root / f for f in listed]
                host = self.context.root / rel
                base = host if host.is_dir() else host.parent
            for f in files:
                if host.is_dir():
                    target = dest.rstrip("/") + "/" + f.relative_to(base).as_posix()
                elif into_dir:
                    target = dest.rstrip("/") + "/" + f.name
                else:
                    target = dest
                pairs.append((f, target))
        for f, target in pairs:
            out = self.fs(stage, target)
            if f.is_dir():  # Docker copies empty directories too
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, out)  # Docker keeps the modification time

    def do_run(self, stage: Stage, ins: Instruction) -> None:
        flags, command = ins.flags_and_rest()
        if command.lstrip().startswith("["):
            raise BuildError(f"line {ins.line}: exec-form RUN is not emulated")
        if SHELLLESS.match(self.base_image(stage)):
            raise BuildError(f"line {ins.line}: RUN in {self.base_image(stage)}, which has no shell")
        for m in ABSOLUTE.finditer(command):
            raise BuildError(f"line {ins.line}: RUN uses the absolute path {m.group(1)}; the emulation runs "
                             "commands in the stage's directory, so keep them relative to WORKDIR")
        workdir = self.fs(stage, self.workdirs[stage.index])
        records: list[Path] = []

        def standin(m: re.Match[str]) -> str:
            records.append(self.scratch / f"cargo-build-{len(self.cargo_runs) + len(records)}.json")
            return " ".join([shlex.quote(sys.executable), shlex.quote(str(self.standin)),
                             shlex.quote(str(records[-1])), host_triple(), m.group(0).split(None, 2)[2]
                             if len(m.group(0).split(None, 2)) > 2 else ""])

        replaced = CARGO_BUILD.sub(standin, command)
        out = subprocess.run(["sh", "-c", replaced], cwd=workdir, capture_output=True, text=True, timeout=300)
        for record in records:
            if record.exists():
                data = json.loads(record.read_text())
                self.cargo_runs.append(CargoRun(ins, data["args"], data["started"],
                                                {k: (v[0], v[1]) for k, v in data["files"].items()}))
        if out.returncode != 0:
            raise BuildError(f"line {ins.line}: RUN failed ({out.returncode}):\n{out.stderr}{out.stdout}")

    def base_image(self, stage: Stage) -> str:
        parent = stage_named(self.stages[:stage.index], stage.base)
        return self.base_image(parent) if parent else stage.base


# -- what the manifest declares ------------------------------------------------------------------

def metadata(context: Path) -> dict[str, Any]:
    out = subprocess.run(["cargo", "metadata", "--no-deps", "--offline", "--format-version", "1"],
                         cwd=context, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@functools.cache
def resolved_packages() -> frozenset[str]:
    out = subprocess.run(["cargo", "metadata", "--offline", "--format-version", "1",
                          "--filter-platform", host_triple()],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"cargo metadata --offline failed (build once to fill the registry):\n{out.stderr}")
    meta = json.loads(out.stdout)
    ids = {n["id"] for n in meta["resolve"]["nodes"]}
    # Only what the binary links: normal (and build) dependencies reachable from the root.
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    reach, todo = set(), [meta["resolve"]["root"]]
    while todo:
        node = todo.pop()
        if node in reach or node not in ids:
            continue
        reach.add(node)
        for dep in nodes[node]["deps"]:
            if any(k["kind"] in (None, "build") for k in dep["dep_kinds"]):
                todo.append(dep["pkg"])
    return frozenset(p["name"] for p in meta["packages"] if p["id"] in reach)


def targets(context: Path) -> list[dict[str, Any]]:
    meta = metadata(context)
    root = Path(meta["workspace_root"])
    found = []
    for package in meta["packages"]:
        for t in package["targets"]:
            found.append({**t, "rel": Path(t["src_path"]).relative_to(root).as_posix(),
                          "package": package["name"]})
    return found


def built_targets(run: CargoRun, context: Path) -> list[dict[str, Any]]:
    """The targets a `cargo build <args>` compiles: the named bins (all bins without a filter),
    the library they link, build scripts."""
    args = run.args
    bins = {args[i + 1] for i, a in enumerate(args[:-1]) if a == "--bin"}
    bins |= {a.split("=", 1)[1] for a in args if a.startswith("--bin=")}
    chosen = []
    for t in targets(context):
        kinds = set(t["kind"])
        if "custom-build" in kinds or kinds & {"lib", "rlib", "dylib", "cdylib", "staticlib", "proc-macro"}:
            chosen.append(t)
        elif "bin" in kinds and (not bins or t["name"] in bins):
            chosen.append(t)
    return chosen


# -- the checks ----------------------------------------------------------------------------------

def check_build(dockerfile: str, context: Path, scratch: Path) -> Emulator:
    """Emulates the stages the final image copies its binary from; raises BuildError on any
    failure, returns the emulator for the checks on its cargo runs."""
    emu = Emulator(dockerfile, context, scratch)
    final = emu.stages[-1]
    sources = {i.flags_and_rest()[0].get("from") for i in final.all("COPY")} - {None}
    if not sources:
        raise BuildError("the runtime stage copies nothing from a build stage")
    for ref in sorted(sources):
        stage = stage_named(emu.stages[:-1], ref)
        if stage is None:
            raise BuildError(f"the runtime stage copies from {ref}, not a stage")
        emu.run_stage(stage)
    if len(emu.cargo_runs) < 2:
        raise BuildError("expected a dependency build (skeleton) and a final build; found "
                         f"{len(emu.cargo_runs)} cargo build")
    deps, final_build = emu.cargo_runs[0], emu.cargo_runs[-1]
    declared = targets(context)
    manifests = {"Cargo.toml", "Cargo.lock"} | {
        Path(p["manifest_path"]).relative_to(Path(metadata(context)["workspace_root"])).as_posix()
        for p in metadata(context)["packages"]}
    # The dependency build sees only manifests, the lock file and stubs: no source file, or the
    # layer is rebuilt on every source edit.
    stub_paths = {t["rel"] for t in declared}
    for rel, (digest, _) in sorted(deps.files.items()):
        if rel in manifests:
            continue
        if rel not in stub_paths:
            raise BuildError(f"line {deps.instruction.line}: the dependency build sees {rel}, which is "
                             "neither a manifest nor a target stub (its layer would not stay cached)")
        if (context / rel).is_file() and digest == sha256(context / rel) and (context / rel).stat().st_size > 64:
            raise BuildError(f"line {deps.instruction.line}: the dependency build sees the real {rel}")
    # The final build compiles the real sources of every target it builds (the whole directory
    # of each), newer than the stubs compiled before.
    for t in built_targets(final_build, context):
        directory = Path(t["rel"]).parent.as_posix()
        for rel in Context(context).files(directory):
            have = final_build.files.get(rel)
            if have is None or have[0] != sha256(context / rel):
                raise BuildError(f"line {final_build.instruction.line}: the final build of {t['kind'][0]} "
                                 f"{t['name']} does not see the real {rel}")
        if final_build.files[t["rel"]][1] <= deps.started:
            raise BuildError(f"line {final_build.instruction.line}: {t['rel']} is older than the stub build, "
                             "so cargo would keep the stub's artifact: touch the copied sources")
    return emu


def check_runtime(dockerfile: str, context: Path, needs_platform_roots: bool) -> None:
    stages = parse(dockerfile)
    final = stages[-1]
    users = final.all("USER")
    if not users:
        raise BuildError("the runtime stage sets no USER: it would run as root")
    user = users[-1].args.split(":")[0]
    if user in ("root", "0") or (user.isdigit() and int(user) == 0):
        raise BuildError(f"the runtime stage runs as {users[-1].args}")
    if final.all("RUN") and SHELLLESS.match(final.base):
        raise BuildError(f"the runtime stage runs commands in {final.base}, which has no shell")
    entry = final.all("ENTRYPOINT")
    if not entry or not entry[-1].args.startswith("["):
        raise BuildError("the runtime stage needs an exec-form ENTRYPOINT [\"/path/to/binary\"]")
    binary = json.loads(entry[-1].args)[0]
    bins = {t["name"] for t in targets(context) if "bin" in t["kind"]}
    copies = []
    for ins in final.all("COPY"):
        flags, _ = ins.flags_and_rest()
        words = ins.words()
        dest = words[-1]
        for src in words[:-1]:
            target = dest.rstrip("/") + "/" + Path(src).name if dest.endswith("/") else dest
            copies.append((flags.get("from"), src, target))
    made = [(ref, src) for ref, src, target in copies if target == binary]
    if not made:
        raise BuildError(f"the ENTRYPOINT {binary} is not copied into the runtime stage")
    ref, src = made[-1]
    m = re.search(r"target/(release|debug)/([^/]+)$", src)
    stage = stage_named(stages[:-1], ref or "")
    if ref is None or stage is None or not m or m.group(2) not in bins:
        raise BuildError(f"the ENTRYPOINT {binary} is {src} (from {ref}), not a [[bin]] of Cargo.toml built "
                         f"by a build stage; the manifest's bins are {sorted(bins)}")
    # The stage's last cargo build is the one whose output is copied (earlier ones build stubs).
    builds = [shlex.split(c) for i in stage.all("RUN") for c in CARGO_BUILD.findall(i.args)]
    last = builds[-1] if builds else []
    if not (last and ("--release" in last) == (m.group(1) == "release")
            and ("--bin" not in last or m.group(2) in last)):
        raise BuildError(f"stage {ref} never builds {m.group(2)} in {m.group(1)} mode")
    for ref, src, _ in copies:
        if ref is None and not Context(context).files(os.path.normpath(src)):
            raise BuildError(f"the runtime stage copies {src}, which is not in the build context")
    if needs_platform_roots:
        def base_of(s: Stage) -> str:
            parent = stage_named(stages[:s.index], s.base)
            return base_of(parent) if parent else s.base
        copied = [(r, src) for r, src, target in copies if target == CA_BUNDLE]
        from_cert_stage = any(stage_named(stages[:-1], r or "") is not None
                              and CERT_BASES.fullmatch(base_of(stage_named(stages[:-1], r)))
                              and src == CA_BUNDLE for r, src in copied)
        if not from_cert_stage and not CERT_BASES.fullmatch(final.base):
            raise BuildError(f"the binary reads the platform's trust store ({CA_BUNDLE}) but the runtime "
                             f"image {final.base} is not known to have it and no stage copies it there")


# -- the tests: the real Dockerfile --------------------------------------------------------------

def test_build_stages_have_a_file_for_every_target(tmp_path):
    emu = check_build(DOCKERFILE.read_text(), ROOT, tmp_path)
    deps = emu.cargo_runs[0]
    # The stubs are what the manifest declares today, whatever it declares.
    declared = {t["rel"] for t in targets(ROOT)}
    assert declared <= set(deps.files), sorted(declared - set(deps.files))
    assert {"benches/health.rs", "src/lib.rs", "src/main.rs"} <= declared


def test_runtime_stage():
    needs = bool(resolved_packages() & NATIVE_ROOTS)
    # Today: aws-smithy-http-client uses rustls-native-certs, kube rustls-platform-verifier.
    assert needs, "the binary no longer reads the platform trust store: the CA check is moot, revisit it"
    check_runtime(DOCKERFILE.read_text(), ROOT, needs)


def test_dockerignore_keeps_build_output_and_state_out():
    ctx = Context(ROOT)
    for rel in ("target/release/failoverd", ".venv/bin/python", ".git/HEAD", ".state/x", ".lab/x",
                "tests/support/__pycache__/x.pyc"):
        assert ctx.excluded(rel), f"{rel} would be sent to the Docker daemon"
    for rel in ("Cargo.toml", "Cargo.lock", "src/main.rs", "benches/health.rs", "config/example.yaml"):
        assert not ctx.excluded(rel), f"{rel} is needed in the build context"


# -- the tests: a manifest that changes, and bad Dockerfiles -------------------------------------

# New targets at cargo's default paths (cargo refuses the manifest when such a file is missing;
# a target with an explicit `path` is only read when it is built). `harness` before `name` on
# purpose: a line-based reading of the manifest takes the wrong key.
EXTRA_TARGETS = {
    "bench": ('[[bench]]\nharness = false\nname = "extra"\n', "benches/extra.rs"),
    "test": ('[[test]]\nname = "smoke"\n', "tests/smoke.rs"),
    "example": ('[[example]]\nname = "demo"\n', "examples/demo.rs"),
    "bin": ('[[bin]]\nname = "failoverd-tool"\n', "src/bin/failoverd-tool.rs"),
}


def context_copy(tmp_path: Path, extra: tuple[str, ...] = ()) -> Path:
    """The build context (as .dockerignore leaves it) in a directory of its own, with the
    EXTRA_TARGETS named in `extra` added to Cargo.toml, each with its file."""
    ctx = tmp_path / "context"
    for rel in Context(ROOT).files():
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, ctx / rel)
    for kind in extra:
        toml, rel = EXTRA_TARGETS[kind]
        with open(ctx / "Cargo.toml", "a") as f:
            f.write("\n" + toml)
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_text("fn main() {}\n")
    return ctx


@pytest.mark.parametrize("extra", [("bench",), ("test",), ("example",), ("bin",), tuple(EXTRA_TARGETS)],
                         ids=["bench", "test", "example", "bin", "all"])
def test_new_targets_need_no_dockerfile_change(tmp_path, extra):
    ctx = context_copy(tmp_path, extra)
    emu = check_build(DOCKERFILE.read_text(), ctx, tmp_path / "build")
    stubs = set(emu.cargo_runs[0].files)
    wanted = {EXTRA_TARGETS[k][1] for k in extra}
    assert wanted <= stubs, sorted(wanted - stubs)


# The dependency stage of an earlier Dockerfile: placeholders for src/ and for the benches an awk
# script finds (the line after `[[bench]]`), so a bench written another way, a [[test]], an
# [[example]] or another [[bin]] is missed.
HAND_KEPT = """\
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
RUN mkdir src benches && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \\
    && for bench in $(awk '/^\\[\\[bench\\]\\]/ {getline; gsub(/"/, "", $3); print $3}' Cargo.toml); do \\
         echo 'fn main() {}' > "benches/$bench.rs"; \\
       done \\
    && cargo build --release --locked --bin failoverd \\
    && rm -rf src benches
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin failoverd

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/failoverd /usr/local/bin/failoverd
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/failoverd"]
"""


def test_hand_kept_placeholders_pass_today(tmp_path):
    check_build(HAND_KEPT, context_copy(tmp_path), tmp_path / "build")


@pytest.mark.parametrize("kind", list(EXTRA_TARGETS))
def test_hand_kept_placeholders_miss_new_targets(tmp_path, kind):
    name = re.search(r'name = "([^"]+)"', EXTRA_TARGETS[kind][0]).group(1)
    with pytest.raises(BuildError, match=rf"can't find `{re.escape(name)}` {kind}"):
        check_build(HAND_KEPT, context_copy(tmp_path, (kind,)), tmp_path / "build")


def variant(old: str, new: str) -> str:
    text = DOCKERFILE.read_text()
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize("old, new, expected", [
    # No stub for the benches: cargo refuses the manifest.
    ("echo 'fn main() {}' > \"skeleton/$rel\"",
     "case \"$rel\" in benches/*) ;; *) echo 'fn main() {}' > \"skeleton/$rel\";; esac",
     r"can't find `?\w+`? bench"),
    # The dependency build sees the sources: its layer would never stay cached.
    ("COPY --from=plan /plan/skeleton/ ./\n", "COPY --from=plan /plan/skeleton/ ./\nCOPY src ./src\n",
     "the dependency build sees (the real )?src/"),
    # The final build without the real sources: the image would hold the stub.
    ("COPY src ./src\n", "", "does not see the real src/"),
    # Not touched: cargo would think the stub's artifacts are up to date.
    ("RUN find src -type f -exec touch {} + && cargo", "RUN cargo", "older than the stub build"),
    # An absolute path in a RUN cannot be emulated.
    ("&& mkdir skeleton ", "&& mkdir /skeleton ", "absolute path /skeleton"),
], ids=["no-bench-stub", "deps-see-sources", "no-real-sources", "not-touched", "absolute-path"])
def test_build_check_catches(tmp_path, old, new, expected):
    with pytest.raises(BuildError, match=expected):
        check_build(variant(old, new), ROOT, tmp_path)


@pytest.mark.parametrize("old, new, expected", [
    ("USER 65532:65532\n", "", "sets no USER"),
    ("USER 65532:65532\n", "USER root\n", "runs as root"),
    ("USER 65532:65532\n", "USER 0:0\n", "runs as 0:0"),
    ('ENTRYPOINT ["/usr/local/bin/failoverd"]', "ENTRYPOINT /usr/local/bin/failoverd", "exec-form"),
    ('ENTRYPOINT ["/usr/local/bin/failoverd"]', 'ENTRYPOINT ["/usr/local/bin/other"]', "is not copied"),
    ("/src/target/release/failoverd /usr", "/src/target/release/failoverd-old /usr", "not a \\[\\[bin\\]\\]"),
    ("cargo build --release --locked --bin failoverd\n\n", "cargo build --locked --bin failoverd\n\n",
     "never builds failoverd in release mode"),
    ("COPY config/example.yaml", "COPY config/missing.yaml", "not in the build context"),
    ("FROM gcr.io/distroless/cc-debian12:nonroot\n", "FROM scratch\n", None),  # still copies the bundle
], ids=["no-user", "root", "uid-0", "shell-form", "other-binary", "not-a-bin", "debug-build",
        "missing-file", "scratch-with-bundle"])
def test_runtime_check_catches(old, new, expected):
    text = variant(old, new)
    if expected is None:
        check_runtime(text, ROOT, needs_platform_roots=True)
    else:
        with pytest.raises(BuildError, match=expected):
            check_runtime(text, ROOT, needs_platform_roots=True)


def test_runtime_check_catches_missing_trust_store():
    text = variant("FROM gcr.io/distroless/cc-debian12:nonroot\n", "FROM scratch\n")
    text = text.replace(f"COPY --from=build {CA_BUNDLE} {CA_BUNDLE}\n", "")
    with pytest.raises(BuildError, match="platform's trust store"):
        check_runtime(text, ROOT, needs_platform_roots=True)
    check_runtime(text, ROOT, needs_platform_roots=False)  # a webpki-roots-only binary would be fine


def test_parser_and_dockerignore_rules(tmp_path):
    stages = parse("# syntax=docker/dockerfile:1\nFROM a AS one\n# c\nRUN x \\\n  # inside\n  && y\n"
                   "FROM one\nCOPY --from=one --chown=1:1 /a /b\n")
    assert [(s.base, s.name) for s in stages] == [("a", "one"), ("one", None)]
    assert stages[0].instructions[0].args == "x    && y"
    assert stages[1].instructions[0].flags_and_rest() == ({"from": "one", "chown": "1:1"}, "/a /b")
    (tmp_path / ".dockerignore").write_text("target/\n**/*.pyc\ndocs\n!docs/keep.md\n")
    ctx = Context(tmp_path)
    assert ctx.excluded("target/x") and ctx.excluded("a/b/c.pyc") and ctx.excluded("docs/x.md")
    assert not ctx.excluded("docs/keep.md") and not ctx.excluded("src/target.rs")
