#!/usr/bin/env bash
# Boot sectors for the unit tests of src/kinds/boot.rs (tests/fixtures/boot/), made by the real
# tools on image files (sfdisk, syslinux's gptmbr.bin, install-mbr) and this machine's GRUB
# images. The GRUB boot sector and core (`mbr-grub`, `core-grub`) come from a real
# `grub-install --target=i386-pc` in the sandbox: the end-to-end test
# boot::each_disk_boots_alone prints them (`hostform-capture` lines) and this script saves them
# when given its output: scripts/capture-boot-fixtures.sh [E2E-OUTPUT].
# Needs grub-pc-bin (HOSTFORM_E2E_PKGS in scripts/lib.sh), syslinux-common and mbr (not needed by
# any test: only to make these fixtures again).
set -euo pipefail
cd "$(dirname "$0")/.."
for f in /usr/lib/grub/i386-pc/boot.img /usr/lib/syslinux/mbr/gptmbr.bin /usr/sbin/install-mbr; do
  [ -e "$f" ] || { echo "$f missing: apt-get install --no-install-recommends grub-pc-bin syslinux-common mbr" >&2; exit 1; }
done
out=tests/fixtures/boot
if [ -n "${1:-}" ] && ! grep -q '^hostform-capture mbr-grub ' "$1"; then
  echo "no hostform-capture lines in $1 (run the test with --nocapture)" >&2; exit 1
fi
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
log() { printf '%s\t0\t%s\n' "$1" "$2" >> "$out/COMMANDS.new"; printf '%s\n' "$2" > "$out/$1.cmd"; }
: > "$out/COMMANDS.new"
for img in boot.img diskboot.img lzma_decompress.img; do
  head -c 512 /usr/lib/grub/i386-pc/$img > "$out/$img"
  log "$img" "head -c 512 /usr/lib/grub/i386-pc/$img"
done
truncate -s 64M "$tmp/d"
printf 'label: gpt\nsize=2MiB, type=21686148-6449-6E6F-744E-656564454649, name=bios\n' | sfdisk -q "$tmp/d"
head -c 512 "$tmp/d" > "$out/mbr-sfdisk"; log mbr-sfdisk "sfdisk IMAGE (label: gpt, a bios-boot partition); head -c 512 IMAGE"
dd if=/usr/lib/syslinux/mbr/gptmbr.bin of="$tmp/d" bs=440 count=1 conv=notrunc status=none
head -c 512 "$tmp/d" > "$out/mbr-syslinux-gpt"; log mbr-syslinux-gpt "dd if=/usr/lib/syslinux/mbr/gptmbr.bin of=IMAGE bs=440 count=1 conv=notrunc; head -c 512 IMAGE"
truncate -s 64M "$tmp/m"
printf 'label: dos\nsize=32MiB, type=83\n' | sfdisk -q "$tmp/m"
install-mbr --force "$tmp/m"
head -c 512 "$tmp/m" > "$out/mbr-install-mbr"; log mbr-install-mbr "sfdisk IMAGE (label: dos); install-mbr --force IMAGE; head -c 512 IMAGE"
if [ -n "${1:-}" ]; then
  for name in mbr-grub core-grub; do
    grep "^hostform-capture $name " "$1" | head -1 | cut -d' ' -f3 | base64 -d > "$out/$name"
    log "$name" "$(grep "^hostform-capture-cmd $name " "$1" | head -1 | cut -d' ' -f3-)"
  done
fi
sort -u -t$'\t' -k1,1 "$out/COMMANDS.new" $( [ -f "$out/COMMANDS" ] && echo "$out/COMMANDS" ) > "$out/COMMANDS.tmp"
mv "$out/COMMANDS.tmp" "$out/COMMANDS"; rm -f "$out/COMMANDS.new"
