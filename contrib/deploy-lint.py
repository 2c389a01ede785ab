#!/usr/bin/python3
"""Checks of the deployment files, run by ctest with the label `lint` (contrib/CMakeLists.txt).

    deploy-lint.py CHECK --source DIR [--build DIR]

CHECK is one of:
  dockerfile         docker/Dockerfile: the project's rules (below), then dockerfile-utils lint
  rootfs-script      docker/rootfs.sh (the image's runtime tree): `shellcheck -s sh` is silent
  compose-stack      docker-compose.yml with .env.sample: `docker-compose config -q`, no unset
                     variable, the services, health checks and depends_on conditions
  compose-connector  docker/docker-compose.connector.yml the same way, with config.example.env
  systemd-verify     `systemd-analyze verify` on the unit as `cmake --install` installs it
  systemd-security   `systemd-analyze security --offline=true`, exposure at most 2.0
  man                docs/opencti-datasets.8 renders with `man -l` without warnings and names
                     every command of src/main.c and every setting of config.example.env
  install            `cmake --install` into a DESTDIR: the binary, the unit (ExecStart pointing
                     at the installed binary), config.example.env and the man page

A missing tool skips the check (exit 77, which ctest shows as skipped) with a message saying
what to install, except under CI (the CI variable set), where it fails: CI must install it.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
SECURITY_THRESHOLD = 2.0
UNIT = "opencti-datasets.service"


class Failure(Exception):
    pass


def check(cond, what, detail=None):
    if not cond:
        raise Failure(what + ("" if detail is None else ": %s" % (detail,)))
    print("ok   %s" % what)


def need_tool(name, install_hint):
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI"):
        raise Failure("%s is not installed; CI must install it (%s)" % (name, install_hint))
    print("SKIP: %s is not installed (%s); this check did not run" % (name, install_hint))
    sys.exit(SKIP)


def run(cmd, env=None, cwd=None):
    print("run  %s" % " ".join(cmd))
    return subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=300)


def clean_env(**extra):
    """A small environment, so that the caller's variables do not fill compose's blanks."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(extra)
    return env


# ---- Dockerfile ---------------------------------------------------------------------------

def dockerfile_instructions(text):
    """(line number, INSTRUCTION, arguments) with continuation lines joined, comments out."""
    out, buf, start = [], "", 0
    for n, line in enumerate(text.splitlines(), 1):
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if not buf:
            start = n
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((start, word.upper(), rest.strip()))
        buf = ""
    return out


def ci_cmake_options(source):
    """CI_CMAKE_OPTIONS of scripts/test: the options of CI's -Werror build."""
    with open(os.path.join(source, "scripts", "test"), encoding="utf-8") as f:
        m = re.search(r'^CI_CMAKE_OPTIONS="([^"]+)"$', f.read(), re.M)
    check(m is not None, "scripts/test sets CI_CMAKE_OPTIONS")
    return m.group(1)


def check_dockerfile(args):
    path = os.path.join(args.source, "docker", "Dockerfile")
    text = open(path).read()
    ins = dockerfile_instructions(text)
    stages, final = [], []
    for n, word, rest in ins:
        if word == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            check(m is not None, "line %d: FROM <image> [AS <name>]" % n, rest)
            stages.append((m.group(1), m.group(2)))
            final = []
        else:
            final.append((n, word, rest))
    check(len(stages) == 2, "two stages (build, runtime)", stages)
    check(stages[0][0] == "debian:bookworm", "the build stage is Debian 12 (debian:bookworm)",
          stages[0][0])
    check(stages[1][0] == "scratch", "the runtime stage is scratch", stages[1][0])
    names = {s[1] for s in stages if s[1]}
    for n, word, rest in ins:
        m = re.search(r"--from=(\S+)", rest) if word == "COPY" else None
        if m:
            check(m.group(1) in names, "line %d: COPY --from names a stage" % n, m.group(1))
    build_runs = " ".join(rest for n, word, rest in ins if word == "RUN")
    ci = ci_cmake_options(args.source)
    check(re.search(r"cmake -S \. -B build %s(\s|$)" % re.escape(ci), build_runs)
          and "cmake --build build" in build_runs,
          "the build configures with CI's options (%s, scripts/test)" % ci)
    check("docker/rootfs.sh" in build_runs, "the runtime tree comes from docker/rootfs.sh")
    check("libsystemd-dev" not in build_runs,
          "no libsystemd-dev in the image build (sd_notify is of no use in a container)")
    words = [w for _, w, _ in final]
    for w in ("USER", "STOPSIGNAL", "HEALTHCHECK", "ENTRYPOINT", "CMD"):
        check(words.count(w) == 1, "the runtime stage has one %s" % w)
    get = {w: r for _, w, r in final}
    user = get["USER"].split(":")[0]
    check(user.isdigit() and int(user) != 0, "USER is a numeric non-root uid", get["USER"])
    check(get["STOPSIGNAL"] == "SIGTERM", "STOPSIGNAL SIGTERM", get["STOPSIGNAL"])
    for w in ("ENTRYPOINT", "CMD"):
        try:
            v = json.loads(get[w])
        except ValueError as e:
            raise Failure("%s is not a JSON array (scratch has no shell): %s" % (w, e))
        check(isinstance(v, list) and all(isinstance(x, str) for x in v),
              "%s is in exec form" % w)
    hc = get["HEALTHCHECK"]
    m = re.search(r"\bCMD\s+(\[.*\])\s*$", hc)
    check(m is not None, "HEALTHCHECK CMD is in exec form", hc)
    check(json.loads(m.group(1))[-1] == "health", "HEALTHCHECK runs `opencti-datasets health`")
    envs = " ".join(r for _, w, r in final if w == "ENV")
    check("CONNECTOR_STATUS_FILE=/run/opencti-datasets/status.json" in envs,
          "the image sets CONNECTOR_STATUS_FILE in /run/opencti-datasets (mode 1777 from rootfs.sh)")
    ignore = open(os.path.join(args.source, ".dockerignore")).read().split()
    check(".git" in ignore and "/build*" in ignore, ".dockerignore keeps .git and build trees out")

    tool = need_tool("dockerfile-utils", "npm install -g dockerfile-utils@0.16.3")
    r = run([tool, "lint", path])
    sys.stdout.write(r.stdout + r.stderr)
    check(r.returncode == 0 and not r.stdout.strip(), "dockerfile-utils lint reports nothing",
          r.stdout.strip() or r.returncode)


def check_rootfs_script(args):
    tool = need_tool("shellcheck", "apt-get install shellcheck")
    r = run([tool, "-s", "sh", os.path.join(args.source, "docker", "rootfs.sh")])
    sys.stdout.write(r.stdout + r.stderr)
    check(r.returncode == 0 and not r.stdout.strip(), "shellcheck -s sh docker/rootfs.sh is silent")


# ---- compose ------------------------------------------------------------------------------

def compose_config(args, compose, env):
    tool = need_tool("docker-compose", "apt-get install docker-compose")
    r = run([tool, "-f", compose, "config", "-q"], env=env, cwd=args.source)
    sys.stdout.write(r.stdout + r.stderr)
    check(r.returncode == 0, "docker-compose -f %s config -q" % os.path.relpath(compose, args.source),
          r.returncode)
    check("is not set" not in r.stderr, "every variable it uses is set")
    r = run([tool, "-f", compose, "config"], env=env, cwd=args.source)
    check(r.returncode == 0, "docker-compose config (resolved)")
    import yaml  # python3-yaml, a dependency of Debian's docker-compose
    return yaml.safe_load(r.stdout)


def check_connector_service(svc, args):
    build = svc.get("build") or {}
    check(os.path.realpath(build.get("context", "")) == os.path.realpath(args.source)
          and build.get("dockerfile") == "docker/Dockerfile",
          "the connector is built from docker/Dockerfile in the repository root", build)
    check(svc.get("restart") in ("always", "unless-stopped"), "the connector restarts",
          svc.get("restart"))
    tmpfs = [t.split(":")[0] for t in (svc.get("tmpfs") or [])]
    check(svc.get("read_only") is True and "/run/opencti-datasets" in tmpfs,
          "read-only root with a tmpfs for the status file", svc.get("tmpfs"))
    check(any(t.startswith("/run/opencti-datasets:") and "mode=1777" in t
              for t in svc.get("tmpfs") or []),
          "the tmpfs is writable by the image's user (mode=1777)", svc.get("tmpfs"))
    check(svc.get("cap_drop") == ["ALL"], "all capabilities dropped")


def check_compose_stack(args):
    env = clean_env(COMPOSE_PROJECT_NAME="odslint")
    compose = os.path.join(args.source, "docker-compose.yml")
    raw = open(compose).read()
    sample = open(os.path.join(args.source, ".env.sample")).read()
    defined = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", sample, re.M))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", raw))
    check(used <= defined, ".env.sample defines every ${VAR} of docker-compose.yml",
          sorted(used - defined))
    env_file = os.path.join(args.source, ".env.sample")
    tool = need_tool("docker-compose", "apt-get install docker-compose")
    r = run([tool, "--env-file", env_file, "-f", compose, "config", "-q"], env=env, cwd=args.source)
    sys.stdout.write(r.stdout + r.stderr)
    check(r.returncode == 0, "docker-compose --env-file .env.sample -f docker-compose.yml config -q")
    check("is not set" not in r.stderr, "every variable it uses is set")
    r = run([tool, "--env-file", env_file, "-f", compose, "config"], env=env, cwd=args.source)
    import yaml
    cfg = yaml.safe_load(r.stdout)
    svcs = cfg["services"]
    want = ["redis", "elasticsearch", "minio", "rabbitmq", "opencti", "worker",
            "connector-opencti-datasets"]
    check(all(s in svcs for s in want), "the services of the official stack and the connector",
          sorted(svcs))
    for s in ("redis", "elasticsearch", "minio", "rabbitmq", "opencti"):
        check("healthcheck" in svcs[s], "%s has a health check" % s)
    deps = svcs["opencti"].get("depends_on", {})
    for s in ("redis", "elasticsearch", "minio", "rabbitmq"):
        check(deps.get(s, {}).get("condition") == "service_healthy",
              "opencti waits for a healthy %s" % s)
    for s in ("worker", "connector-opencti-datasets"):
        check(svcs[s].get("depends_on", {}).get("opencti", {}).get("condition") == "service_healthy",
              "%s waits for a healthy platform" % s)
    check("rabbitmq:" in svcs["rabbitmq"]["image"] and "management" in svcs["rabbitmq"]["image"],
          "rabbitmq has the management plugin", svcs["rabbitmq"]["image"])
    check(os.path.exists(os.path.join(args.source, "docker", "rabbitmq.conf")),
          "docker/rabbitmq.conf (bind-mounted) exists")
    conn = svcs["connector-opencti-datasets"]
    check_connector_service(conn, args)
    e = conn.get("environment", {})
    check(e.get("OPENCTI_URL") == "http://opencti:8080", "the connector talks to the platform service")
    for k in ("OPENCTI_TOKEN", "CONNECTOR_ID"):
        check(bool(e.get(k)), "the connector gets %s from .env" % k)


def check_compose_connector(args):
    compose = os.path.join(args.source, "docker", "docker-compose.connector.yml")
    env = clean_env(COMPOSE_PROJECT_NAME="odslint", OPENCTI_DATASETS_ENV_FILE="../config.example.env")
    cfg = compose_config(args, compose, env)
    svcs = cfg["services"]
    check(list(svcs) == ["connector-opencti-datasets"], "one service: the connector", sorted(svcs))
    check_connector_service(svcs["connector-opencti-datasets"], args)
    net = cfg.get("networks", {}).get("default", {})
    check(net.get("external") is True and net.get("name") == "docker_default",
          "it joins the existing stack's network (external, docker_default unless set)", net)
    e = svcs["connector-opencti-datasets"].get("environment", {})
    check(e.get("OPENCTI_URL") == "http://opencti:8080",
          "the env file (config.example.env here) reaches the container", e.get("OPENCTI_URL"))


# ---- systemd, install ---------------------------------------------------------------------

def install_tree(args, tmp):
    """cmake --install into tmp/dest; returns the DESTDIR."""
    cmake = shutil.which("cmake") or "cmake"
    dest = os.path.join(tmp, "dest")
    r = run([cmake, "--install", args.build], env=dict(os.environ, DESTDIR=dest))
    sys.stdout.write(r.stdout + r.stderr)
    check(r.returncode == 0, "cmake --install %s with DESTDIR" % args.build, r.returncode)
    return dest


def installed_paths(args):
    """Where cmake --install puts each file (absolute, without DESTDIR), as CMake computed
    them (contrib/CMakeLists.txt passes GNUInstallDirs' full paths)."""
    return {"bin": os.path.join(args.bindir, "opencti-datasets"),
            "unit": os.path.join(args.unitdir, UNIT),
            "example": os.path.join(args.docdir, "config.example.env"),
            "man": os.path.join(args.mandir, "man8", "opencti-datasets.8"),
            "mandir": args.mandir}


def check_install(args):
    with tempfile.TemporaryDirectory(prefix="ods-install-") as tmp:
        dest = install_tree(args, tmp)
        p = installed_paths(args)
        for k in ("bin", "unit", "example", "man"):
            check(os.path.isfile(dest + p[k]), "installed %s" % p[k])
        check(os.access(dest + p["bin"], os.X_OK), "the binary is executable")
        unit = open(dest + p["unit"]).read()
        check("@" + "CMAKE_" not in unit, "the unit has no unconfigured @VARIABLE@")
        m = re.search(r"^ExecStart=(\S+)", unit, re.M)
        check(m and m.group(1) == p["bin"], "ExecStart is the installed binary",
              m.group(1) if m else None)
        check(p["example"] in unit, "the unit's comment names the installed example file")
        src = open(os.path.join(args.source, "config.example.env")).read()
        check(open(dest + p["example"]).read() == src, "config.example.env installed unchanged")
        r = run([dest + p["bin"], "--version"])
        check(r.returncode == 0 and r.stdout.startswith("opencti-datasets "),
              "the installed binary runs", r.stdout.strip())
        r = run([dest + p["bin"], "check", "--env-file", dest + p["example"]],
                env=clean_env())
        check(r.returncode == 78 and "CONNECTOR_ID" in r.stderr,
              "check --env-file on the installed example: exit 78 for its ChangeMe id",
              (r.returncode, r.stderr.strip()[-200:]))


def check_systemd_verify(args):
    tool = need_tool("systemd-analyze", "apt-get install systemd")
    need_tool("man", "apt-get install man-db")
    with tempfile.TemporaryDirectory(prefix="ods-verify-") as tmp:
        dest = install_tree(args, tmp)
        p = installed_paths(args)
        # verify checks that ExecStart's file exists: point it at the DESTDIR copy, the only
        # change; and MANPATH lets it find man:opencti-datasets(8) among the installed files.
        unit = open(dest + p["unit"]).read().replace("ExecStart=" + p["bin"],
                                                     "ExecStart=" + dest + p["bin"])
        os.makedirs(os.path.join(tmp, "units"))
        path = os.path.join(tmp, "units", UNIT)
        with open(path, "w") as f:
            f.write(unit)
        r = run([tool, "verify", path], env=clean_env(MANPATH=dest + p["mandir"]))
        sys.stdout.write(r.stdout + r.stderr)
        check(r.returncode == 0 and not r.stderr.strip(), "systemd-analyze verify is silent",
              r.returncode)


def check_systemd_security(args):
    tool = need_tool("systemd-analyze", "apt-get install systemd")
    path = os.path.join(args.build, UNIT)
    r = run([tool, "security", "--offline=true", "--no-pager",
             "--threshold=%d" % int(SECURITY_THRESHOLD * 10), path], env=clean_env())
    out = r.stdout + r.stderr
    sys.stdout.write(out)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    check(m is not None, "systemd-analyze security printed a score")
    score = float(m.group(1))
    print("score: %.1f (threshold %.1f)" % (score, SECURITY_THRESHOLD))
    check(score <= SECURITY_THRESHOLD and r.returncode == 0,
          "exposure %.1f is at most %.1f" % (score, SECURITY_THRESHOLD), r.returncode)


# ---- man page -----------------------------------------------------------------------------

def check_man(args):
    tool = need_tool("man", "apt-get install man-db")
    page = os.path.join(args.source, "docs", "opencti-datasets.8")
    r = run([tool, "--warnings", "-E", "UTF-8", "-l", page],
            env=clean_env(LC_ALL="C.UTF-8", MANWIDTH="80", MAN_KEEP_FORMATTING="", PAGER="cat"))
    check(r.returncode == 0, "man -l renders it", r.returncode)
    check(not r.stderr.strip(), "without warnings", r.stderr.strip())
    text = r.stdout
    flat = re.sub(r"\u2010\n\s*|-\n\s*", "", text)  # undo any line-end hyphenation
    for w in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "EXIT STATUS", "FILES"):
        check(re.search(r"^%s$" % w, text, re.M), "section %s" % w)
    main_c = open(os.path.join(args.source, "src", "main.c")).read()
    cmds = set(re.findall(r'strcmp\(argv\[i\], "([a-z-]+)"\)', main_c))
    check({"run", "check", "split", "health", "--env-file", "--version", "--help",
           "--max-size"} <= cmds, "src/main.c's commands and options are the expected ones",
          sorted(cmds))
    for c in sorted(cmds):
        check(re.search(r"(^|\s)%s(\s|,|$)" % re.escape(c), flat, re.M), "names %s" % c)
    example = open(os.path.join(args.source, "config.example.env")).read()
    keys = sorted(set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", example, re.M)))
    check(len(keys) > 40, "config.example.env lists the settings", len(keys))
    missing = [k for k in keys if not re.search(r"\b%s\b" % k, flat)]
    check(not missing, "every setting of config.example.env is described", missing)
    # every variable src/config.c knows is documented: a setting in config.example.env,
    # or one of the pycti settings the README lists as not implemented
    config_c = open(os.path.join(args.source, "src", "config.c")).read()
    known = set(re.findall(r'"((?:OPENCTI|CONNECTOR|CONFIG|MQ)_[A-Z0-9_]+)"', config_c))
    readme = open(os.path.join(args.source, "README.md")).read()
    m = re.search(r"^### pycti settings that are not implemented$(.*?)^## ", readme, re.M | re.S)
    check(m is not None, "README has the section of pycti settings that are not implemented")
    listed = set(re.findall(r"`([A-Z][A-Z0-9_]+)(?:=[^`]*)?`", m.group(1)))
    missing = sorted(k for k in known if k not in keys and k not in listed)
    check(not missing, "every variable src/config.c reads is in config.example.env or the "
          "README's list of pycti settings not implemented", missing)
    codes = set(re.findall(r"#define EXIT_[A-Z]+ (\d+)", main_c)) | {"0", "1", "78"}
    missing = [c for c in sorted(codes) if not re.search(r"^\s+%s(\s|$)" % c, text, re.M)]
    check(not missing, "every exit status of src/main.c is listed", missing)


CHECKS = {
    "dockerfile": check_dockerfile,
    "rootfs-script": check_rootfs_script,
    "compose-stack": check_compose_stack,
    "compose-connector": check_compose_connector,
    "systemd-verify": check_systemd_verify,
    "systemd-security": check_systemd_security,
    "man": check_man,
    "install": check_install,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("check", choices=sorted(CHECKS))
    ap.add_argument("--source", required=True)
    ap.add_argument("--build")
    for d in ("bindir", "docdir", "mandir", "unitdir"):
        ap.add_argument("--" + d, help="the full install path CMake computed")
    args = ap.parse_args()
    args.source = os.path.abspath(args.source)
    if args.build:
        args.build = os.path.abspath(args.build)
    try:
        CHECKS[args.check](args)
    except Failure as e:
        print("FAIL %s" % e)
        return 1
    print("PASS %s" % args.check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
