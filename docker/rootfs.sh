#!/bin/sh
# rootfs.sh BINARY DEST
#
# Lays out in DEST the whole runtime tree of the container image, for `COPY --from=build
# /rootfs/ /` onto `scratch`:
#
#   /usr/local/bin/opencti-datasets       the binary, stripped
#   <every library ldd lists>             at the path the loader found it, plus the loader
#                                         itself at the binary's PT_INTERP path
#   <libgcc_s.so.1>                       glibc dlopen()s it for thread cancellation
#   /etc/ssl/certs/ca-certificates.crt    the CA bundle (libcurl's built-in default path,
#                                         which mq.c also tries first)
#   /etc/passwd, /etc/group               the unprivileged user 65532 ("nonroot")
#   /etc/nsswitch.conf                    "hosts: files dns" (glibc's default without it
#                                         consults /etc/hosts only when DNS is unreachable)
#   /run/opencti-datasets/                the status file's directory, mode 1777
#   /tmp/                                 mode 1777
#
# The Dockerfile runs it in its Debian 12 build stage; tests/integration/test_deploy_rootfs.py
# runs the same script on the build machine and starts the daemon in the result with chroot, so
# the library closure is checked without a container engine. Works for any Debian
# architecture (the paths come from ldd, not from a list).
set -eu
PATH=$PATH:/usr/sbin:/sbin # ldconfig

if [ $# -ne 2 ]; then
    echo "usage: $0 BINARY DEST" >&2
    exit 64
fi
bin=$1
dest=$2

if ! [ -x "$bin" ]; then
    echo "$0: $bin is not an executable" >&2
    exit 66
fi
mkdir -p "$dest"

# ldd prints "name => /path (addr)" for libraries, "/path (addr)" for the loader and
# "name => not found" for a missing library, which must stop the build.
closure=$(ldd "$bin")
if printf '%s\n' "$closure" | grep -q 'not found'; then
    printf '%s\n' "$closure" >&2
    echo "$0: a library of $bin is missing" >&2
    exit 1
fi
libs=$(printf '%s\n' "$closure" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')

# glibc loads libgcc_s.so.1 itself (pthread_cancel, pthread_exit, backtrace); ldd cannot
# see it. Cheap insurance: copy it where the loader looks.
gcc_s=$(ldconfig -p | awk '$1 == "libgcc_s.so.1" { print $NF; exit }')

n=0
for lib in $libs $gcc_s; do
    n=$((n + 1))
    mkdir -p "$dest$(dirname "$lib")"
    cp -L "$lib" "$dest$lib"
    chmod 0755 "$dest$lib"
done

mkdir -p "$dest/usr/local/bin"
cp "$bin" "$dest/usr/local/bin/opencti-datasets"
strip --strip-unneeded "$dest/usr/local/bin/opencti-datasets" 2>/dev/null || true
chmod 0755 "$dest/usr/local/bin/opencti-datasets"

# libcurl's compiled-in bundle path (Debian: /etc/ssl/certs/ca-certificates.crt)
ca=$(curl-config --ca 2>/dev/null || true)
[ -n "$ca" ] || ca=/etc/ssl/certs/ca-certificates.crt
if ! [ -s "$ca" ]; then
    echo "$0: no CA bundle at $ca (install ca-certificates)" >&2
    exit 1
fi
mkdir -p "$dest$(dirname "$ca")"
cp -L "$ca" "$dest$ca"
chmod 0644 "$dest$ca"

mkdir -p "$dest/etc"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' \
    >"$dest/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$dest/etc/group"
printf 'hosts: files dns\n' >"$dest/etc/nsswitch.conf"
chmod 0644 "$dest/etc/passwd" "$dest/etc/group" "$dest/etc/nsswitch.conf"

# World-writable with the sticky bit, like /tmp: COPY into the final image makes files
# root-owned, and the mode is what lets user 65532 write its status file there.
mkdir -p "$dest/run/opencti-datasets" "$dest/tmp"
chmod 1777 "$dest/run/opencti-datasets" "$dest/tmp"

total=$(du -sb "$dest" | cut -f1)
echo "rootfs.sh: $n libraries, $total bytes in $dest"
