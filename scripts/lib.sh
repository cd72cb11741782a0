# Shared by scripts/run and scripts/test. Sourced, not executed.

# Debian packages: building, and the real-kernel sandbox (tools used inside the VM come from
# this machine's own root filesystem, shared read-only into it).
# git, ssh-keygen, systemd-analyze, man and the shells are also used by the fast tier (signed
# commits, timer units, the package's man pages and completions); the package's end-to-end
# test checks the package with lintian, installs it in the VM and uses man-db and
# bash-completion there (scripts/deb needs build-essential's dpkg-dev).
HOSTFORM_BUILD_PKGS=(build-essential pkg-config git ca-certificates openssh-client systemd man-db
  bash zsh fish)
HOSTFORM_E2E_PKGS=(qemu-system-x86 qemu-utils linux-image-amd64 busybox-static cpio kmod udev
  mdadm lvm2 thin-provisioning-tools fdisk e2fsprogs xfsprogs dosfstools iproute2 util-linux
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients systemd iputils-ping bridge-utils
  man-db bash-completion lintian grub-pc-bin grub2-common xen-hypervisor-4.17-amd64
  xen-utils-4.17 lvm2-lockd sanlock openssh-server openssh-client)

# Messages go to stderr, coloured only when it is a terminal and NO_COLOR is unset or empty
# (https://no-color.org): a CI log or a file gets plain text.
colour() { [ -t 2 ] && [ -z "${NO_COLOR:-}" ]; }
say() {
  if colour; then printf '\033[1m==> %s\033[0m\n' "$*" >&2; else printf '==> %s\n' "$*" >&2; fi
}
loud() {
  if colour; then printf '\n\033[1;33m!!! %s\033[0m\n\n' "$*" >&2; else printf '\n!!! %s\n\n' "$*" >&2; fi
}

# Install what is missing, when we can (root on a Debian-like system). Never fails the
# caller by itself: the tier that needs a package reports its absence.
not_installed() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
install_missing() {
  local missing pass
  mapfile -t missing < <(not_installed "$@")
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    loud "missing Debian packages (run as root to install them): ${missing[*]}"
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  # The daemons among these (libvirtd, sanlock, sshd) run only inside the test VMs, started
  # there by the tests: Debian's policy-rc.d hook keeps their packages from starting them here.
  local policy=/usr/sbin/policy-rc.d own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  # Old package lists may name versions the mirror no longer has: update first.
  apt-get update -qq >/dev/null || true
  # A second pass: installing one package can remove another of the list that conflicts with
  # it in another version (a backported qemu-utils goes when Debian's qemu-system-x86 comes);
  # asked again alone, it comes back in the version that fits.
  for pass in 1 2; do
    say "installing: ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
      loud "apt-get could not install: ${missing[*]}"
    mapfile -t missing < <(not_installed "$@")
    [ ${#missing[@]} -eq 0 ] && break
  done
  [ -n "$own_policy" ] && rm -f "$policy"
  [ ${#missing[@]} -eq 0 ] && return 0
  loud "still not installed after apt-get: ${missing[*]}"
}

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null || { loud "cargo not found: install Rust (https://rustup.rs)"; exit 1; }
}
