#!/usr/bin/env python3
# Runs INSIDE a Xen sandbox's dom0 (scripts/sandbox/capture-xen.sh): maps one page of a guest
# into this process through /dev/xen/privcmd and holds it, so that the guest, once destroyed,
# stays a dying domain (Xen frees a domain only when no one maps its pages) until this process
# is killed: what a backend that has not let go of a guest's page does.
#
#   hold-foreign-page.py DOMID MFN     prints "held" once the page is mapped, then sleeps
import ctypes
import fcntl
import mmap
import os
import struct
import sys
import time

dom, mfn = int(sys.argv[1]), int(sys.argv[2], 0)
fd = os.open("/dev/xen/privcmd", os.O_RDWR)
area = mmap.mmap(fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
addr = ctypes.addressof(ctypes.c_char.from_buffer(area))
frames = (ctypes.c_uint64 * 1)(mfn)
errs = (ctypes.c_int * 1)(0)
# struct privcmd_mmapbatch_v2 { unsigned int num; domid_t dom; __u64 addr;
#                               const xen_pfn_t *arr; int *err; }
arg = struct.pack(
    "=IHxxQQQ", 1, dom, addr, ctypes.addressof(frames), ctypes.addressof(errs)
)
IOCTL_PRIVCMD_MMAPBATCH_V2 = (len(arg) << 16) | (ord("P") << 8) | 4
fcntl.ioctl(fd, IOCTL_PRIVCMD_MMAPBATCH_V2, bytearray(arg))
if errs[0] != 0:
    sys.exit(f"mapping frame {mfn:#x} of domain {dom} failed: {errs[0]}")
print("held", flush=True)
while True:
    time.sleep(3600)
