#!/usr/bin/env python3
"""Write the comparison host's spec and the equivalent Ansible playbook: N LVs on vg0 over a
RAID1 of two disks, each LV ext4. Usage: gen.py N OUTDIR"""
import sys, pathlib
n, out = int(sys.argv[1]), pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
lvs = [f"lv{i:03}" for i in range(n)]
spec = ["version: 1", "host: bench", "disks:"]
for d, ser in (("a", "HF-BENCH-A"), ("b", "HF-BENCH-B")):
    spec += [f"  {d}:", f"    serial: {ser}", "    partitions:",
             "      - { name: bios, size: 2MiB, type: bios-boot }",
             "      - { name: raid, size: rest, type: linux-raid }"]
spec += ["arrays:", "  md0: { level: 1, devices: [a/raid, b/raid] }",
         "volume-groups:", "  vg0:", "    pvs: [md0]", "    lvs:"]
spec += [f"      {lv}: {{ size: 8MiB, fs: ext4 }}" for lv in lvs]
(out / "host.yaml").write_text("\n".join(spec) + "\n")
play = f"""- hosts: localhost
  gather_facts: false
  vars:
    lvs: [{", ".join(lvs)}]
  tasks:
    - name: vg0 on md0
      community.general.lvg: {{ vg: vg0, pvs: /dev/md0 }}
    - name: the LVs
      community.general.lvol: {{ vg: vg0, lv: "{{{{ item }}}}", size: 8m }}
      loop: "{{{{ lvs }}}}"
    - name: their filesystems
      community.general.filesystem: {{ fstype: ext4, dev: "/dev/vg0/{{{{ item }}}}" }}
      loop: "{{{{ lvs }}}}"
"""
(out / "playbook.yml").write_text(play)
