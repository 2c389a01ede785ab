"""The container image's runtime tree, without a container engine.

docker/rootfs.sh (the script the Dockerfile's build stage runs) lays out the tree of the
`scratch` image from ODS_BINARY: the binary, its ldd closure, the CA bundle, /etc and the
status directory. This test then runs the daemon in that tree the way Docker would:
chroot'ed into it, as user 65532 (the image's USER), as PID 1 of a new PID namespace, with
only the image's environment plus the settings, and /etc/hosts provided from outside. It
checks that the daemon registers with the platform double and imports the datasets through
a real RabbitMQ broker, that `opencti-datasets health` (the HEALTHCHECK, run inside the
namespace) passes, and that SIGTERM sent from outside to PID 1 (what `docker stop` does)
stops it with status 0.

Needs root (chroot, unshare, nsenter); skipped with a message otherwise, and for sanitizer
builds.
"""

import os
import shutil
import signal
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness.common import SKIP, check, data_dir, run_tests, shared_broker, temp_dir, wait_until  # noqa: E402
from harness.daemon import Daemon, daemon_binary  # noqa: E402
from fakes.platform import Platform  # noqa: E402

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOTFS_SH = os.path.join(SOURCE, "docker", "rootfs.sh")
USER = "65532:65532"
IMAGE_ENV = {"CONNECTOR_STATUS_FILE": "/run/opencti-datasets/status.json",
             "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
BIN = "/usr/local/bin/opencti-datasets"


def tool(name):
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return shutil.which(name)


def run(cmd, env=None, timeout=60):
    return subprocess.run(cmd, env=env if env is not None else {}, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


def in_image(rootfs, *args):
    """chroot as the image's user: the command line for `args` inside the tree."""
    return [tool("chroot"), "--userspec=" + USER, rootfs, BIN] + list(args)


def child_of(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        kids = f.read().split()
    return int(kids[0]) if kids else None


def comm(pid):
    with open("/proc/%d/comm" % pid) as f:
        return f.read().strip()


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1:]
    return None


def rootfs_scenario(broker, tmp):
    rootfs = os.path.join(tmp, "rootfs")
    r = run(["/bin/sh", ROOTFS_SH, daemon_binary(), rootfs], env=dict(os.environ))
    sys.stdout.write(r.stdout + r.stderr)
    check(r.returncode == 0, "docker/rootfs.sh builds the tree", r.returncode)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(rootfs) for f in fs)
    print("     runtime tree: %.1f MB" % (size / 1e6))
    check(size < 30e6, "under 30 MB", size)
    check(os.path.getsize(os.path.join(rootfs, "etc/ssl/certs/ca-certificates.crt")) > 100000,
          "the CA bundle is at libcurl's default path")
    check(oct(os.stat(os.path.join(rootfs, "run/opencti-datasets")).st_mode & 0o7777) == "0o1777",
          "/run/opencti-datasets is writable by the unprivileged user (1777)")

    r = run(in_image(rootfs, "--version"), env=dict(IMAGE_ENV))
    check(r.returncode == 0 and r.stdout.startswith("opencti-datasets "),
          "the binary starts in the tree as %s (every library found)" % USER, (r.stdout, r.stderr))
    r = run(in_image(rootfs, "check"), env=dict(IMAGE_ENV))
    check(r.returncode == 78 and "OPENCTI_URL is required" in r.stderr,
          "check without settings: exit 78 with the reasons", (r.returncode, r.stderr[-300:]))
    r = run(in_image(rootfs, "health"), env=dict(IMAGE_ENV))
    check(r.returncode == 1 and "is the daemon running?" in r.stdout,
          "health before any daemon: exit 1", (r.returncode, r.stdout))

    # Docker bind-mounts /etc/hosts (and resolv.conf) into every container.
    shutil.copy("/etc/hosts", os.path.join(rootfs, "etc", "hosts"))

    with Platform(broker, worker=True, datasets_dir=os.path.join(data_dir(), "datasets")) as p:
        cid = str(uuid.uuid4())
        env = dict(IMAGE_ENV, OPENCTI_URL=p.url.replace("127.0.0.1", "localhost"),
                   OPENCTI_TOKEN=p.token, CONNECTOR_ID=cid, CONNECTOR_LOG_LEVEL="info",
                   CONFIG_SECTORS_FILE_URL=p.dataset_url("sectors.json"),
                   CONFIG_GEOGRAPHY_FILE_URL=p.dataset_url("geography.json"),
                   CONFIG_COMPANIES_FILE_URL=p.dataset_url("companies.json"),
                   CONNECTOR_PING_INTERVAL="PT2S")
        cmd = [tool("unshare"), "--pid", "--fork", "--kill-child", tool("chroot"),
               "--userspec=" + USER, rootfs, BIN, "run"]
        d = Daemon(env, binary=cmd[0], args=cmd[1:], name="daemon-in-rootfs")
        d.env = env  # exactly the image's environment, nothing passed through
        with d:
            pid = wait_until(lambda: child_of(d.pid), 10, message="the namespace's PID 1")
            check(proc_status(pid, "NSpid")[-1] == "1", "the daemon is PID 1 in its namespace",
                  proc_status(pid, "NSpid"))
            # unshare forks, then chroot changes user and execs the daemon in that child
            wait_until(lambda: comm(pid).startswith("opencti-data"), 10,
                       message="the daemon exec'd as the namespace's PID 1")
            check(proc_status(pid, "Uid") == ["65532"] * 4, "running as uid 65532",
                  proc_status(pid, "Uid"))
            d.wait_for_log(r"Last_run stored", timeout=90)
            works = wait_until(lambda: [w for w in p.works_for(cid) if w["status"] == "complete"],
                               60, message="the work completed by the platform's worker")
            check(len(p.works_for(cid)) == 1 and works[0]["import_expected_number"] == 723,
                  "one work, complete, 723 messages (sectors 121 + geography 539 + companies 63)",
                  [(w["status"], w["import_expected_number"]) for w in p.works_for(cid)])
            st = os.stat(os.path.join(rootfs, "run/opencti-datasets/status.json"))
            check(st.st_uid == 65532, "the status file is written by the daemon's user")
            hc = [tool("nsenter"), "--target", str(pid), "--pid"] + in_image(rootfs, "health")
            r = run(hc, env=dict(IMAGE_ENV))
            check(r.returncode == 0 and r.stdout.startswith("healthy"),
                  "HEALTHCHECK inside the namespace: healthy", (r.returncode, r.stdout, r.stderr))
            os.kill(pid, signal.SIGTERM)  # `docker stop`: SIGTERM to the container's PID 1
            rc = d.wait_exit(30)
            check(rc == 0, "SIGTERM to PID 1: exit status 0", rc)
            check(d.find_logs(r"^Connector stop$"), "it logged its clean stop")
        p.assert_no_violations()


def test_rootfs():
    with temp_dir() as tmp:
        rootfs_scenario(shared_broker(), tmp)


def main():
    missing = [t for t in ("chroot", "unshare", "nsenter") if not tool(t)]
    if os.geteuid() != 0 or missing:
        print("SKIP: this test needs root and chroot, unshare, nsenter (uid %d, missing %s)"
              % (os.geteuid(), missing or "none"))
        return SKIP
    ldd = subprocess.run(["ldd", daemon_binary()], stdout=subprocess.PIPE, text=True).stdout
    if "libasan" in ldd or "libubsan" in ldd:
        print("SKIP: %s is a sanitizer build; the image holds a Release build, and the "
              "sanitizer runtimes need /proc, which the image's tree does not have"
              % daemon_binary())
        return SKIP
    return run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
