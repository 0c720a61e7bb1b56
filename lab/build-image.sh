#!/usr/bin/env bash
# Build a sitekit lab node image (a systemd root filesystem with python3, sudo and sshd) with
# debootstrap, and import it into podman as localhost/sitekit-node:SUITE. No container registry is
# used. The image is rebuilt only when its recipe (this script and the tools it uses) changes.
#
# usage: lab/build-image.sh SUITE [SUITE...]   SUITE: trixie bookworm bullseye noble jammy
# Mirrors: debootstrap's own default for each distribution, unless SITEKIT_DEBIAN_MIRROR or
# SITEKIT_UBUNTU_MIRROR is set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
"$here/fetch-tools.sh"
tools=${SITEKIT_TOOLS:-$top/.lab/tools}/root
export DEBOOTSTRAP_DIR=$tools/usr/share/debootstrap

packages=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,openssh-server,iproute2,procps,ca-certificates,kmod
recipe=$(cat "$0" "$here/fetch-tools.sh" | sha256sum | cut -c1-16)

build_one() {
  local suite=$1 family keyring mirror components tag rootfs have
  case $suite in
    bullseye|bookworm|trixie) family=debian; keyring=$tools/usr/share/keyrings/debian-archive-keyring.gpg
                              mirror=${SITEKIT_DEBIAN_MIRROR:-}; components=main ;;
    jammy|noble)              family=ubuntu; keyring=$tools/usr/share/keyrings/ubuntu-archive-keyring.gpg
                              mirror=${SITEKIT_UBUNTU_MIRROR:-}; components=main,universe ;;
    *) echo "build-image: unknown suite '$suite' (trixie bookworm bullseye noble jammy)" >&2; return 2 ;;
  esac
  tag=localhost/sitekit-node:$suite
  have=$(podman image inspect --format '{{index .Labels "io.sitekit.recipe"}}' "$tag" 2>/dev/null || true)
  if [[ $have == "$recipe" ]]; then
    echo "build-image: $tag is up to date (recipe $recipe)"
    return 0
  fi
  rootfs=$top/.lab/build/$suite
  rm -rf "$rootfs"; mkdir -p "$rootfs"
  local t0=$SECONDS
  echo "build-image: debootstrap $family $suite (recipe $recipe)"
  # $mirror empty: debootstrap uses its own default mirror for the distribution. Its Ubuntu script
  # asks ubuntu-distro-info (or a web service this network cannot reach) whether the suite is still
  # supported and otherwise falls back to the archive of old releases: answer for the suite we build.
  local shim=$top/.lab/build/shim
  mkdir -p "$shim"
  printf '#!/bin/sh\necho %s\n' "$suite" > "$shim/ubuntu-distro-info"
  chmod +x "$shim/ubuntu-distro-info"
  PATH=$shim:$PATH "$tools/usr/sbin/debootstrap" --variant=minbase --components="$components" --keyring="$keyring" \
    --include="$packages" "$suite" "$rootfs" $mirror > "$top/.lab/build/$suite.log" 2>&1 ||
    { tail -n 30 "$top/.lab/build/$suite.log" >&2; return 1; }

  # Container-friendly systemd: no kernel modules to load, no getty, no remount of /.
  for unit in systemd-modules-load.service getty.target console-getty.service systemd-remount-fs.service \
              systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
  done
  : > "$rootfs/etc/machine-id"
  # Like a host's udev: users may open /dev/fuse (podman copies the VM's 0600 into privileged containers).
  printf '# sitekit lab: /dev/fuse as a host has it\nz /dev/fuse 0666 root root -\n' > "$rootfs/etc/tmpfiles.d/sitekit-lab-fuse.conf"
  chroot "$rootfs" systemctl enable ssh.service > /dev/null 2>&1 || true
  mkdir -p "$rootfs/root/.ssh" && chmod 0700 "$rootfs/root/.ssh"
  printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n' > "$rootfs/etc/ssh/sshd_config.d/sitekit-lab.conf"
  rm -f "$rootfs"/etc/ssh/ssh_host_*          # generated at first boot (sshd-keygen / ssh.service)
  printf '[Unit]\nDescription=Generate SSH host keys\nBefore=ssh.service\nConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n[Install]\nWantedBy=multi-user.target\n' \
    > "$rootfs/etc/systemd/system/sitekit-hostkeys.service"
  chroot "$rootfs" systemctl enable sitekit-hostkeys.service > /dev/null 2>&1
  # Ansible's apt cache_valid_time must not trust an image's empty lists.
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/*
  mkdir -p "$rootfs/var/lib/apt/lists/partial"
  touch -d @0 "$rootfs/var/lib/apt/lists"
  local old
  old=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  tar -C "$rootfs" --numeric-owner -cf - . |
    podman import --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' \
      --change "LABEL io.sitekit.recipe=$recipe" --change "LABEL io.sitekit.suite=$suite" - "$tag" > /dev/null
  rm -rf "$rootfs"
  # The superseded image, unless a container still uses it (lab/lab.py re-creates those).
  [[ -n $old ]] && podman rmi "$old" > /dev/null 2>&1 || true
  echo "build-image: $tag built in $((SECONDS - t0)) s"
}

[[ $# -gt 0 ]] || set -- trixie
for suite in "$@"; do build_one "$suite"; done
