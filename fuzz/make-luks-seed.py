#!/usr/bin/env python3
"""Writes fuzz seeds of the luks-header target that UNLOCK with the
passphrase "fuzz": LUKS1 areas with tiny PBKDF2 iteration counts, which
qemu-img cannot make (it times its key derivation: 1000 iterations at
least). Built with the Python "cryptography" package as an independent
implementation of LUKS1; without it, nothing is written.

Seed layout: be32(area length) + the area's first bytes (see
fuzz/fuzz-luks-header.c). Slot 0's key material starts right after the
header (sector 2) so that the seed stays under libFuzzer's 128 KiB max_len.

Usage: make-luks-seed.py OUTDIR
SPDX-License-Identifier: LGPL-2.1-or-later
"""
import hashlib
import os
import struct
import sys

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError:
    sys.exit(0)

STRIPES = 4000


def diffuse(hname, buf):
    h = hashlib.new(hname)
    ds = h.digest_size
    out = b''
    for i in range(0, (len(buf) + ds - 1) // ds):
        piece = buf[i * ds:(i + 1) * ds]
        out += hashlib.new(hname, struct.pack('>I', i) + piece).digest()[:len(piece)]
    return out


def af_split(hname, key, rnd):
    kb = len(key)
    d = bytes(kb)
    out = b''
    for i in range(STRIPES - 1):
        s = rnd[i * kb:(i + 1) * kb]
        out += s
        d = diffuse(hname, bytes(a ^ b for a, b in zip(d, s)))
    return out + bytes(a ^ b for a, b in zip(d, key))


def iv_for(mode, ivgen, key, sector, essiv_hash):
    if ivgen == 'plain64':
        return struct.pack('<Q', sector) + bytes(8)
    if ivgen == 'essiv':
        k = hashlib.new(essiv_hash, key).digest()
        e = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
        return e.update(struct.pack('<Q', sector) + bytes(8))
    raise ValueError(ivgen)


def encrypt_sectors(mode, ivgen, essiv_hash, key, data):
    out = b''
    for sector in range(0, (len(data) + 511) // 512):
        chunk = data[sector * 512:(sector + 1) * 512]
        iv = iv_for(mode, ivgen, key, sector, essiv_hash)
        m = modes.XTS(iv) if mode == 'xts' else modes.CBC(iv)
        e = Cipher(algorithms.AES(key), m).encryptor()
        out += e.update(chunk) + e.finalize()
    return out


def make(name, mode, ivgen, essiv_hash, hname, kb, outdir):
    rnd = os.urandom
    mk = rnd(kb)
    mk_salt, slot_salt = rnd(32), rnd(32)
    iters = 7
    digest = hashlib.pbkdf2_hmac(hname, mk, mk_salt, iters, 20)
    slot_key = hashlib.pbkdf2_hmac(hname, b'fuzz', slot_salt, iters, kb)
    material = encrypt_sectors(mode, ivgen, essiv_hash, slot_key,
                               af_split(hname, mk, rnd(kb * (STRIPES - 1))))
    mat_sectors = (len(material) + 511) // 512
    spec = mode + '-' + ivgen + ((':' + essiv_hash) if ivgen == 'essiv' else '')
    payload = 2 + mat_sectors
    hdr = b'LUKS\xba\xbe' + struct.pack('>H', 1)
    hdr += b'aes'.ljust(32, b'\0') + spec.encode().ljust(32, b'\0') + hname.encode().ljust(32, b'\0')
    hdr += struct.pack('>II', payload, kb) + digest + mk_salt + struct.pack('>I', iters)
    hdr += b'00000000-0000-0000-0000-000000000000'.ljust(40, b'\0')
    for i in range(8):
        if i == 0:
            hdr += struct.pack('>II', 0x00AC71F3, iters) + slot_salt + struct.pack('>II', 2, STRIPES)
        else:
            # disabled slots are laid out past the payload in a real image;
            # here they would overlap slot 0, so they sit after it, each
            # with room for its material, and the payload moves behind them
            hdr += struct.pack('>II', 0x0000DEAD, 0) + bytes(32) + \
                struct.pack('>II', 2 + mat_sectors * i, STRIPES)
    payload = 2 + mat_sectors * 8
    hdr = hdr[:104] + struct.pack('>I', payload) + hdr[108:]
    area = hdr.ljust(1024, b'\0') + material
    with open(os.path.join(outdir, name), 'wb') as f:
        f.write(struct.pack('>I', payload * 512) + area)


out = sys.argv[1]
os.makedirs(out, exist_ok=True)
make('unlock-aes-128-xts-plain64', 'xts', 'plain64', None, 'sha256', 32, out)
make('unlock-aes-128-cbc-essiv', 'cbc', 'essiv', 'sha256', 'sha1', 16, out)
